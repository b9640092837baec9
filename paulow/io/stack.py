"""The in-memory form of a read image (`ImageStack`), the file types PAULow reads, and the small
helpers every reader shares: axes to `(pages, C, H, W)`, unit spellings, one-line read errors."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from paulow.calibration import Calibration
from paulow.errors import UnreadableImageError

TIFF_EXTENSIONS = (".tif", ".tiff")

RASTER_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")

SUPPORTED_EXTENSIONS = TIFF_EXTENSIONS + RASTER_EXTENSIONS

_CHANNEL_AXES = "CS"

_MICRON_SPELLINGS = frozenset(
    {
        "micron",
        "microns",
        "um",
        "µm",
        "μm",
        "\\u00b5m",
        "micrometer",
        "micrometre",
        "micrometers",
        "micrometres",
    }
)

_UNREADABLE_FIX = "Re-export it as TIFF or PNG, or remove it from the folder."


@dataclass
class ImageStack:
    """An image or stack as read from a file: `data` is `(pages, C, H, W)` in the file's dtype."""

    data: np.ndarray
    path: Path
    axes: str
    resolution: tuple[float, float] | None = None
    unit: str | None = None
    geometry: Any = None  # a `paulow.volume_geometry.VolumeGeometry` for NIfTI and DICOM inputs
    calibration: Calibration | None = None  # page layout (T, Z), z-spacing, frame interval, OME

    @property
    def pixel_size(self) -> float | None:
        """Pixel width in `unit` (1 / x resolution), or None when the file has no resolution."""
        if self.resolution is None or not self.resolution[0]:
            return None
        size = 1.0 / self.resolution[0]
        return size if math.isfinite(size) and size > 0 else None  # NaN/inf sizes: uncalibrated


def _one_line(reason: str, limit: int = 200) -> str:
    text = " ".join(str(reason).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unreadable(path: Path, reason: str, fix: str = _UNREADABLE_FIX) -> UnreadableImageError:
    return UnreadableImageError(f"cannot read '{path}': {_one_line(reason).rstrip('.')}. {fix}")


def has_alpha(stack: ImageStack) -> bool:
    """Whether the last channel of `stack` is an alpha (opacity) channel: grey+alpha or RGBA samples."""
    return "S" in stack.axes and "C" not in stack.axes and stack.data.shape[1] in (2, 4)


def _to_pages_channels(data: np.ndarray, axes: str) -> np.ndarray:
    """Reorder an array with tifffile axes to `(pages, C, H, W)`: C and S are channels, the
    other non-YX axes are flattened into pages in file order."""
    if len(axes) != data.ndim or "Y" not in axes or "X" not in axes:
        raise ValueError(f"axes '{axes}' do not describe an image of shape {data.shape}")
    page_axes = [i for i, a in enumerate(axes) if a not in _CHANNEL_AXES + "YX"]
    channel_axes = [i for i, a in enumerate(axes) if a in _CHANNEL_AXES]
    moved = np.transpose(data, page_axes + channel_axes + [axes.index("Y"), axes.index("X")])
    pages = math.prod(data.shape[i] for i in page_axes)
    channels = math.prod(data.shape[i] for i in channel_axes)
    return moved.reshape(pages, channels, *moved.shape[-2:])


def _normalise_unit(unit: str | None) -> str | None:
    if unit is None:
        return None
    text = str(unit).strip()
    if text.lower() in _MICRON_SPELLINGS:
        return "micron"
    return None if text.lower() in ("", "pixel", "pixels", "none") else text


def count_nonfinite(array: np.ndarray) -> int:
    """Number of NaN or infinite values (0 for integer arrays)."""
    array = np.asarray(array)
    if array.dtype.kind not in "fc":
        return 0
    return int(array.size - np.count_nonzero(np.isfinite(array)))


def image_info(stack: ImageStack) -> dict:
    """Shape, dtype, min and max (of the finite values; None if none), axes, pixel size, unit."""
    data = stack.data
    finite = data[np.isfinite(data)] if data.dtype.kind == "f" else data
    low = high = None
    if finite.size:
        low, high = finite.min().item(), finite.max().item()
    return {
        "shape": tuple(int(s) for s in data.shape),
        "dtype": str(data.dtype),
        "min": low,
        "max": high,
        "axes": stack.axes,
        "pixel_size": stack.pixel_size,
        "unit": stack.unit,
    }
