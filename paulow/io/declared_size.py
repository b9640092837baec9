"""Refusing, before decoding, a file whose header declares more pixels than fit in memory."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .stack import _unreadable


def decode_limit() -> int:
    """Bytes one decoded image may take: half the memory available now (Linux), else 8 GiB."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except (OSError, ValueError, IndexError):
        pass
    return 8 << 30


# float32 copies of one page that a run holds besides the decoded file: the normalised image and
# the probability map (training: the normalised slice and its float target)
FLOAT32_COPIES = 2


def check_declared_size(
    path: Path, shape: Sequence[int], dtype, count: int = 1, page_values: int | None = None
) -> None:
    """Refuse a file whose header declares more pixels than fit in memory, before decoding it
    (a 16 KB file can declare 200000 x 200000 pixels). Counted: the decoded file (`count` arrays of
    `shape`) plus `FLOAT32_COPIES` float32 copies of one page (`page_values` values; default: the
    whole `shape`)."""
    decoded = math.prod(int(n) for n in shape) * np.dtype(dtype).itemsize * count
    page_values = math.prod(int(n) for n in shape) if page_values is None else page_values
    copies = page_values * 4 * FLOAT32_COPIES
    needed, limit = decoded + copies, decode_limit()
    if needed > limit:
        dims = " x ".join(str(int(n)) for n in shape)
        raise _unreadable(
            path,
            f"its header declares {dims} pixels: reading and segmenting it needs "
            f"{needed / 2**30:.1f} GiB ({decoded / 2**30:.1f} GiB decoded + "
            f"{copies / 2**30:.1f} GiB of float32 working copies), more than the "
            f"{limit / 2**30:.1f} GiB of memory available for one image",
            "Tile it into smaller images (e.g. in Fiji) or downsample it; if the file is small "
            "it is probably corrupt.",
        )
