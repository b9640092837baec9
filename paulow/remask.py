"""Probabilities to a mask (and its objects) under a threshold and a smallest-object size: the rule
`Model.predict` and `use_model.py` apply, reusable on kept probabilities (`Prediction.rethreshold`,
napari's sliders) without running the network again."""

from __future__ import annotations

import numpy as np


def mask_from(probs: np.ndarray, threshold: float, boundary: bool = False, min_size: int = 0) -> np.ndarray:
    """`(H, W)` uint8 mask of `(K, H, W)` probabilities: a boundary model's objects (1 - P(background)
    > threshold), a binary model's foreground (P > threshold) or, for K >= 2, the most probable class.
    Objects under `min_size` px are removed from binary and boundary masks (8-connected)."""
    from .boundaries import object_mask
    from .object_size import mask_without_small
    from .postprocess import to_mask

    mask = object_mask(probs, threshold) if boundary else to_mask(probs, threshold)
    if min_size and (boundary or np.shape(probs)[0] == 1):
        return mask_without_small(mask, int(min_size))
    return mask


def labels_from(
    probs: np.ndarray,
    mask: np.ndarray,
    threshold: float,
    boundary: bool = False,
    min_size: int = 0,
    split_touching: bool = False,
) -> np.ndarray:
    """Instance labels (H, W) of one page: a boundary model's seeded watershed of its interiors, else
    the mask's 8-connected objects (touching ones split by watershed if asked); objects under
    `min_size` px removed. `Prediction.labels` and `use_model.py --instances` both use it."""
    if boundary:
        from .boundaries import instances_from_boundaries
        from .object_size import remove_small

        return remove_small(instances_from_boundaries(probs, threshold=threshold), min_size)
    from .postprocess import label_instances

    return label_instances(mask, split_touching=split_touching, min_size=min_size)
