"""What the napari plugin needs beyond training and predicting: the errors it reports, a model's
attention-gate maps and volumes (NIfTI files, DICOM series) read with their voxel spacing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import Cancelled, PaulowError, ShapeMismatchError, UsageError
from .model import Model

__all__ = [
    "Cancelled",
    "PaulowError",
    "ShapeMismatchError",
    "UsageError",
    "Volume",
    "attention_maps",
    "is_volume",
    "open_volume",
]


def attention_maps(model: Model, page: np.ndarray) -> list[np.ndarray]:
    """(H, W) maps of the first network's attention gates, deepest first, for one raw (C, H, W) page,
    computed on `model.device`; [] when the network has no gates, was trained with context, or the
    page is too large for one pass (a warning says which)."""
    from ..attention import gate_maps

    return gate_maps(model.networks[0], model.meta, model.in_channels, page, model.device)


@dataclass(frozen=True)
class Volume:
    """A volume as stored: `data` (Z, C, Y, X), its name (the file or folder, no suffix), voxel
    `scale` (z, y, x), the NIfTI-style `affine` and the length `unit` (None: not stored)."""

    data: np.ndarray
    name: str
    scale: tuple[float, float, float]
    affine: list
    unit: str | None


def is_volume(path: str | Path) -> bool:
    """A NIfTI file (`.nii`, `.nii.gz`) or a folder of DICOM slices."""
    from ..volumes import is_volume as volume

    return volume(path)


def open_volume(path: str | Path) -> Volume:
    """Read a NIfTI file or a DICOM series folder (no reorientation: voxels as stored)."""
    from ..io import read_image
    from ..volumes import volume_stem

    stack = read_image(Path(path))
    i, j, k = stack.geometry.spacing
    return Volume(stack.data, volume_stem(stack.path), (k, j, i), stack.geometry.affine.tolist(), stack.unit)
