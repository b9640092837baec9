"""Decoder bounds: a TIFF page chain that loops, too many pages (in the chain or declared by a
header), and an image whose float32 working copies do not fit are each refused quickly with one
line naming the limit and the fix. Test files are written by tifffile, then byte-patched."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from paulow import io as pio
from paulow import limits
from paulow.errors import UnreadableImageError
from paulow.io import declared_size
from paulow.io import read as io_read
from paulow.tiff_guard import count_pages


def _ifd_offsets(path: Path) -> list[tuple[int, int]]:
    """(IFD offset, offset of its next-IFD field) along a little-endian classic TIFF's chain."""
    data = path.read_bytes()
    offset, found = struct.unpack("<I", data[4:8])[0], []
    while offset:
        entries = struct.unpack("<H", data[offset : offset + 2])[0]
        next_at = offset + 2 + 12 * entries
        found.append((offset, next_at))
        offset = struct.unpack("<I", data[next_at : next_at + 4])[0]
    return found


def _stack(path: Path, pages: int) -> Path:
    """A plain TIFF of `pages` 4 x 4 pages, one IFD each."""
    with tifffile.TiffWriter(path) as tif:
        for page in np.arange(pages * 16, dtype=np.uint8).reshape(pages, 4, 4):
            tif.write(page, metadata=None)
    return path


@pytest.mark.parametrize("reader", [pio.read_image, pio.read_mask])
def test_a_looping_page_chain_is_refused_quickly(tmp_path, reader):
    path = _stack(tmp_path / "loop.tif", 3)
    ifds = _ifd_offsets(path)
    data = bytearray(path.read_bytes())
    data[ifds[-1][1] : ifds[-1][1] + 4] = struct.pack("<I", ifds[0][0])  # page 3 -> page 1
    path.write_bytes(bytes(data))
    start = time.monotonic()
    with pytest.raises(UnreadableImageError) as info:
        reader(path)
    assert time.monotonic() - start < 2
    assert str(info.value) == (
        f"cannot read '{path}': its page chain loops (page 3 points back to page 1). "
        "The file is corrupt: export it again from the acquisition software or Fiji."
    )


def test_a_chain_with_more_pages_than_the_limit_is_refused(tmp_path, monkeypatch):
    path = _stack(tmp_path / "long.tif", 12)
    assert count_pages(path) == 12
    monkeypatch.setattr(limits, "MAX_PAGES", 10)
    with pytest.raises(UnreadableImageError) as info:
        pio.read_image(path)
    assert "it holds more than 10 pages (PAULow's limit per file). Split the stack into smaller files" in str(
        info.value
    )


def test_indexing_is_time_bounded(tmp_path, monkeypatch):
    path = _stack(tmp_path / "slow.tif", 3)
    monkeypatch.setattr(limits, "INDEX_SECONDS", -1.0)  # any index is too slow
    with pytest.raises(
        UnreadableImageError, match=r"indexing its pages took more than -1 s \(PAULow's limit\)"
    ):
        pio.read_image(path)


def test_an_imagej_header_declaring_too_many_pages_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(path, np.zeros((6, 4, 4), np.uint8), imagej=True, metadata={"axes": "ZYX"})
    data = bytearray(path.read_bytes())
    next_at = _ifd_offsets(path)[0][1]
    data[next_at : next_at + 4] = bytes(4)  # one page in the chain; the header still says images=6
    path.write_bytes(bytes(data))
    assert count_pages(path) == 1
    monkeypatch.setattr(limits, "MAX_PAGES", 5)
    with pytest.raises(
        UnreadableImageError, match="its header declares 6 pages, more than the 5 PAULow reads"
    ):
        pio.read_mask(path)
    monkeypatch.setattr(limits, "MAX_PAGES", 6)
    assert pio.read_mask(path).shape == (6, 4, 4)


def test_the_memory_check_counts_the_float32_copies(tmp_path, monkeypatch):
    path = tmp_path / "wide.tif"
    tifffile.imwrite(path, np.zeros((512, 1024), np.uint8), compression="zlib")
    decoded, copies = 512 * 1024, 512 * 1024 * 4 * pio.FLOAT32_COPIES
    monkeypatch.setattr(
        declared_size, "decode_limit", lambda: decoded + copies - 1
    )  # the decoded file alone fits
    with pytest.raises(UnreadableImageError) as info:
        pio.read_image(path)
    line = str(info.value)
    assert (
        "\n" not in line and "its header declares 512 x 1024 pixels: reading and segmenting it needs" in line
    )
    assert "(0.0 GiB decoded + 0.0 GiB of float32 working copies)" in line
    assert line.endswith(
        "Tile it into smaller images (e.g. in Fiji) or downsample it; if the file is small it is "
        "probably corrupt."
    )
    monkeypatch.setattr(declared_size, "decode_limit", lambda: decoded + copies)
    assert pio.read_image(path).data.shape == (1, 1, 512, 1024)


def test_a_40000_square_deflate_tiff_is_refused_up_front(tmp_path, monkeypatch):
    # a real 40,000 x 40,000 file is 1.5 GB to write: patch a small one's width and height instead
    path = tmp_path / "huge.tif"
    tifffile.imwrite(path, np.zeros((16, 16), np.uint8), compression="zlib", rowsperstrip=16)
    data = bytearray(path.read_bytes())
    offset = struct.unpack("<I", data[4:8])[0]
    for e in range(struct.unpack("<H", data[offset : offset + 2])[0]):
        at = offset + 2 + 12 * e
        if struct.unpack("<H", data[at : at + 2])[0] in (256, 257):  # ImageWidth, ImageLength
            data[at + 2 : at + 12] = struct.pack("<HII", 4, 1, 40_000)
    path.write_bytes(bytes(data))
    monkeypatch.setattr(declared_size, "decode_limit", lambda: 8 << 30)  # what a 16 GiB machine has free
    start = time.monotonic()
    with pytest.raises(UnreadableImageError) as info:
        pio.read_image(path)
    assert time.monotonic() - start < 2
    assert (
        "its header declares 40000 x 40000 pixels: reading and segmenting it needs 13.4 GiB (1.5 GiB decoded "
        "+ 11.9 GiB of float32 working copies), more than the 8.0 GiB of memory available"
    ) in str(info.value)


def test_decoders_handing_back_no_array_are_one_line(tmp_path, monkeypatch):
    path = _stack(tmp_path / "x.tif", 1)
    monkeypatch.setattr(io_read, "_read_tiff", lambda p: pio.ImageStack(memoryview(b"abcd"), p, "YX"))
    for reader in (pio.read_image, pio.read_mask):
        with pytest.raises(UnreadableImageError, match="its pixels decode as memoryview , not numbers"):
            reader(path)
