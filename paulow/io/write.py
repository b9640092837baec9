"""Writing TIFF (ImageJ when it can hold the array), masks, class-index masks with a colour table,
and PNG; every write atomic."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tifffile

from paulow.calibration import Calibration, expand_pages, imagej_metadata, ome_metadata, safe_calibration

from .atomic import atomic_write_path
from .stack import _normalise_unit

_IMAGEJ_AXES = "TZCYXS"

_IMAGEJ_DTYPES = (np.uint8, np.uint16, np.float32)

_UNIT_TO_RESUNIT = {"inch": 2, "cm": 3}  # ImageJ keeps other units in its description only


def _default_axes(ndim: int) -> str:
    axes = {2: "YX", 3: "ZYX", 4: "ZCYX", 5: "TZCYX"}.get(ndim)
    if axes is None:
        raise ValueError(f"cannot choose axes for a {ndim}-D array; pass axes=")
    return axes


def _is_imagej_compatible(axes: str, dtype: np.dtype) -> bool:
    in_order = "".join(a for a in _IMAGEJ_AXES if a in axes) == axes
    rgb = "S" not in axes or dtype == np.uint8
    return in_order and rgb and any(dtype == d for d in _IMAGEJ_DTYPES) and "YX" in axes


def write_tiff(
    path: str | Path,
    array: np.ndarray,
    *,
    axes: str | None = None,
    resolution: tuple[float, float] | None = None,
    unit: str | None = None,
    compression: str | None = None,
    imagej_extra: dict | None = None,
    calibration: Calibration | None = None,
) -> Path:
    """Write `array` atomically as a TIFF: ImageJ format when ImageJ can hold it (uint8, uint16,
    float32 with axes in TZCYXS order), else a plain TIFF with the axes in its metadata.
    `imagej_extra` adds ImageJ metadata (e.g. `{"LUTs": [...]}`) when the file is ImageJ format.

    `axes` defaults to YX, ZYX, ZCYX, TZCYX for 2-5 dimensions; `resolution` is pixels per
    `unit` (x, y). `calibration` (an input's, see `paulow.calibration`) restores its page axes
    (T, Z) on a page-first ("Z...") array and writes its z-spacing and frame interval, as OME
    metadata for an OME input. Returns `path`.
    """
    array = np.asarray(array)
    unit = _normalise_unit(unit)  # ImageJ's spelling; its description must stay ASCII
    axes = axes or _default_axes(array.ndim)
    if len(axes) != array.ndim:
        raise ValueError(f"axes '{axes}' do not match an array of shape {array.shape}")
    ome = bool(calibration and calibration.ome)
    resolution, unit, calibration = safe_calibration(path, resolution, unit, calibration, ome)
    array, axes = expand_pages(array, axes, calibration)
    options: dict = {"compression": compression}
    if resolution is not None:
        options["resolution"] = (float(resolution[0]), float(resolution[1]))
        options["resolutionunit"] = _UNIT_TO_RESUNIT.get(unit or "", 1)
    metadata: dict = {"axes": axes}
    if unit is not None:
        metadata["unit"] = unit
    imagej = _is_imagej_compatible(axes, array.dtype) and not ome
    if imagej:
        metadata.update({**imagej_metadata(calibration), **(imagej_extra or {})})
    elif ome and calibration is not None:
        metadata = ome_metadata(axes, resolution, unit, calibration)
    photometric = "rgb" if "S" in axes and array.shape[axes.index("S")] in (3, 4) else "minisblack"
    with atomic_write_path(path) as temporary:
        tifffile.imwrite(
            temporary,
            array,
            imagej=imagej,
            ome=ome or None,
            metadata=metadata,
            photometric=photometric,
            **options,
        )
    return Path(path)


def binary_to_uint8(mask: np.ndarray) -> np.ndarray:
    """A 0/1 (or boolean, or any zero/non-zero) mask as uint8 0/255, the usual saved form."""
    return np.where(np.asarray(mask) != 0, 255, 0).astype(np.uint8)


def write_mask(
    path: str | Path,
    mask: np.ndarray,
    resolution: tuple[float, float] | None = None,
    unit: str | None = None,
    calibration: Calibration | None = None,
    imagej_extra: dict | None = None,
) -> Path:
    """Write a `(pages, H, W)` or `(H, W)` uint8/uint16 mask, values as given, as an ImageJ TIFF:
    one page as YX, several as a ZYX stack in page order. Use `binary_to_uint8` for 0/255."""
    mask = np.asarray(mask)
    if mask.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"write_mask needs uint8 or uint16, got {mask.dtype}; use binary_to_uint8 for a 0/1 mask"
        )
    if mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.ndim not in (2, 3):
        raise ValueError(f"write_mask needs (pages, H, W) or (H, W), got shape {mask.shape}")
    return write_tiff(
        path,
        mask,
        axes="YX" if mask.ndim == 2 else "ZYX",
        resolution=resolution,
        unit=unit,
        calibration=calibration,
        imagej_extra=imagej_extra,
    )


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write an `(H, W)` uint8/uint16 or `(H, W, 3|4)` uint8 image atomically as PNG."""
    from PIL import Image

    image = np.asarray(image)
    grey = image.ndim == 2 and image.dtype in (np.uint8, np.uint16)
    colour = image.ndim == 3 and image.shape[-1] in (3, 4) and image.dtype == np.uint8
    if not (grey or colour):
        raise ValueError(
            f"write_png needs (H, W) uint8/uint16 or (H, W, 3|4) uint8, got {image.shape} {image.dtype}"
        )
    with atomic_write_path(path) as temporary:
        Image.fromarray(np.ascontiguousarray(image)).save(temporary, format="PNG")
    return Path(path)


# Distinct colours for classes 1.. (class 0, the background, is black): a Glasbey-like start.
_CLASS_COLOURS = (
    (255, 0, 0),
    (0, 200, 0),
    (0, 90, 255),
    (255, 210, 0),
    (255, 0, 255),
    (0, 230, 230),
    (255, 128, 0),
    (150, 0, 255),
    (128, 255, 128),
    (128, 64, 0),
    (255, 128, 192),
    (0, 128, 128),
)


def class_lut(classes: int, colours: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """An ImageJ lookup table `uint8 (3, 256)`: index 0 black, indices 1..classes-1 distinct colours
    (cycling after 12); indices >= classes stay black. `colours` (`[[R, G, B], ...]`, one per class: a
    model's palette) replaces them."""
    lut = np.zeros((3, 256), dtype=np.uint8)
    if colours is not None and len(colours) == classes:
        lut[:, : len(colours)] = np.asarray(colours, dtype=np.uint8).T[:, :256]
        return lut
    for index in range(1, min(int(classes), 256)):
        lut[:, index] = _CLASS_COLOURS[(index - 1) % len(_CLASS_COLOURS)]
    return lut


def write_label_tiff(
    path: str | Path,
    labels: np.ndarray,
    classes: int,
    resolution: tuple[float, float] | None = None,
    unit: str | None = None,
    colours: Sequence[Sequence[int]] | None = None,
    calibration: Calibration | None = None,
) -> Path:
    """Write a class-index mask `(pages, H, W)` or `(H, W)` uint8 (values 0..classes-1) as an ImageJ
    TIFF carrying a lookup table with a distinct colour per class (`colours`, a model's palette, when
    given), so Fiji shows it in colour."""
    labels = np.asarray(labels)
    if labels.dtype != np.uint8:
        raise ValueError(f"write_label_tiff needs uint8 class indices, got {labels.dtype}")
    if labels.ndim == 3 and labels.shape[0] == 1:
        labels = labels[0]
    if labels.ndim not in (2, 3):
        raise ValueError(f"write_label_tiff needs (pages, H, W) or (H, W), got shape {labels.shape}")
    return write_tiff(
        path,
        labels,
        axes="YX" if labels.ndim == 2 else "ZYX",
        resolution=resolution,
        unit=unit,
        imagej_extra={"LUTs": [class_lut(classes, colours)], "min": 0.0, "max": 255.0},
        calibration=calibration,
    )
