"""Reading TIFF, ImageJ and OME-TIFF files: series, pages and pixel size."""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import numpy as np
import tifffile

from paulow.calibration import read_calibration

from .declared_size import check_declared_size
from .stack import ImageStack, _normalise_unit, _to_pages_channels, _unreadable

_RESUNIT_NAMES = {2: "inch", 3: "cm", 4: "mm", 5: "micron"}


class _ErrorLog(logging.Handler):
    """Collects tifffile's ERROR records: it logs (rather than raises) on truncated stacks."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _tifffile_errors() -> Iterator[_ErrorLog]:
    logger = logging.getLogger("tifffile")
    handler, propagate = _ErrorLog(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False  # the message reaches the user in the exception instead
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _read_tiff(path: Path) -> ImageStack:
    from ..tiff_guard import TiffBoundError, count_pages

    try:
        count_pages(path)  # a looping or endless page chain would hang tifffile
        with _tifffile_errors() as errors, tifffile.TiffFile(path) as tif:
            data, axes, skipped = _read_series(tif, path)
            resolution, unit = _tiff_resolution(tif)
            calibration = read_calibration(tif, axes, data.shape)
    except TiffBoundError as exc:
        raise _unreadable(path, str(exc), exc.fix) from None
    if errors.messages:
        raise _unreadable(path, f"the file looks truncated or corrupt ({errors.messages[0]})")
    if skipped:
        warnings.warn(
            f"'{path}': ignored {', '.join(skipped)}; only images shaped like the first are read",
            stacklevel=4,
        )
    return ImageStack(_to_pages_channels(data, axes), path, axes, resolution, unit, calibration=calibration)


def _read_series(tif: tifffile.TiffFile, path: Path) -> tuple[np.ndarray, str, list[str]]:
    """The first series; later series of the same shape are appended as pages. Anything else
    (thumbnails, pages of another size) is skipped and listed, to be warned about."""
    if not tif.series:
        raise _unreadable(path, "the file holds no image")
    first = tif.series[0]
    same = [s for s in tif.series[1:] if s.shape == first.shape and s.axes == first.axes]
    from ..tiff_guard import check_series_pages

    check_series_pages((1 + len(same), *first.shape), "R" + first.axes)
    page_values = math.prod(int(n) for n, a in zip(first.shape, first.axes) if a in "YXCS")
    check_declared_size(path, first.shape, first.dtype, 1 + len(same), page_values)
    arrays, skipped = [first.asarray()], []
    for index, series in enumerate(tif.series[1:], start=1):
        if series.shape == first.shape and series.axes == first.axes:
            arrays.append(series.asarray())
        else:
            skipped.append(f"image series {index} of shape {series.shape}")
    uncovered = _pages_outside_series(tif)
    if uncovered:
        skipped.append(f"{uncovered} page(s) of another size or type")
    if len(arrays) == 1:
        return arrays[0], first.axes, skipped
    return np.stack(arrays), "R" + first.axes, skipped


def _pages_outside_series(tif: tifffile.TiffFile) -> int:
    """Pages of a plain TIFF that no series covers (tifffile's generic series skips them)."""
    if tif.is_imagej or tif.is_ome:
        return 0
    covered = sum(len(series.pages) for series in tif.series)
    return max(0, len(tif.pages) - covered)


def _tiff_resolution(tif: tifffile.TiffFile) -> tuple[tuple[float, float] | None, str | None]:
    """(x, y) pixels per unit and the unit, from the tags, ImageJ metadata or OME metadata."""
    page = tif.pages.first
    resolution: tuple[float, float] | None = None
    if "XResolution" in page.tags and "YResolution" in page.tags:
        resolution = cast("tuple[float, float]", tuple(float(v) for v in page.resolution))
    unit = _RESUNIT_NAMES.get(int(page.resolutionunit))
    if tif.is_imagej and tif.imagej_metadata and "unit" in tif.imagej_metadata:
        unit = tif.imagej_metadata["unit"]
    unit = _normalise_unit(unit)
    if tif.is_ome and (unit is None or resolution is None):
        ome = _ome_resolution(tif.ome_metadata)
        if ome is not None:
            return ome
    if resolution is None or 0.0 in resolution or (unit is None and resolution == (1.0, 1.0)):
        return None, None  # (1, 1) without a unit is tifffile's and most writers' "not set"
    return resolution, unit


def _ome_resolution(xml: str | None) -> tuple[tuple[float, float], str | None] | None:
    """Pixels per unit from OME `PhysicalSizeX/Y` (micrometres unless a unit is given)."""
    if not xml:
        return None
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return None
    pixels = next((e for e in root.iter() if e.tag.endswith("}Pixels") or e.tag == "Pixels"), None)
    if pixels is None or "PhysicalSizeX" not in pixels.attrib:
        return None
    size_x = float(pixels.attrib["PhysicalSizeX"])
    size_y = float(pixels.attrib.get("PhysicalSizeY", size_x))
    if size_x <= 0 or size_y <= 0:
        return None
    unit = _normalise_unit(pixels.attrib.get("PhysicalSizeXUnit", "µm"))
    return (1.0 / size_x, 1.0 / size_y), unit
