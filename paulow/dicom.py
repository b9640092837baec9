"""DICOM series: a folder of single-frame `.dcm` slices (pydicom) read as one volume, sorted by
ImagePositionPatient along the slice normal (never by file name), checked for gaps and mixed slices,
with the series' geometry as a NIfTI affine (RAS+) so masks can be written back as NIfTI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .volume_geometry import DICOM_SUFFIX, VolumeGeometry
from .volume_geometry import unreadable as _unreadable

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_GAP_TOLERANCE = 0.1  # a step may differ from the median step by 10 % (scanners round positions)


@dataclass
class _Slice:
    path: Path
    header: Any  # a pydicom Dataset
    position: float  # along the slice normal, mm


def series_files(folder: Path) -> list[Path]:
    """The `.dcm` files of a series folder (hidden files ignored), in name order."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix.lower() == DICOM_SUFFIX and p.is_file() and not p.name.startswith(".")
    )


def _read_header(path: Path, pixels: bool):
    import pydicom

    try:
        return pydicom.dcmread(str(path), stop_before_pixels=not pixels)
    except Exception as exc:  # an unreadable file is a file the user can fix
        raise _unreadable(path, " ".join(str(exc).split()) or type(exc).__name__) from exc


def _floats(header, name: str, count: int, path: Path) -> np.ndarray:
    value = getattr(header, name, None)
    if value is None or len(value) != count:
        raise _unreadable(path, f"it has no {name} (needed to place the slice in the volume)")
    return np.asarray([float(v) for v in value])


def _same_frame(header, first) -> bool:
    """Whether a slice shares the first one's size, pixel spacing and orientation (within rounding)."""

    def numbers(h, name: str) -> np.ndarray:
        return np.asarray([float(v) for v in getattr(h, name)])

    return (
        (int(header.Rows), int(header.Columns)) == (int(first.Rows), int(first.Columns))
        and np.allclose(numbers(header, "PixelSpacing"), numbers(first, "PixelSpacing"), rtol=1e-3)
        and np.allclose(
            numbers(header, "ImageOrientationPatient"), numbers(first, "ImageOrientationPatient"), atol=1e-3
        )
    )


def _sorted_slices(folder: Path, pixels: bool) -> list[_Slice]:
    files = series_files(folder)
    if not files:
        raise _unreadable(folder, "the folder holds no .dcm files", "Put the series' .dcm slices in it.")
    headers = [(_read_header(p, pixels), p) for p in files]
    series = {str(getattr(h, "SeriesInstanceUID", "")) for h, _ in headers}
    if len(series) > 1:
        raise _unreadable(
            folder,
            f"it holds {len(series)} series (SeriesInstanceUID differs)",
            "Put each series in its own folder.",
        )
    first, first_path = headers[0]
    orientation = _floats(first, "ImageOrientationPatient", 6, first_path)
    _floats(first, "PixelSpacing", 2, first_path)
    normal = np.cross(orientation[:3], orientation[3:])
    for header, path in headers[1:]:
        _floats(header, "ImageOrientationPatient", 6, path)
        _floats(header, "PixelSpacing", 2, path)
        if not _same_frame(header, first):
            raise _unreadable(
                folder,
                f"slice '{path.name}' differs from '{first_path.name}' in size, pixel spacing or orientation",
                "Keep only the slices of one series in the folder.",
            )
    slices = [_Slice(p, h, float(_floats(h, "ImagePositionPatient", 3, p) @ normal)) for h, p in headers]
    slices.sort(key=lambda s: s.position)
    _check_steps(folder, slices)
    return slices


def _check_steps(folder: Path, slices: list[_Slice]) -> None:
    """Two slices at one position, or a step much larger than the others (a missing slice): an error."""
    steps = np.diff([s.position for s in slices])
    if steps.size == 0:
        return
    same = np.flatnonzero(steps < 1e-4)
    if same.size:
        a, b = slices[same[0]].path.name, slices[same[0] + 1].path.name
        raise _unreadable(
            folder,
            f"slices '{a}' and '{b}' lie at the same position",
            "Remove the duplicate slice (or split the series).",
        )
    median = float(np.median(steps))
    off = np.flatnonzero(np.abs(steps - median) > _GAP_TOLERANCE * median)
    if off.size:
        i = int(off[0])
        raise _unreadable(
            folder,
            f"slices '{slices[i].path.name}' and '{slices[i + 1].path.name}' are "
            f"{steps[i]:.3g} mm apart where the others are {median:.3g} mm (a missing or "
            "misplaced slice)",
            "Export the complete series again.",
        )


