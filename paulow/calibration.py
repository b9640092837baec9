"""Stack layout and calibration carried from an input TIFF to the masks, labels and probabilities
written for it: ImageJ hyperstack axes (T, Z), z-spacing, frame interval and units; OME-TIFF in,
OME-TIFF metadata out.

Written defensively: a unit the ImageJ description cannot hold (it is ASCII) or a size that is NaN,
infinite, denormal or outside what a TIFF rational holds is dropped with one warning naming the file,
and the file is still written. Angstrom (Å) is converted to nm (x 0.1), a unit ImageJ knows.
"""

from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

_PAGE_AXES = "TZ"  # ImageJ's page axes, in its order
_ANGSTROM = frozenset({"\u00e5", "angstrom", "angstroms"})  # lower case of Å (U+00C5 and U+212B)
_RATIONAL_MAX = 2.0**31  # resolutions are written as 32-bit rationals


class MetadataWarning(UserWarning):
    """Calibration or units of an input could not be written with its outputs and were dropped."""


@dataclass(frozen=True)
class Calibration:
    """What a written stack keeps of its input besides the pixel size (`ImageStack.resolution`/`unit`).

    `page_axes` ("T", "Z" or "TZ") and `page_shape` describe how the input's pages are laid out;
    `spacing` is the z step in the image's unit, `finterval` the time between frames in `tunit`
    (seconds when None); `ome`: the input was an OME-TIFF, so the outputs carry OME metadata."""

    page_axes: str = ""
    page_shape: tuple[int, ...] = ()
    spacing: float | None = None
    finterval: float | None = None
    tunit: str | None = None
    ome: bool = False


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number


def _page_layout(axes: str, shape: tuple[int, ...]) -> tuple[str, tuple[int, ...]]:
    """The T/Z page axes of a series (others, e.g. a generic page axis 'Q' or 'I', give none)."""
    pages = [(a, n) for a, n in zip(axes, shape) if a not in "CSYX"]
    if not pages or any(a not in _PAGE_AXES for a, _ in pages):
        return "", ()
    letters = "".join(a for a, _ in pages)
    if "".join(a for a in _PAGE_AXES if a in letters) != letters:
        return "", ()
    return letters, tuple(int(n) for _, n in pages)


def read_calibration(tif, axes: str, shape: tuple[int, ...]) -> Calibration:
    """The layout and calibration of a `tifffile.TiffFile`'s first series (read as `axes`/`shape`)."""
    page_axes, page_shape = _page_layout(axes, shape)
    if tif.is_ome:
        spacing, finterval, tunit = _ome_steps(tif.ome_metadata)
        return Calibration(page_axes, page_shape, spacing, finterval, tunit, ome=True)
    meta = (tif.imagej_metadata or {}) if tif.is_imagej else {}
    tunit = meta.get("tunit")
    return Calibration(
        page_axes,
        page_shape,
        _number(meta.get("spacing")),
        _number(meta.get("finterval")),
        str(tunit) if tunit is not None else None,
    )


def _ome_steps(xml: str | None) -> tuple[float | None, float | None, str | None]:
    try:
        root = ElementTree.fromstring(xml or "")
    except ElementTree.ParseError:
        return None, None, None
    pixels = next((e for e in root.iter() if e.tag.split("}")[-1] == "Pixels"), None)
    if pixels is None:
        return None, None, None
    get = pixels.attrib.get
    return _number(get("PhysicalSizeZ")), _number(get("TimeIncrement")), get("TimeIncrementUnit")


def expand_pages(array: np.ndarray, axes: str, calibration: Calibration | None) -> tuple[np.ndarray, str]:
    """A stack written page-first ("Z..." axes) back in the input's page layout (e.g. "TZ...")."""
    if calibration is None or not calibration.page_axes or not axes.startswith("Z"):
        return array, axes
    if array.shape[0] != math.prod(calibration.page_shape):
        return array, axes
    return array.reshape(calibration.page_shape + array.shape[1:]), calibration.page_axes + axes[1:]


def _usable(value: float | None) -> bool:
    return (
        value is not None
        and math.isfinite(value)
        and value >= sys.float_info.min
        and 1.0 / _RATIONAL_MAX < value < _RATIONAL_MAX
    )


def _ascii(text: str | None) -> bool:
    return text is None or str(text).isascii()


def safe_calibration(
    path: str | Path,
    resolution: tuple[float, float] | None,
    unit: str | None,
    calibration: Calibration | None,
    ome: bool = False,
):
    """(resolution, unit, calibration) that can be written; what cannot is dropped with one warning."""
    dropped = []
    scale = 1.0
    if unit is not None and str(unit).strip().lower() in _ANGSTROM:
        unit, scale = "nm", 0.1  # pixels per Å x 10 = pixels per nm
        dropped.append("unit Å converted to nm")
    if resolution is not None:
        resolution = (resolution[0] / scale, resolution[1] / scale)
        if not all(_usable(float(r)) for r in resolution):
            dropped.append(f"pixel size {tuple(resolution)!r} (pixels per unit) is not a usable number")
            resolution = None
    if not ome and not _ascii(unit):
        dropped.append(f"unit {unit!r} cannot be written in an ImageJ TIFF: pixel size dropped")
        resolution, unit = None, None
    if calibration is not None:
        calibration = _safe_steps(calibration, scale, ome, dropped)
    if dropped:
        warnings.warn(
            f"'{Path(path).name}': {'; '.join(dropped)} (the file is written without it)",
            MetadataWarning,
            stacklevel=3,
        )
    return resolution, unit, calibration


def _safe_steps(calibration: Calibration, scale: float, ome: bool, dropped: list[str]) -> Calibration:
    spacing = None if calibration.spacing is None else calibration.spacing * scale
    if spacing is not None and not _usable(spacing):
        dropped.append(f"z-spacing {calibration.spacing!r} is not a usable number")
        spacing = None
    finterval, tunit = calibration.finterval, calibration.tunit
    if finterval is not None and not _usable(finterval):
        dropped.append(f"frame interval {finterval!r} is not a usable number")
        finterval = None
    if not ome and not _ascii(tunit):
        dropped.append(f"time unit {tunit!r} cannot be written in an ImageJ TIFF")
        tunit = None
    return replace(calibration, spacing=spacing, finterval=finterval, tunit=tunit)


def imagej_metadata(calibration: Calibration | None) -> dict:
    """ImageJ description entries for the z-spacing, frame interval and time unit."""
    if calibration is None:
        return {}
    entries = {"spacing": calibration.spacing, "finterval": calibration.finterval, "tunit": calibration.tunit}
    return {k: v for k, v in entries.items() if v is not None}


def ome_metadata(
    axes: str, resolution: tuple[float, float] | None, unit: str | None, calibration: Calibration
) -> dict:
    """tifffile's OME metadata: axes, physical sizes (µm unless another unit) and time increment."""
    meta: dict = {"axes": axes}
    ome_unit = "µm" if unit in (None, "micron") else unit
    if resolution is not None:
        meta.update(
            PhysicalSizeX=1.0 / resolution[0],
            PhysicalSizeY=1.0 / resolution[1],
            PhysicalSizeXUnit=ome_unit,
            PhysicalSizeYUnit=ome_unit,
        )
    if calibration.spacing is not None:
        meta.update(PhysicalSizeZ=calibration.spacing, PhysicalSizeZUnit=ome_unit)
    if calibration.finterval is not None:
        meta.update(TimeIncrement=calibration.finterval, TimeIncrementUnit=calibration.tunit or "s")
    return meta
