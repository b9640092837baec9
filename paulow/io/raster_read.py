"""Reading PNG, JPEG and BMP with Pillow (OpenCV for 16-bit colour PNG, which Pillow reduces to
8 bits)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .declared_size import check_declared_size
from .stack import ImageStack, _to_pages_channels


def _png_header(path: Path) -> tuple[int, int] | None:
    """(bit depth, colour type) of a PNG, or None for other files."""
    with open(path, "rb") as handle:
        head = handle.read(26)
    if len(head) < 26 or not head.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    return head[24], head[25]


def _read_raster(path: Path, palette_indices: bool) -> ImageStack:
    from PIL import Image  # Pillow is strict about truncation, unlike some OpenCV builds

    with Image.open(path) as image:
        check_declared_size(path, (image.height, image.width, len(image.getbands())), np.dtype(np.uint16))
        image.load()
        header = _png_header(path)
        if header is not None and header[0] == 16:
            data = _read_png16(path, colour_type=header[1])
        else:
            data = _pillow_array(image, palette_indices)
    axes = "YX" if data.ndim == 2 else "YXS"
    return ImageStack(_to_pages_channels(data, axes), path, axes)


def _pillow_array(image, palette_indices: bool) -> np.ndarray:
    mode = image.mode
    if mode == "P" and palette_indices:
        return np.asarray(image)
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        return np.asarray(image.convert("RGBA" if has_alpha else "RGB"))
    if mode in ("1", "L", "LA", "RGB", "RGBA", "I", "F") or mode.startswith("I;16"):
        return np.asarray(image)
    return np.asarray(image.convert("RGB"))  # CMYK, YCbCr, LAB, HSV, premultiplied modes


def _read_png16(path: Path, colour_type: int) -> np.ndarray:
    """A 16-bit PNG via OpenCV (Pillow reduces 16-bit colour to 8 bits), as grey, grey+alpha or
    RGB(A) uint16."""
    import cv2

    data = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise ValueError("OpenCV could not decode this 16-bit PNG")
    if data.ndim == 2:
        return data
    rgb = data[..., [2, 1, 0, 3][: data.shape[-1]]]
    if colour_type == 4:  # OpenCV expands grey+alpha to BGRA
        return rgb[..., [0, 3]]
    return rgb
