"""Reading folders: training image/mask pairs, read and validated, as slices; an input folder's images."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import ShapeMismatchError, UnreadableImageError
from .mask_classes import check_class_values, class_target, instance_source
from .normalisation import NORMALISATION, normalise_with
from .slices import Slice, foreground_fraction, snr

if TYPE_CHECKING:
    from .palette import Palette


log = logging.getLogger("paulow")


def _read_all(
    pairs: Sequence[tuple[Path, Path]],
    refused: list | None = None,
    classes: int = 1,
    palette: Palette | None = None,
) -> list[tuple]:
    """Read every pair (K >= 2 colour masks through `palette`, see `read_class_mask`). A pair that
    cannot be read raises, or, when `refused` is a list, is appended to it as (image path, message)
    and left out, as long as some pair can be read."""
    from . import io
    from .palette import read_class_mask
    from .volumes import check_mask_geometry

    loaded, bad = [], []
    for image_path, mask_path in pairs:
        check_mask_geometry(image_path, mask_path)
        try:
            loaded.append(
                (io.read_image(image_path), read_class_mask(mask_path, classes, palette), mask_path)
            )
        except UnreadableImageError as exc:
            bad.append((image_path, str(exc)))
    if bad and (refused is None or not loaded):
        raise UnreadableImageError(f"{len(bad)} file(s) cannot be read: " + " | ".join(m for _, m in bad))
    if refused is not None:
        refused.extend(bad)
    return loaded


def _check_shapes(loaded: list[tuple]) -> None:
    problems = []
    for stack, mask, mask_path in loaded:
        pages, _, h, w = stack.data.shape
        if mask.shape[0] != pages:
            problems.append(
                f"'{stack.path.name}' has {pages} page(s) but its mask '{mask_path.name}' has {mask.shape[0]}"
            )
        elif mask.shape[1:] != (h, w):
            problems.append(
                f"'{stack.path.name}' is {h}x{w} (HxW) but its mask '{mask_path.name}' is "
                f"{mask.shape[1]}x{mask.shape[2]}"
            )
    if problems:
        raise ShapeMismatchError(
            "; ".join(problems) + " — give each image a mask of the same size and page count"
        )
    channels: dict[int, list[str]] = {}
    for stack, _, _ in loaded:
        channels.setdefault(stack.data.shape[1], []).append(stack.path.name)
    if len(channels) > 1:
        listing = "; ".join(
            f"{c} channel(s): {', '.join(names[:5])}" for c, names in sorted(channels.items())
        )
        raise ShapeMismatchError(
            f"training images have mixed channel counts ({listing}) — convert them "
            "all to the same number of channels (e.g. all greyscale)"
        )


def _mask_warnings(loaded: list[tuple], classes: int) -> None:
    many = [m.name for _, mask, m in loaded if classes <= 1 and np.unique(mask).size > 2]
    if many:
        log.warning(
            "%d mask(s) have more than two values (%s): treated as labels, every non-zero "
            "pixel is foreground",
            len(many),
            ", ".join(many[:5]),
        )
    if all(not np.any(mask) for _, mask, _ in loaded):
        log.warning(
            "every mask is empty (all background): the model can only learn to predict "
            "background — check TRAINING_MASKS"
        )


def load_pairs(
    image_dir: Path,
    mask_dir: Path,
    classes: int = 1,
    normalisation: dict | None = None,
    refused: list | None = None,
    palette: Palette | None = None,
) -> list[Slice]:
    """Read and validate a whole image/mask folder pair before any long work starts.

    `normalisation` is a model file's recorded spec (default: `NORMALISATION`). With a `refused`
    list, unreadable pairs and entries that are not files are listed there as (path, message) and
    left out instead of stopping the run. For K >= 2, colour masks are mapped to classes through
    `palette` (see `paulow.palette`); without one they are an error.
    """
    from . import io
    from .errors import EmptyFolderError

    images, masks = io.list_images(image_dir), io.list_images(mask_dir)
    if refused is not None:
        refused.extend(io.list_unusable(image_dir) + io.list_unusable(mask_dir))
    if not images:
        raise EmptyFolderError(_no_images(image_dir))
    if not masks:
        raise EmptyFolderError(f"no masks in '{mask_dir}': put one mask per image there")
    loaded = _read_all(io.pair_images_masks(images, masks), refused, classes, palette)
    _check_shapes(loaded)
    check_class_values(loaded, classes)
    from .swapped import check_masks_not_images

    check_masks_not_images(
        [(m.name, mask, stack.data) for stack, mask, m in loaded], f"'{mask_dir}'", classes
    )
    _mask_warnings(loaded, classes)
    spec = normalisation or NORMALISATION
    return [
        s
        for stack, mask, mask_path in loaded
        for s in _to_slices(stack, mask, mask_path, classes=classes, spec=spec)
    ]


def _to_slices(stack, mask: np.ndarray, mask_path: Path, classes: int, spec: dict) -> list[Slice]:
    from . import io

    bad = io.count_nonfinite(stack.data)
    if bad:
        log.warning("'%s' has %d NaN/inf pixel(s): they are set to 0", stack.path.name, bad)
    slices = []
    for page in range(stack.data.shape[0]):
        raw = stack.data[page]
        target = class_target(mask[page], classes, mask_path.name, page)
        info = {
            "file": stack.path.name,
            "page": page,
            "shape": list(raw.shape[1:]),
            "channels": int(raw.shape[0]),
            "dtype": str(raw.dtype),
            "min": float(np.nanmin(raw)),
            "max": float(np.nanmax(raw)),
            "foreground_fraction": foreground_fraction(target),
            "snr": snr(raw[0].astype(np.float64), target),
            "mask_file": mask_path.name,
        }
        slices.append(
            Slice(
                normalise_with(raw, spec),
                target,
                stack.path,
                page,
                info,
                instance_source(mask[page], classes),
            )
        )
    return slices


def _no_images(image_dir: Path) -> str:
    from . import io

    note = io.vendor_files_note(image_dir)
    return f"no images in '{image_dir}': " + (note if note else "put .tif/.tiff/.png/.jpg images there")


def load_images(image_dir: Path) -> list[Path]:
    """The images of an input folder (raises when there are none)."""
    from . import io
    from .errors import EmptyFolderError

    images = io.list_images(image_dir)
    if not images:
        raise EmptyFolderError(_no_images(image_dir))
    note = io.vendor_files_note(image_dir)
    if note:
        logging.getLogger("paulow").warning("skipped %s", note)
    return images
