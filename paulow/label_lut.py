"""A distinct-colour (Glasbey-like) lookup table for instance label images, so Fiji shows
neighbouring objects in different colours."""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=1)
def glasbey_lut() -> np.ndarray:
    """ImageJ LUT `uint8 (3, 256)`: index 0 black, then each colour the farthest (CIELAB distance)
    from all chosen before it, from a 16-level RGB grid (Glasbey et al. 2007's greedy rule)."""
    from skimage.color import rgb2lab

    levels = np.linspace(0, 255, 16)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    lab = rgb2lab(grid[None] / 255.0)[0]
    chosen = [0]  # black, the background
    nearest = np.linalg.norm(lab - lab[0], axis=1)
    nearest[lab[:, 0] > 95] = 0  # leave out near-white, invisible on a bright display
    for _ in range(255):
        index = int(np.argmax(nearest))
        chosen.append(index)
        nearest = np.minimum(nearest, np.linalg.norm(lab - lab[index], axis=1))
    return np.round(grid[chosen]).astype(np.uint8).T.copy()


def label_display() -> dict:
    """ImageJ metadata for a uint16 label image: the LUT over the display range 0..255 (label L
    shows colour L; labels above 255 show the last colour)."""
    return {"LUTs": [glasbey_lut()], "min": 0.0, "max": 255.0}
