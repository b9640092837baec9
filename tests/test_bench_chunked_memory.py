"""bench/chunked_memory.py: the synthetic inputs are the same image as TIFF and as OME-Zarr."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_synthetic_tiff_and_ome_zarr_hold_the_same_pixels(tmp_path):
    sys.path.insert(0, str(BENCH))
    import chunked_memory

    from paulow.lazy import open_lazy

    paths = chunked_memory.write_inputs(600, tmp_path, ["tiff", "ome-zarr"])  # 2 x 2 tiles, partial edges
    tiff, omezarr = open_lazy(paths["tiff"]), open_lazy(paths["ome-zarr"])
    assert tiff.shape == omezarr.shape == (1, 1, 600, 600)
    pixels = tiff.read(0)
    assert np.array_equal(pixels, omezarr.read(0))
    assert np.array_equal(pixels[0, 512:, :512], chunked_memory.synthetic_tile(600, 1, 0))
    assert pixels.dtype == np.uint16 and (pixels == 40000).any() and pixels.min() >= 1000
