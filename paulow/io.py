"""Read and write microscopy images, stacks and masks; pair images with their masks.

Every read returns `(pages, C, H, W)` in the file's dtype: TIFF axes come from tifffile's series
metadata (ImageJ, OME, shaped), Z/T/other axes are flattened into pages in file order, C and S
(samples, e.g. RGB) become channels. PNG, JPEG and BMP are read with Pillow (OpenCV for 16-bit
colour PNG, which Pillow reduces to 8 bits). Every write is atomic.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import uuid
import warnings
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import tifffile

from paulow.calibration import (
    Calibration,
    expand_pages,
    imagej_metadata,
    ome_metadata,
    read_calibration,
    safe_calibration,
)
from paulow.errors import EmptyFolderError, PairingError, UnreadableImageError

TIFF_EXTENSIONS = (".tif", ".tiff")
RASTER_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
SUPPORTED_EXTENSIONS = TIFF_EXTENSIONS + RASTER_EXTENSIONS

_IGNORED_NAMES = frozenset({"thumbs.db", "desktop.ini"})
_CHANNEL_AXES = "CS"
_IMAGEJ_AXES = "TZCYXS"
_IMAGEJ_DTYPES = (np.uint8, np.uint16, np.float32)
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
_RESUNIT_NAMES = {2: "inch", 3: "cm", 4: "mm", 5: "micron"}
_UNIT_TO_RESUNIT = {"inch": 2, "cm": 3}  # ImageJ keeps other units in its description only
_UNREADABLE_FIX = "Re-export it as TIFF or PNG, or remove it from the folder."


class PairingWarning(UserWarning):
    """Images and masks were paired by an assumption (natural sort order), not by name."""


@dataclass
class ImageStack:
    """An image or stack as read from a file: `data` is `(pages, C, H, W)` in the file's dtype."""

    data: np.ndarray
    path: Path
    axes: str
    resolution: tuple[float, float] | None = None
    unit: str | None = None
    geometry: Any = None  # a `paulow.volumes.VolumeGeometry` for NIfTI and DICOM inputs
    calibration: Calibration | None = None  # page layout (T, Z), z-spacing, frame interval, OME

    @property
    def pixel_size(self) -> float | None:
        """Pixel width in `unit` (1 / x resolution), or None when the file has no resolution."""
        if self.resolution is None or not self.resolution[0]:
            return None
        size = 1.0 / self.resolution[0]
        return size if math.isfinite(size) and size > 0 else None  # NaN/inf sizes: uncalibrated


# ---------------------------------------------------------------------------------------------
# Listing and sorting
# ---------------------------------------------------------------------------------------------


def natural_sort_key(name: str | Path) -> tuple:
    """Sort key that orders `img2` before `img10` (case-insensitive, by stem then extension)."""
    path = Path(name)
    parts = re.split(r"(\d+)", path.stem.lower())
    numbered = tuple(int(p) if i % 2 else p for i, p in enumerate(parts))
    return numbered, path.suffix.lower(), path.name


def _is_visible_file(path: Path) -> bool:
    name = path.name
    return path.is_file() and not name.startswith(".") and name.lower() not in _IGNORED_NAMES


