"""Tiled (Big)TIFF from a chunked array, one band of rows at a time (memory: one band)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

TIFF_TILE = 256


def _tiles(array: Any, pages: int, scale: int, dtype: Any) -> Iterator[np.ndarray]:
    """Full TIFF tiles (edge tiles zero-padded) in page, row, column order."""
    height, width = array.shape[-2:]
    for page in range(pages):
        lead = (page,) if array.ndim == 3 else ()
        for y in range(0, height, TIFF_TILE):
            band = np.asarray(array[lead + (slice(y, y + TIFF_TILE), slice(None))])
            for x in range(0, width, TIFF_TILE):
                tile = np.zeros((TIFF_TILE, TIFF_TILE), dtype=dtype)
                part = band[:, x : x + TIFF_TILE]
                tile[: part.shape[0], : part.shape[1]] = part * scale if scale != 1 else part
                yield tile


def write_tiled_tiff(path: Path, array: Any, pages: int, *, scale: int = 1, dtype: Any = np.uint8) -> Path:
    """Write a (pages, H, W) or (H, W) chunked array as a tiled, zlib-compressed TIFF (BigTIFF
    above 2 GiB) at a free name next to `path`; nothing is overwritten."""
    import tifffile

    from .io import atomic_write_path, unique_path

    height, width = array.shape[-2:]
    shape = (pages, height, width) if pages > 1 else (height, width)
    nbytes = pages * height * width * np.dtype(dtype).itemsize
    final = unique_path(Path(path))
    with atomic_write_path(final) as tmp:
        tifffile.imwrite(
            tmp,
            _tiles(array, pages, scale, dtype),
            shape=shape,
            dtype=dtype,
            tile=(TIFF_TILE, TIFF_TILE),
            compression="zlib",
            bigtiff=nbytes > 2**31 - 2**25,
            metadata={"axes": "ZYX" if pages > 1 else "YX"},
        )
    return final
