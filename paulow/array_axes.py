"""Arrays given to the API in any layout: `axes` (e.g. "YXC", "ZYX", "CYX", "TZCYX") names each
dimension, and the array becomes the `(pages, C, H, W)` stack the package works on (C and S are
channels; T, Z and other page axes are pages in order, as `paulow.io` reads files)."""

from __future__ import annotations

import numpy as np

from .errors import ShapeMismatchError

_LETTERS = "TZQCSYX"


def default_axes(array: np.ndarray) -> str:
    """YX, CYX or ZCYX by dimension; a 3-D array whose last dimension is 3 or 4 and whose first is
    longer than 4 is channels-last (YXC: an RGB(A) image as most libraries load it)."""
    if array.ndim == 3 and array.shape[-1] in (3, 4) and array.shape[0] > 4:
        return "YXC"
    axes = {2: "YX", 3: "CYX", 4: "ZCYX"}.get(array.ndim)
    if axes is None:
        raise ShapeMismatchError(
            f"an image must be (H, W), (C, H, W) or (pages, C, H, W), not {array.shape}: "
            "pass axes= (e.g. 'TZCYX') to say what each dimension is"
        )
    return axes


def as_pages_channels(array: np.ndarray, axes: str | None = None) -> tuple[np.ndarray, str]:
    """(the `(pages, C, H, W)` stack, the axes used) for an array read as `axes` (default:
    `default_axes`)."""
    from .io.stack import _to_pages_channels

    array = np.asarray(array)
    used = (axes or default_axes(array)).upper()
    if (
        len(used) != array.ndim
        or len(set(used)) != len(used)
        or set(used) - set(_LETTERS)
        or "Y" not in used
        or "X" not in used
    ):
        raise ShapeMismatchError(
            f"axes '{axes}' do not describe an array of shape {array.shape}: give one "
            f"letter per dimension from {_LETTERS}, with Y and X (e.g. 'YXC' for an "
            "RGB image, 'ZYX' for a stack)"
        )
    return _to_pages_channels(array, used), used
