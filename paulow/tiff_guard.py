"""Bounds on a TIFF before tifffile indexes it: the chain of pages (IFDs) is walked once, cheaply,
so a chain that loops back (tifffile would never finish), more pages than `limits.MAX_PAGES`, or an
index that takes longer than `limits.INDEX_SECONDS` is refused with one line instead of a hang."""

from __future__ import annotations

import struct
import time
from pathlib import Path

from . import limits

SPLIT_FIX = (
    "Split the stack into smaller files (e.g. in Fiji: Image > Stacks > Tools > Make Substack) "
    "and put those in the folder."
)
CORRUPT_FIX = "The file is corrupt: export it again from the acquisition software or Fiji."


class TiffBoundError(ValueError):
    """A TIFF whose page chain breaks a bound; `fix` says what the user can do."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(reason)
        self.fix = fix


def _header(handle) -> tuple[str, bool, int] | None:
    """(byte order, BigTIFF?, first IFD offset), or None when the file is not a TIFF tifffile
    would parse the usual way (it then gives its own error)."""
    head = handle.read(16)
    if len(head) < 8 or head[:2] not in (b"II", b"MM"):
        return None
    order = "<" if head[:2] == b"II" else ">"
    version = struct.unpack(order + "H", head[2:4])[0]
    if version == 42:
        return order, False, struct.unpack(order + "I", head[4:8])[0]
    if version == 43 and len(head) >= 16:
        return order, True, struct.unpack(order + "Q", head[8:16])[0]
    return None


def count_pages(path: str | Path, max_pages: int | None = None, max_seconds: float | None = None) -> int:
    """Pages in the main IFD chain of a TIFF (0 when it is not a classic or Big TIFF); raises
    `TiffBoundError` for a chain that loops, holds more than `max_pages`, or takes longer than
    `max_seconds` to walk. A chain pointing past the end of the file just ends there (tifffile
    reports truncation itself)."""
    max_pages = limits.MAX_PAGES if max_pages is None else max_pages
    max_seconds = limits.INDEX_SECONDS if max_seconds is None else max_seconds
    start, size = time.monotonic(), Path(path).stat().st_size
    with open(path, "rb") as handle:
        header = _header(handle)
        if header is None:
            return 0
        order, big, offset = header
        count_format, count_size, entry_size, next_format, next_size = (
            ("Q", 8, 20, "Q", 8) if big else ("H", 2, 12, "I", 4)
        )
        seen: dict[int, int] = {}
        while offset and offset + count_size <= size:
            if offset in seen:
                raise TiffBoundError(
                    f"its page chain loops (page {len(seen)} points back to page {seen[offset] + 1})",
                    CORRUPT_FIX,
                )
            seen[offset] = len(seen)
            if len(seen) > max_pages:
                raise TiffBoundError(
                    f"it holds more than {max_pages} pages (PAULow's limit per file)", SPLIT_FIX
                )
            if time.monotonic() - start > max_seconds:
                raise TiffBoundError(
                    f"indexing its pages took more than {max_seconds:g} s (PAULow's limit)", SPLIT_FIX
                )
            handle.seek(offset)
            raw = handle.read(count_size)
            entries = struct.unpack(order + count_format, raw)[0]
            handle.seek(offset + count_size + entries * entry_size)
            raw = handle.read(next_size)
            if len(raw) < next_size:
                break
            offset = struct.unpack(order + next_format, raw)[0]
        return len(seen)


def check_series_pages(shape: tuple[int, ...], axes: str, max_pages: int | None = None) -> None:
    """The pages a series declares (every axis but Y, X and the channel axes; an ImageJ or OME
    header can declare them without the file holding them) within `max_pages`."""
    max_pages = limits.MAX_PAGES if max_pages is None else max_pages
    pages = 1
    for length, axis in zip(shape, axes):
        if axis not in "YXCS":
            pages *= int(length)
    if pages > max_pages:
        raise TiffBoundError(
            f"its header declares {pages} pages, more than the {max_pages} PAULow reads from one file",
            SPLIT_FIX,
        )
