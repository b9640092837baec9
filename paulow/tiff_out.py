"""Tiled (Big)TIFF from a chunked array, one band of tile rows at a time (memory: one band and
one stored chunk)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

TIFF_TILE = 256
# pixels per centimetre in one unit of PAULow's spelling (TIFF resolution tags are per cm)
PER_CM = {"micron": 1e4, "nm": 1e7, "mm": 10.0, "cm": 1.0, "m": 0.01, "inch": 1 / 2.54}


def _band(array: Any, lead: tuple, y: int) -> np.ndarray:
    """Rows y..y+TIFF_TILE of a page, read one stored chunk column at a time so that only one
    chunk is decoded at once (memory: the band plus one chunk, whatever the image width)."""
    chunks = getattr(array, "chunks", None)
    step = int(chunks[-1]) if chunks else array.shape[-1]
    rows = slice(y, y + TIFF_TILE)
    parts = [np.asarray(array[lead + (rows, slice(x, x + step))]) for x in range(0, array.shape[-1], step)]
    return np.concatenate(parts, axis=-1)


def tiles(array: Any, pages: int, scale: int, dtype: Any) -> Iterator[np.ndarray]:
    """Full TIFF tiles (edge tiles zero-padded) in page, row, column order."""
    height, width = array.shape[-2:]
    for page in range(pages):
        lead = (page,) if array.ndim == 3 else ()
        for y in range(0, height, TIFF_TILE):
            band = _band(array, lead, y)
            for x in range(0, width, TIFF_TILE):
                tile = np.zeros((TIFF_TILE, TIFF_TILE), dtype=dtype)
                part = band[:, x : x + TIFF_TILE]
                tile[: part.shape[0], : part.shape[1]] = part * scale if scale != 1 else part
                yield tile


def resolution_tags(pixel_size: tuple[float, float, str] | None, factor: int = 1) -> dict[str, Any]:
    """TIFF resolution tags (pixels per cm) for a (y, x, unit) pixel size, `factor` times coarser;
    none for an unknown unit."""
    if pixel_size is None or pixel_size[2] not in PER_CM:
        return {}
    size_y, size_x, unit = pixel_size
    return {
        "resolution": (PER_CM[unit] / (size_x * factor), PER_CM[unit] / (size_y * factor)),
        "resolutionunit": "CENTIMETER",
    }


def write_tiled_tiff(
    path: Path,
    array: Any,
    pages: int,
    *,
    scale: int = 1,
    dtype: Any = np.uint8,
    pixel_size: tuple[float, float, str] | None = None,
) -> Path:
    """Write a (pages, H, W) or (H, W) chunked array as a tiled, zlib-compressed TIFF (BigTIFF
    above 2 GiB) at a free name next to `path`, with the (y, x, unit) `pixel_size` when known;
    nothing is overwritten."""
    import tifffile

    from .io.atomic import atomic_write_path, unique_path

    height, width = array.shape[-2:]
    shape = (pages, height, width) if pages > 1 else (height, width)
    nbytes = pages * height * width * np.dtype(dtype).itemsize
    final = unique_path(Path(path))
    with atomic_write_path(final) as tmp:
        tifffile.imwrite(
            tmp,
            tiles(array, pages, scale, dtype),
            shape=shape,
            dtype=dtype,
            tile=(TIFF_TILE, TIFF_TILE),
            compression="zlib",
            bigtiff=nbytes > 2**31 - 2**25,
            metadata={"axes": "ZYX" if pages > 1 else "YX"},
            **resolution_tags(pixel_size),
        )
    return final
