"""The API's inputs: images and masks as arrays or paths, made into training `Slice`s."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np

from ..errors import ShapeMismatchError

ArrayOrPath = np.ndarray | str | Path


def _as_stack(image: ArrayOrPath, axes: str | None = None) -> np.ndarray:
    """A raw (pages, C, H, W) stack from a path or an array read as `axes` (`paulow.array_axes`)."""
    return _stack_and_name(image, axes)[0]


def _stack_and_name(image: ArrayOrPath, axes: str | None = None, index: int = 0) -> tuple[np.ndarray, str]:
    """The stack and the name its messages use: the file, or "array<i> read as <axes>"."""
    if isinstance(image, (str, Path)):
        from ..io import read_image

        return read_image(Path(image)).data, Path(image).name
    from ..array_axes import as_pages_channels

    stack, used = as_pages_channels(np.asarray(image), axes)
    return stack, f"{_name(image, index)} read as {used}" + ("" if axes else " (pass axes= if not)")


def _as_masks(mask: ArrayOrPath, classes: int = 1, palette=None) -> np.ndarray:
    """A (pages, H, W) mask stack from a path (K >= 2 colour masks through `palette`) or an (H, W) array."""
    if isinstance(mask, (str, Path)):
        from ..palette import read_class_mask

        return read_class_mask(Path(mask), classes, palette)
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ShapeMismatchError(f"a mask must be (H, W), not {array.shape}")
    return array[None]


def _name(item: ArrayOrPath, index: int) -> Path:
    return Path(item) if isinstance(item, (str, Path)) else Path(f"array{index + 1}")


def make_slices(
    images: ArrayOrPath | Sequence[ArrayOrPath],
    masks: ArrayOrPath | Sequence[ArrayOrPath],
    classes: int = 1,
    normalisation: dict | None = None,
    palette: list | None = None,
    labelled: np.ndarray | Sequence[np.ndarray | None] | None = None,
) -> list:
    """`Slice` records (normalised images, binarised masks) from arrays or file paths; K >= 2 colour
    mask files are mapped through `palette` (`[[R, G, B], ...]`, one colour per class).

    `labelled` (sparse labels): per mask, a boolean array of its shape marking the labelled pixels
    (None for a dense mask); the others are ignored by training and scores (`paulow.losses`), and
    pages with no labelled pixel are left out."""
    from ..mask_classes import class_target, instance_source
    from ..normalisation import NORMALISATION, normalise_with
    from ..palette import from_colours
    from ..slices import Slice, foreground_fraction

    if isinstance(images, (np.ndarray, str, Path)) or isinstance(masks, (np.ndarray, str, Path)):
        images, masks = cast("list[ArrayOrPath]", [images]), cast("list[ArrayOrPath]", [masks])
        labelled = [labelled] if isinstance(labelled, np.ndarray) else labelled
    if len(images) != len(masks):
        raise ShapeMismatchError(f"{len(images)} image(s) but {len(masks)} mask(s): give one mask per image")
    marks = _labelled_pages(labelled, len(masks))
    spec = normalisation or NORMALISATION
    colours = from_colours(palette, classes, "palette") if palette and classes >= 2 else None
    slices, pairs = [], []
    for i, (image, mask) in enumerate(zip(images, masks)):
        if isinstance(image, (str, Path)) and isinstance(mask, (str, Path)):
            from ..volumes import check_mask_geometry

            check_mask_geometry(image, mask)
        stack, target, source = _as_stack(image), _as_masks(mask, classes, colours), _name(image, i)
        if stack.shape[0] != target.shape[0] or stack.shape[2:] != target.shape[1:]:
            raise ShapeMismatchError(
                f"image {source.name} is {stack.shape} (pages, C, H, W) but its mask "
                f"is {target.shape} (pages, H, W): they must match"
            )
        pairs.append((Path(mask).name if isinstance(mask, (str, Path)) else f"mask {i + 1}", target, stack))
        painted = _painted(marks[i], target.shape, i)
        for page, (raw, m) in enumerate(zip(stack, target)):
            if painted is not None and not painted[page].any():
                continue  # nothing labelled on this page: nothing to learn or score
            labels = instance_source(m, classes)
            m = class_target(m, classes, source.name, page)
            info = {"file": source.name, "page": page, "foreground_fraction": foreground_fraction(m)}
            valid = None if painted is None else painted[page]
            slices.append(Slice(normalise_with(raw, spec), m, source, page, info, labels, valid))
    from ..swapped import check_masks_not_images

    check_masks_not_images(pairs, "the masks given", classes)
    if not slices:
        raise ShapeMismatchError("no labelled pixel in any mask (labelled= is all False): label some pixels")
    return slices


def _labelled_pages(labelled, count: int) -> list:
    """One entry per mask: its labelled pixels, or None (dense)."""
    if labelled is None:
        return [None] * count
    if len(labelled) != count:
        raise ShapeMismatchError(
            f"{len(labelled)} labelled-pixel mask(s) for {count} mask(s): give one per mask (or None)"
        )
    return list(labelled)


def _painted(mark, shape: tuple[int, ...], index: int) -> np.ndarray | None:
    """A mask's labelled pixels as bool (pages, H, W) of the mask's `shape`, or None (dense)."""
    if mark is None:
        return None
    array = np.asarray(mark, dtype=bool)
    array = array[None] if array.ndim == 2 else array
    if array.shape != tuple(shape):
        raise ShapeMismatchError(
            f"labelled pixels of mask {index + 1} are {array.shape[-2:]} but the mask is {shape[-2:]}: "
            "give one boolean array of the mask's shape"
        )
    return array