def _visible_files(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise EmptyFolderError(f"folder '{folder}' does not exist: create it and put the images in it")
    return sorted((p for p in folder.iterdir() if _is_visible_file(p)), key=natural_sort_key)


def list_images(folder: str | Path) -> list[Path]:
    """Supported images directly in `folder`, natural-sorted; hidden and system files ignored.

    NIfTI files (`.nii`, `.nii.gz`) and DICOM series (a sub-folder of `.dcm` slices) are one input each.
    Returns an empty list for an empty folder; raises `EmptyFolderError` if it does not exist.
    """
    from .volumes import is_dicom_series, is_nifti

    files = [p for p in _visible_files(folder) if p.suffix.lower() in SUPPORTED_EXTENSIONS or is_nifti(p)]
    series = [p for p in Path(folder).iterdir() if not p.name.startswith(".") and is_dicom_series(p)]
    return sorted(files + series, key=natural_sort_key)


def list_unusable(folder: str | Path) -> list[tuple[Path, str]]:
    """Entries named like images that are not readable files (a broken link, a folder, a pipe),
    each with the reason and the fix, so that no input is skipped without a word."""
    found = []
    for p in sorted(Path(folder).iterdir(), key=natural_sort_key):
        if p.name.startswith(".") or p.suffix.lower() not in SUPPORTED_EXTENSIONS or p.is_file():
            continue
        if p.is_symlink() and not p.exists():
            found.append((p, "a link whose target is missing: fix or remove the link"))
        elif p.is_dir():
            found.append((p, "a folder, not an image: move the images inside it into this folder"))
        else:
            found.append((p, "not a regular file: replace it with the image file itself"))
    return found


VENDOR_FORMATS = (".czi", ".nd2", ".lif", ".oib", ".oif", ".ims", ".vsi", ".dv", ".sld")


def vendor_files_note(folder: str | Path) -> str:
    """'' or one sentence naming the microscope-vendor files in `folder` that cannot be read and
    what to do with them."""
    other = list_other_files(folder)
    slices = [p.name for p in other if p.suffix.lower() == ".dcm"]
    if slices:  # loose DICOM slices: a series is read from a folder of its own
        return (
            f"{len(slices)} DICOM slice(s) ({', '.join(slices[:3])}{', ...' if len(slices) > 3 else ''}) lie "
            "loose in the folder - put each series' .dcm files in a sub-folder of their own (e.g. series1/)"
        )
    found = [p.name for p in other if p.suffix.lower() in VENDOR_FORMATS]
    if not found:
        return ""
    shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
    return (
        f"{shown}: microscope files PAULow cannot read - open them in Fiji (Bio-Formats) and "
        "save as OME-TIFF (File > Save As > OME-TIFF), then put the .ome.tif files here"
    )


def list_other_files(folder: str | Path) -> list[Path]:
    """Visible files in `folder` that `list_images` skips (unsupported types), for messages."""
    from .volumes import is_nifti

    return [
        p for p in _visible_files(folder) if p.suffix.lower() not in SUPPORTED_EXTENSIONS and not is_nifti(p)
    ]


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def _one_line(reason: str, limit: int = 200) -> str:
    text = " ".join(str(reason).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unreadable(path: Path, reason: str, fix: str = _UNREADABLE_FIX) -> UnreadableImageError:
    return UnreadableImageError(f"cannot read '{path}': {_one_line(reason).rstrip('.')}. {fix}")


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


def has_alpha(stack: ImageStack) -> bool:
    """Whether the last channel of `stack` is an alpha (opacity) channel: grey+alpha or RGBA samples."""
    return "S" in stack.axes and "C" not in stack.axes and stack.data.shape[1] in (2, 4)


def _read(path: Path, palette_indices: bool) -> ImageStack:
    from .volumes import is_volume, read_volume

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


def decode_limit() -> int:
    """Bytes one decoded image may take: half the memory available now (Linux), else 8 GiB."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except (OSError, ValueError, IndexError):
        pass
    return 8 << 30


# float32 copies of one page that a run holds besides the decoded file: the normalised image and
# the probability map (training: the normalised slice and its float target)
FLOAT32_COPIES = 2


def check_declared_size(
    path: Path, shape: Sequence[int], dtype, count: int = 1, page_values: int | None = None
) -> None:
    """Refuse a file whose header declares more pixels than fit in memory, before decoding it
    (a 16 KB file can declare 200000 x 200000 pixels). Counted: the decoded file (`count` arrays of
    `shape`) plus `FLOAT32_COPIES` float32 copies of one page (`page_values` values; default: the
    whole `shape`)."""
    decoded = math.prod(int(n) for n in shape) * np.dtype(dtype).itemsize * count
    page_values = math.prod(int(n) for n in shape) if page_values is None else page_values
    copies = page_values * 4 * FLOAT32_COPIES
    needed, limit = decoded + copies, decode_limit()
    if needed > limit:
        dims = " x ".join(str(int(n)) for n in shape)
        raise _unreadable(
            path,
            f"its header declares {dims} pixels: reading and segmenting it needs "
            f"{needed / 2**30:.1f} GiB ({decoded / 2**30:.1f} GiB decoded + "
            f"{copies / 2**30:.1f} GiB of float32 working copies), more than the "
            f"{limit / 2**30:.1f} GiB of memory available for one image",
            "Tile it into smaller images (e.g. in Fiji) or downsample it; if the file is small "
            "it is probably corrupt.",
        )


def _native_dtype(data: np.ndarray, path: Path) -> np.ndarray:
    if data.dtype == bool:
        return data.astype(np.uint8)
    if data.dtype.kind == "c":
        raise _unreadable(path, "complex pixel values are not supported")
    if not data.dtype.isnative:
        return data.astype(data.dtype.newbyteorder("="))
    return data


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
    from .tiff_guard import TiffBoundError, count_pages

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
    from .tiff_guard import check_series_pages

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


# ---------------------------------------------------------------------------------------------
# Summaries
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Pairing images with masks
# ---------------------------------------------------------------------------------------------

_NAME_WORDS = frozenset(
    {
        "image",
        "images",
        "img",
        "imgs",
        "mask",
        "masks",
        "msk",
        "label",
        "labels",
        "labelled",
        "labeled",
        "lbl",
        "gt",
        "groundtruth",
        "seg",
        "segmentation",
        "segmented",
        "annotation",
        "annotations",
        "annot",
        "dna",
        "raw",
        "ground",
        "truth",
        "pred",
        "prediction",
        "predicted",
        "prob",
    }
)
_SEPARATORS = re.compile(r"[\s._-]+")
_GLUED_NUMBER = re.compile(r"^([a-z]*)(\d+)([a-z]*)$")


def _stem(path: Path) -> str:
    """File name without its extension (and without `.ome` for OME-TIFF)."""
    stem = path.stem
    return stem[:-4] if stem.lower().endswith((".ome", ".nii")) else stem


def _strip_glued_words(token: str) -> str:
    match = _GLUED_NUMBER.match(token)
    if not match:
        return token
    prefix, number, suffix = match.groups()
    prefix = "" if prefix in _NAME_WORDS else prefix
    suffix = "" if suffix in _NAME_WORDS else suffix
    return prefix + number + suffix


def pairing_key(path: str | Path) -> str:
    """The name an image and its mask share: lower case, words like image/mask/label/dna/raw and
    separators removed, leading zeros dropped (`Image_012.tif` and `mask12.png` give `12`)."""
    tokens = [t for t in _SEPARATORS.split(_stem(Path(path)).lower()) if t]
    kept = [_strip_glued_words(t) for t in tokens if t not in _NAME_WORDS]
    return "".join(re.sub(r"\d+", lambda m: str(int(m.group())), t) for t in kept)


def _group_by_key(paths: Iterable[Path]) -> dict[str, list[Path]]:
    groups: dict[str, list[Path]] = defaultdict(list)
    for path in paths:
        groups[pairing_key(path)].append(path)
    return groups


def _pair_by_stem(images: list[Path], masks: list[Path]) -> list[tuple[Path, Path]]:
    """Pairs with identical stems (case-insensitive), for names that share a key."""
    by_stem: dict[str, list[Path]] = defaultdict(list)
    for mask in masks:
        by_stem[_stem(mask).lower()].append(mask)
    pairs = []
    for image in images:
        candidates = by_stem.get(_stem(image).lower(), [])
        if len(candidates) == 1:
            pairs.append((image, candidates[0]))
    return pairs


def _pair_by_name(images: list[Path], masks: list[Path]) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """Pairs by key, and the files whose key is shared by several images or masks but that no
    identical stem resolved."""
    image_groups, mask_groups = _group_by_key(images), _group_by_key(masks)
    pairs: list[tuple[Path, Path]] = []
    unresolved: list[Path] = []
    for key, group in image_groups.items():
        candidates = mask_groups.get(key, [])
        if len(group) == 1 and len(candidates) == 1:
            pairs.append((group[0], candidates[0]))
        elif group and candidates:
            resolved = _pair_by_stem(group, candidates)
            pairs.extend(resolved)
            done = {p for pair in resolved for p in pair}
            unresolved.extend(p for p in group + candidates if p not in done)
    return pairs, unresolved


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'} {'has' if n == 1 else 'have'}"


def _names(paths: Iterable[Path]) -> str:
    return ", ".join(p.name for p in sorted(paths, key=natural_sort_key))


def _pairing_message(images: list[Path], masks: list[Path], unresolved: list[Path]) -> str:
    parts = []
    if images:
        parts.append(f"{_count(len(images), 'image')} no mask: {_names(images)}")
    if masks:
        parts.append(f"{_count(len(masks), 'mask')} no image: {_names(masks)}")
    if unresolved:
        parts.append(
            f"these share a number or name, so which goes with which is unclear: "
            f"{', '.join(p.name for p in unresolved)}"
        )
    return (
        "; ".join(parts) + " - give each image a mask with the same number or name "
        "(e.g. image12.tif <-> mask12.tif)"
    )


def _pair_in_order(images: list[Path], masks: list[Path]) -> list[tuple[Path, Path]]:
    pairs = list(zip(sorted(images, key=natural_sort_key), sorted(masks, key=natural_sort_key)))
    example = ", ".join(f"{i.name} <-> {m.name}" for i, m in pairs[:3])
    more = ", ..." if len(pairs) > 3 else ""
    warnings.warn(
        PairingWarning(
            f"no image name matches a mask name; assuming the {len(pairs)} images and {len(pairs)} "
            f"masks correspond in natural sort order ({example}{more})"
        ),
        stacklevel=3,
    )
    return pairs


def pair_images_masks(
    image_paths: Sequence[str | Path], mask_paths: Sequence[str | Path]
) -> list[tuple[Path, Path]]:
    """Pair each image with its mask by `pairing_key`, in natural order of the images.

    Names that share a key are paired only by identical stems. If no name pairs at all and the
    counts are equal, pairs in natural sort order with a `PairingWarning`. Otherwise raises
    `PairingError` listing every image without a mask and every mask without an image.
    """
    images = list(dict.fromkeys(Path(p) for p in image_paths))
    masks = list(dict.fromkeys(Path(p) for p in mask_paths))
    pairs, unresolved = _pair_by_name(images, masks)
    if not pairs and not unresolved and images and len(images) == len(masks):
        return _pair_in_order(images, masks)
    paired = {p for pair in pairs for p in pair}
    lonely_images = [p for p in images if p not in paired]
    lonely_masks = [p for p in masks if p not in paired]
    if lonely_images or lonely_masks:
        raise PairingError(_pairing_message(lonely_images, lonely_masks, unresolved))
    return sorted(pairs, key=lambda pair: natural_sort_key(pair[0]))


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------

_BEFORE_REPLACE: list = []  # hooks (temporary, final) run just before a temporary becomes its final file


@contextlib.contextmanager
def before_replace(hook) -> Iterator[None]:
    """Call `hook(temporary, final_path)` for every `atomic_write_path` write in the block, after the
    temporary is complete and before it is renamed (the segment command records each output's
    SHA-256 there, so a kill right after the rename still leaves the output known)."""
    _BEFORE_REPLACE.append(hook)
    try:
        yield
    finally:
        _BEFORE_REPLACE.remove(hook)


@contextlib.contextmanager
def atomic_write_path(final_path: str | Path) -> Iterator[Path]:
    """Yield a hidden temporary path beside `final_path`; on success it replaces `final_path`,
    on an exception it is removed and `final_path` is left untouched."""
    final_path = Path(final_path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"  # the owner's pid: see clean_stale_temporaries
    temporary = final_path.with_name(f".{final_path.name}.{token}.tmp{final_path.suffix}")
    try:
        yield temporary
        for hook in list(_BEFORE_REPLACE):
            hook(temporary, final_path)
        os.replace(temporary, final_path)
    except OSError as exc:  # name the file the user knows (a full disk rarely says where)
        if exc.filename in (None, str(temporary), temporary):
            raise OSError(exc.errno, exc.strerror or str(exc), str(final_path)) from None
        raise
    finally:
        if temporary.exists():
            temporary.unlink()


def _split_name(path: Path) -> tuple[str, str]:
    name = path.name
    for ext in (".ome.tif", ".ome.tiff", ".nii.gz"):
        if name.lower().endswith(ext):
            return name[: -len(ext)], name[-len(ext) :]
    return path.stem, path.suffix


def unique_path(path: str | Path) -> Path:
    """`path` if nothing exists there, else the first free `stem_2.ext`, `stem_3.ext`, ..."""
    path = Path(path)
    if not path.exists():
        return path
    stem, ext = _split_name(path)
    number = 2
    while (candidate := path.with_name(f"{stem}_{number}{ext}")).exists():
        number += 1
    return candidate


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
