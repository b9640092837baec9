"""Between napari layer data and the PAULow API: raw pages in, label and probability arrays out.

No Qt and no napari here, so the conversions are tested without a viewer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from paulow.api import ShapeMismatchError


def image_pages(data, rgb: bool, in_channels: int = 1) -> tuple[np.ndarray, tuple[int, ...]]:
    """A raw (pages, C, H, W) stack from an image layer's data, and the shape its labels take.

    RGB(A) layers carry channels last; a 3-D layer whose first axis matches a multi-channel model's
    channel count is one channels-first page; otherwise every leading axis is a page axis.
    """
    array = np.asarray(data)
    if rgb:
        shape = array.shape[:-1]
        array = np.moveaxis(array, -1, -3)
        return array.reshape(-1, *array.shape[-3:]), shape
    if array.ndim < 2:
        raise ShapeMismatchError(f"the image layer is {array.ndim}-D: choose a 2-D (or larger) image")
    if array.ndim == 3 and in_channels > 1 and array.shape[0] == in_channels:
        return array[None], array.shape[1:]
    return array.reshape(-1, 1, *array.shape[-2:]), array.shape


def label_pages(predictions: Sequence, instances: bool, split_touching: bool = False) -> np.ndarray:
    """(pages, H, W) labels: the mask (class map), or instances numbered on across pages."""
    if not instances:
        return np.stack([p.mask for p in predictions])
    pages, offset = [], 0
    for pred in predictions:
        labels = pred.labels(split_touching=split_touching).astype(np.int32)
        labels[labels > 0] += offset
        offset = max(offset, int(labels.max(initial=0)))
        pages.append(labels)
    return np.stack(pages)


def probability_array(predictions: Sequence, shape: tuple[int, ...]) -> np.ndarray:
    """Foreground probabilities in the labels' shape: P for a binary model, the object probability
    1 - P(background) for a boundary model (what its threshold cuts); one leading class axis for
    class maps."""
    probs = np.stack([p.probabilities for p in predictions])  # (pages, K, H, W)
    if getattr(predictions[0], "boundary", False):
        return (1.0 - probs[:, 0]).reshape(shape)
    if probs.shape[1] == 1:
        return probs[:, 0].reshape(shape)
    return np.moveaxis(probs, 1, 0).reshape(probs.shape[1], *shape)


def _tiles(length: int, parts: int) -> list[slice]:
    edges = np.linspace(0, length, parts + 1).round().astype(int)
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def training_pairs(image, labels, rgb: bool, tiles: int = 1) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(images, masks) for `paulow.train`: each page cut into tiles x tiles pieces.

    Tiles give cross-validation something to hold out when there is one annotated image. Raises
    ShapeMismatchError when the labels do not cover the image pixel for pixel.
    """
    pages, shape = image_pages(image, rgb)
    masks = np.asarray(labels)
    if masks.shape != tuple(shape):
        raise ShapeMismatchError(
            f"the labels layer is {masks.shape} but the image layer is {tuple(shape)}:"
            " draw the labels on a layer of the image's size"
        )
    masks = masks.reshape(-1, *masks.shape[-2:])
    images_out, masks_out = [], []
    for page, mask in zip(pages, masks):
        for rows in _tiles(mask.shape[0], tiles):
            for cols in _tiles(mask.shape[1], tiles):
                images_out.append(page[:, rows, cols])
                masks_out.append(mask[rows, cols])
    return images_out, masks_out


# Sparse labels in a napari Labels layer: 0 (napari's eraser, never painted) is unlabelled and
# ignored; 1 is background, painted like any class; 2, 3, ... are objects (any of them, each its
# own object) or, with classes, class 1, 2, ... (label k + 1 = class k).
UNLABELLED, BACKGROUND_LABEL = 0, 1


def sparse_masks(labels: np.ndarray, classes: bool) -> tuple[np.ndarray, np.ndarray]:
    """(mask, labelled) of a sparsely painted labels array: the mask in the API's convention
    (0 = background; objects 1, 2, ... or class indices) and the painted pixels (bool)."""
    values = np.asarray(labels).astype(np.int64)
    lowest = BACKGROUND_LABEL if classes else BACKGROUND_LABEL + 1
    mask = np.where(values >= lowest, values - BACKGROUND_LABEL, 0)
    return mask.astype(np.int32), values != UNLABELLED


def sparse_training_pairs(
    image, labels, rgb: bool, tiles: int = 1, classes: bool = False
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """(images, masks, labelled) for `paulow.train` / `paulow.finetune(labelled=...)` from a
    sparsely painted labels layer (see `sparse_masks`), cut as `training_pairs` cuts; tiles
    without a painted pixel are left out (they hold nothing to learn or score)."""
    mask, painted = sparse_masks(np.asarray(labels), classes)
    images, masks = training_pairs(image, mask, rgb, tiles)
    _, marks = training_pairs(image, painted, rgb, tiles)
    kept = [i for i, m in enumerate(marks) if m.any()]
    return [images[i] for i in kept], [masks[i] for i in kept], [marks[i] for i in kept]


def page_index(data_point: Sequence[float], shape: Sequence[int]) -> int:
    """The flat page index of a data-space point (the leading axes of an image with pages)."""
    lead = len(shape) - 2
    if lead <= 0:
        return 0
    coords = [min(max(int(round(c)), 0), n - 1) for c, n in zip(list(data_point)[:lead], shape[:lead])]
    return int(np.ravel_multi_index(coords, tuple(shape[:lead])))


def summary_line(row: dict) -> str:
    """One line for a picker: `name: target, classes, tile, threshold, scores`."""
    names = f" ({', '.join(row['class_names'])})" if row["class_names"] else ""
    scores = ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in row["scores"].items()) or "no scores"
    return (
        f"{row['name']}: {row['target']}, {row['classes']} class(es){names}; tile {row['tile']} px, "
        f"threshold {row['threshold']:.2f}, smallest object {row['min_object_px']} px; {scores}"
    )
