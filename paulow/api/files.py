"""Image and mask files, and synthetic data sets with exact masks, for front ends (the demo, the bench):
the package's own readers and writers (`paulow.io`, `paulow.synthetic`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def read_image(path: str | Path) -> np.ndarray:
    """An image or stack as a `(pages, C, H, W)` array in its file's dtype (TIFF, OME-TIFF, PNG, JPEG, ...)."""
    from ..io import read_image as read

    return read(path).data


def read_mask(path: str | Path) -> np.ndarray:
    """A mask as an integer `(pages, H, W)` array of its raw values (not binarised)."""
    from ..io import read_mask as read

    return read(path)


def write_image(path: str | Path, image: np.ndarray, axes: str | None = None) -> Path:
    """Write `image` as a TIFF (atomic; `axes` such as "ZYX" or "CYX" names its layout); return the path."""
    from ..io import write_tiff

    write_tiff(path, image, axes=axes)
    return Path(path)


def write_mask(path: str | Path, mask: np.ndarray, binary: bool = False) -> Path:
    """Write a mask as a TIFF (atomic); `binary`: any non-zero pixel is saved as 255, else the values
    (class indices, labels) are kept. Returns the path."""
    from ..io import binary_to_uint8
    from ..io import write_mask as write

    write(path, binary_to_uint8(mask) if binary else mask)
    return Path(path)


def image_pairs(images: str | Path, masks: str | Path) -> list[tuple[Path, Path]]:
    """The images of folder `images` paired with their masks in folder `masks`, as training pairs them."""
    from ..io import list_images, pair_images_masks

    return pair_images_masks(list_images(Path(images)), list_images(Path(masks)))


def synthetic_image(
    kind: str = "nuclei", size: tuple[int, int] = (128, 128), seed: int = 0, **options: Any
) -> tuple[np.ndarray, np.ndarray]:
    """One reproducible synthetic `(image, mask)` of `kind` ("nuclei", "filaments", "classes"; options
    go to its generator in `paulow.synthetic`)."""
    from ..synthetic import _generator

    return _generator(kind)(size, seed=seed, **options)


def write_synthetic_dataset(images: str | Path, masks: str | Path, **options: Any) -> list[tuple[Path, Path]]:
    """Write synthetic images and their exact masks as TIFFs into the folders `images` and `masks`
    (`paulow.synthetic.write_dataset` options: kind, n, size, seed, image_name, mask_name, ...);
    existing files are never overwritten. Returns the (image, mask) paths."""
    from ..synthetic import write_dataset

    return write_dataset(images, masks, **options)
