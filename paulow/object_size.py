"""The smallest object a model keeps: specks far smaller than the objects it was trained on are removed.

A network trained on a few images leaves small false-positive specks (NIH3T3 through the user's path:
414 objects predicted for 273 nuclei, most of the extras under a tenth of a nucleus). They barely move
the pixel Dice but each one is a false object. Training picks the size at which they go, the way it
picks the threshold: on its validation images, among fractions of the training objects' 5th-percentile
area (0 included, so a set where small objects are real keeps them), the size with the best object F1
(ties: the smaller). Binary and `--boundary-target` models only: K-class maps are not object masks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

SIZE_FRACTIONS = (0.125, 0.25, 0.5)  # of the 5th percentile of the training objects' areas
AREA_PERCENTILE = 5


def object_areas(labels: Sequence[np.ndarray]) -> np.ndarray:
    """Areas (px) of every object of the (H, W) instance label images (0 = background)."""
    per_image = [np.bincount(np.asarray(lab).ravel().astype(np.int64))[1:] for lab in labels]
    areas = np.concatenate(per_image) if per_image else np.zeros(0, dtype=np.int64)
    return areas[areas > 0]


def largest_object(labels: Iterable[np.ndarray]) -> int:
    """The longer bounding-box side (px) of the largest object of the (H, W) instance label images
    (0 without objects): how far the chunked watershed must look around a chunk."""
    from scipy import ndimage

    largest = 0
    for lab in labels:
        lab = np.asarray(lab)
        if not np.issubdtype(lab.dtype, np.integer):
            lab = lab.astype(np.int64)
        for box in ndimage.find_objects(lab):
            if box is not None:
                largest = max(largest, box[0].stop - box[0].start, box[1].stop - box[1].start)
    return largest


def size_candidates(areas: np.ndarray) -> list[int]:
    """Minimum sizes to try: 0 and `SIZE_FRACTIONS` of the `AREA_PERCENTILE`th percentile of `areas`
    (distinct, ascending; [0] when there are no objects)."""
    if len(areas) == 0:
        return [0]
    low = float(np.percentile(areas, AREA_PERCENTILE))
    return sorted({0, *(int(round(f * low)) for f in SIZE_FRACTIONS)})


def remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """`labels` without the objects under `min_size` px, renumbered 1..N (uint16, uint32 above 65,535)."""
    from .postprocess import _remove_small, _smallest_label_dtype

    labels = np.asarray(labels)
    return labels if min_size <= 1 else _smallest_label_dtype(_remove_small(labels, min_size))


def mask_without_small(mask: np.ndarray, min_size: int) -> np.ndarray:
    """A 0/1 `mask` without its 8-connected components under `min_size` px (same dtype)."""
    from .postprocess import label_instances

    if min_size <= 1:
        return mask
    kept = remove_small(label_instances(mask), min_size) > 0
    return kept.astype(mask.dtype, copy=False)


def tune_min_size(
    predicted: Sequence[np.ndarray], truths: Sequence[np.ndarray], candidates: Sequence[int]
) -> tuple[int, float, float]:
    """(size, object F1 with it, object F1 without) : the candidate whose removal gives the best pooled
    object F1 (IoU >= 0.5) of the `predicted` label images against the `truths` (ties: the smaller)."""
    from .metrics import pooled_object_scores

    scores = {
        c: pooled_object_scores(zip([remove_small(p, c) for p in predicted], truths))["f1"]
        for c in sorted(set(candidates) | {0})
    }
    best = max(scores, key=lambda c: (scores[c], -c))
    return best, scores[best], scores[0]


def choose_min_size(meta: dict, override: int | None = None) -> int:
    """The user's minimum object size if given, else the model's (tuned in training; 0 when absent)."""
    return int(override) if override is not None else int(meta.get("min_object_px") or 0)
