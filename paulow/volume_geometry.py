"""Where a volume's voxels lie (`VolumeGeometry`), and the one-line error for a volume file that
cannot be read: shared by the NIfTI reader (`paulow.volumes`) and the DICOM reader (`paulow.dicom`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UnreadableImageError

DICOM_SUFFIX = ".dcm"
FIX = "Re-export it from the scanner software or a converter (e.g. dcm2niix), or remove it from the folder."


@dataclass(frozen=True)
class VolumeGeometry:
    """Where voxels lie: `affine` maps (column i, row j, page k) to millimetres (RAS+, as NIfTI);
    `shape` is (i, j, k); `kind` is "nifti" or "dicom"; `codes` the NIfTI (qform, sform) codes."""

    affine: np.ndarray
    shape: tuple[int, int, int]
    kind: str
    unit: str | None = "mm"
    codes: tuple[int, int] = (1, 1)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size along i (columns), j (rows) and k (pages), in `unit`."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    def same_as(self, other: VolumeGeometry, tolerance: float = 1e-3) -> bool:
        """Same voxel grid: same shape and affine (within `tolerance` mm)."""
        return self.shape == other.shape and bool(np.allclose(self.affine, other.affine, atol=tolerance))


def unreadable(path: Path, reason: str, fix: str = FIX) -> UnreadableImageError:
    """The error for a volume file or series that cannot be read: what and how to fix it."""
    return UnreadableImageError(f"cannot read '{path}': {reason}. {fix}")
