"""napari reader for volumes: NIfTI files and DICOM series folders open with their voxel spacing
(`scale`, z then y then x); `*_mask` / `*_labels` NIfTI files (PAULow's outputs) open as labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def get_reader(path: str | list[str]):
    """The reader for a NIfTI file or a DICOM series folder, else None (napari asks another plugin)."""
    from ..volumes import is_volume

    if isinstance(path, list):
        return None
    return read_layers if is_volume(path) else None


def read_layers(path: str | list[str]) -> list[tuple]:
    """One layer: (data (Z, Y, X) or (C, Z, Y, X), {"name", "scale", "metadata"}, "image" | "labels")."""
    from ..io import read_image
    from ..volumes import volume_stem

    stack = read_image(Path(path if isinstance(path, str) else path[0]))
    i, j, k = stack.geometry.spacing
    name = volume_stem(stack.path)
    labels = stack.data.dtype.kind in "iu" and name.lower().endswith(("_mask", "_labels"))
    data = stack.data[:, 0] if stack.data.shape[1] == 1 else stack.data.transpose(1, 0, 2, 3)
    meta: dict[str, Any] = {
        "name": name,
        "scale": (k, j, i),
        "metadata": {"affine": stack.geometry.affine.tolist(), "unit": stack.unit},
    }
    if data.ndim == 4:
        meta["channel_axis"] = 0
    return [(data, meta, "labels" if labels else "image")]