def _geometry(slices: list[_Slice]) -> VolumeGeometry:
    first = slices[0].header
    orientation = np.asarray([float(v) for v in first.ImageOrientationPatient])
    row_spacing, column_spacing = (float(v) for v in first.PixelSpacing)
    origin = np.asarray([float(v) for v in first.ImagePositionPatient])
    if len(slices) > 1:
        last = np.asarray([float(v) for v in slices[-1].header.ImagePositionPatient])
        step = (last - origin) / (len(slices) - 1)
    else:
        thickness = float(
            getattr(first, "SpacingBetweenSlices", None) or getattr(first, "SliceThickness", None) or 1
        )
        step = np.cross(orientation[:3], orientation[3:]) * thickness
    affine = np.eye(4)
    affine[:3, 0] = orientation[:3] * column_spacing  # i: along a row (next column)
    affine[:3, 1] = orientation[3:] * row_spacing  # j: down a column (next row)
    affine[:3, 2] = step
    affine[:3, 3] = origin
    shape = (int(first.Columns), int(first.Rows), len(slices))
    return VolumeGeometry(_LPS_TO_RAS @ affine, shape, "dicom", "mm", (1, 1))


def series_geometry(folder: str | Path) -> VolumeGeometry:
    """The geometry of a DICOM series folder, from the headers only."""
    return _geometry(_sorted_slices(Path(folder), pixels=False))


def _pixels(item: _Slice) -> np.ndarray:
    """One slice in its stored units (RescaleSlope / RescaleIntercept applied: Hounsfield units for CT)."""
    try:
        raw = item.header.pixel_array
    except Exception as exc:  # missing pixel data or a compression without a decoder
        raise _unreadable(item.path, f"its pixels cannot be decoded ({' '.join(str(exc).split())})") from exc
    if raw.ndim != 2:
        raise _unreadable(
            item.path,
            f"it holds {raw.shape} pixels, not one greyscale slice",
            "Multi-frame and colour DICOM are not supported: convert the series to NIfTI.",
        )
    slope = float(getattr(item.header, "RescaleSlope", 1) or 1)
    intercept = float(getattr(item.header, "RescaleIntercept", 0) or 0)
    if slope == 1 and intercept == int(intercept):
        return raw.astype(np.int32) + int(intercept) if intercept else raw
    return (raw.astype(np.float32) * np.float32(slope) + np.float32(intercept)).astype(np.float32)


def read_dicom_series(folder: str | Path):
    """A DICOM series folder as an `ImageStack` `(slices, 1, rows, columns)` in position order, values
    rescaled (HU for CT), resolution from PixelSpacing (mm), `geometry` as a NIfTI affine."""
    from .io.declared_size import check_declared_size
    from .io.stack import ImageStack

    folder = Path(folder)
    slices = _sorted_slices(folder, pixels=False)
    first = slices[0].header
    check_declared_size(folder, (len(slices), int(first.Rows), int(first.Columns)), np.float32)
    for item in slices:
        item.header = _read_header(item.path, pixels=True)
    planes = [_pixels(item) for item in slices]
    dtype = np.result_type(*planes)
    data = np.stack([p.astype(dtype, copy=False) for p in planes])[:, None]
    if data.dtype.kind in "iu":
        low, high = int(data.min()), int(data.max())
        data = data.astype(np.int16) if -32768 <= low and high <= 32767 else data
    row_spacing, column_spacing = (float(v) for v in first.PixelSpacing)
    return ImageStack(data, folder, "ZYX", (1.0 / column_spacing, 1.0 / row_spacing), "mm", _geometry(slices))
