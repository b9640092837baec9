"""napari reader for volumes: NIfTI files and DICOM series folders open with their voxel spacing
(`scale`, z then y then x); `*_mask` / `*_labels` NIfTI files (PAULow's outputs) open as labels."""

from __future__ import annotations

from typing import Any


def get_reader(path: str | list[str]):
    """The reader for a NIfTI file or a DICOM series folder, else None (napari asks another plugin)."""
    import paulow.api

    if isinstance(path, list):
        return None
    return read_layers if paulow.api.is_volume(path) else None


def read_layers(path: str | list[str]) -> list[tuple]:
    """One layer: (data (Z, Y, X) or (C, Z, Y, X), {"name", "scale", "metadata"}, "image" | "labels")."""
    import paulow.api

    volume = paulow.api.open_volume(path if isinstance(path, str) else path[0])
    name, stored = volume.name, volume.data
    labels = stored.dtype.kind in "iu" and name.lower().endswith(("_mask", "_labels"))
    data = stored[:, 0] if stored.shape[1] == 1 else stored.transpose(1, 0, 2, 3)
    meta: dict[str, Any] = {
        "name": name,
        "scale": volume.scale,
        "metadata": {"affine": volume.affine, "unit": volume.unit},
    }
    if data.ndim == 4:
        meta["channel_axis"] = 0
    return [(data, meta, "labels" if labels else "image")]
