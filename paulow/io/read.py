"""`read_image`, `read_mask`, `read_mask_stack`: any supported file to `(pages, C, H, W)` in its
dtype, or a mask's integer values; every failure one `UnreadableImageError` line."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from paulow.errors import UnreadableImageError

from .raster_read import _read_raster
from .stack import SUPPORTED_EXTENSIONS, TIFF_EXTENSIONS, ImageStack, _unreadable, has_alpha
from .tiff_read import _read_tiff


def read_image(path: str | Path) -> ImageStack:
    """Read an image or stack as `(pages, C, H, W)` in its file dtype (bool becomes uint8 0/1).

    Raises `UnreadableImageError` for a missing, corrupt, truncated or unsupported file.
    """
    return _read(Path(path), palette_indices=False)


def read_mask(path: str | Path) -> np.ndarray:
    """Read a mask as an integer `(pages, H, W)` array of raw values (not binarised).

    Channels are merged: a trailing alpha channel that is constant is ignored; if all remaining
    channels are equal one is kept, otherwise a pixel that is non-zero in any channel becomes 1
    (uint8 0/1). Palette PNGs give their indices. Float masks keep their values (as integers) when
    every value is integral, else become `value > 0`; NaN counts as 0.
    """
    stack = _read(Path(path), palette_indices=True)
    return _integer_mask(_merge_channels(stack))


def read_mask_stack(path: str | Path, palette_indices: bool = True) -> ImageStack:
    """Read a mask keeping its channels: `data` is integer `(pages, C, H, W)` (values as `read_mask`
    gives them), a constant trailing alpha channel dropped. `palette_indices=False` reads a palette
    PNG as its colours."""
    stack = _read(Path(path), palette_indices)
    stack.data = _integer_mask(_without_constant_alpha(stack))
    return stack


def _read(path: Path, palette_indices: bool) -> ImageStack:
    from ..volumes import is_volume, read_volume

    if is_volume(path):
        stack = read_volume(path)
        stack.data = _native_dtype(stack.data, path)
        return stack
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise _unreadable(
            path, f"unsupported file type '{path.suffix}' (supported: {', '.join(SUPPORTED_EXTENSIONS)})"
        )
    if not path.is_file():
        raise _unreadable(path, "file not found", "Check the path and that the file was not moved.")
    try:
        stack = _read_tiff(path) if suffix in TIFF_EXTENSIONS else _read_raster(path, palette_indices)
    except UnreadableImageError:
        raise
    except MemoryError:
        raise _unreadable(
            path,
            "it is too large to decode in the available memory",
            "Crop or downsample it (e.g. in Fiji), or use a machine with more memory.",
        ) from None
    except Exception as exc:  # every decoder failure is a user-fixable file problem
        raise _unreadable(path, str(exc) or type(exc).__name__) from exc
    if not isinstance(stack.data, np.ndarray) or stack.data.dtype.kind not in "biufc":
        # a damaged header can make a decoder hand back raw bytes (a memoryview) or untyped values
        raise _unreadable(
            path,
            f"its pixels decode as {type(stack.data).__name__} "
            f"{getattr(stack.data, 'dtype', '')}, not numbers",
        )
    stack.data = _native_dtype(stack.data, path)
    return stack


def _native_dtype(data: np.ndarray, path: Path) -> np.ndarray:
    if data.dtype == bool:
        return data.astype(np.uint8)
    if data.dtype.kind == "c":
        raise _unreadable(path, "complex pixel values are not supported")
    if not data.dtype.isnative:
        return data.astype(data.dtype.newbyteorder("="))
    return data


def _without_constant_alpha(stack: ImageStack) -> np.ndarray:
    data = stack.data
    if has_alpha(stack):
        alpha = data[:, -1]
        if alpha.size and np.all(alpha == alpha.flat[0]):
            data = data[:, :-1]
    return data


def _merge_channels(stack: ImageStack) -> np.ndarray:
    data = _without_constant_alpha(stack)
    if data.shape[1] == 1 or np.all(data == data[:, :1]):
        return data[:, 0]
    return np.any(data != 0, axis=1).astype(np.uint8)


def _integer_mask(mask: np.ndarray) -> np.ndarray:
    if mask.dtype.kind in "ui":
        return mask
    finite = np.where(np.isfinite(mask), mask, 0)
    if not np.array_equal(finite, np.round(finite)):
        return (finite > 0).astype(np.uint8)
    low, high = (finite.min(), finite.max()) if finite.size else (0, 0)
    for dtype in (np.uint8, np.uint16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return finite.astype(dtype)
    return finite.astype(np.int64)
