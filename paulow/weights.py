"""Ronneberger's border weight map (U-Net, 2015), which makes the thin background between touching
objects expensive to get wrong:

    w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))^2 / (2 sigma^2))

d1, d2: distances to the nearest and the second-nearest object; w_c balances the class frequencies
(each class present carries the same total weight, so the map averages 1 without the border term).
The border term applies to background pixels, where the separating lines are.
"""

from __future__ import annotations

import numpy as np

DEFAULT_W0 = 10.0
DEFAULT_SIGMA = 5.0


def instance_labels(mask: np.ndarray) -> np.ndarray:
    """Instance labels of a mask: a binary mask (one non-zero value) is split into 8-connected
    components; a label image (several values) keeps its instances."""
    from scipy import ndimage

    values = np.unique(mask[mask != 0])
    if len(values) > 1:
        return mask.astype(np.int64)
    labels, _ = ndimage.label(mask != 0, structure=np.ones((3, 3), dtype=bool))
    return labels


def class_balance(foreground: np.ndarray) -> np.ndarray:
    """w_c: `(1 / classes present) / frequency` of each pixel's class (background / foreground)."""
    weights = np.ones(foreground.shape, dtype=np.float32)
    fractions = {value: float(np.mean(foreground == value)) for value in (False, True)}
    present = [value for value, fraction in fractions.items() if fraction > 0]
    for value in present:
        weights[foreground == value] = (1.0 / len(present)) / fractions[value]
    return weights


def border_weight_map(mask: np.ndarray, w0: float = DEFAULT_W0, sigma: float = DEFAULT_SIGMA) -> np.ndarray:
    """The `(H, W)` float32 weight map of one mask (binary or instance labels)."""
    from scipy import ndimage

    labels = instance_labels(np.asarray(mask))
    foreground = labels > 0
    weights = class_balance(foreground)
    ids = np.unique(labels[foreground])
    if len(ids) < 2 or w0 == 0:
        return weights
    nearest = np.full(labels.shape, np.inf, dtype=np.float64)
    second = np.full(labels.shape, np.inf, dtype=np.float64)
    for label in ids:
        distance = ndimage.distance_transform_edt(labels != label)
        second = np.minimum(second, np.maximum(nearest, distance))
        nearest = np.minimum(nearest, distance)
    border = w0 * np.exp(-((nearest + second) ** 2) / (2 * sigma**2))
    weights[~foreground] += border[~foreground].astype(np.float32)
    return weights


def parse_border_weight(text: str | None) -> tuple[float, float] | None:
    """`--border-weight` as given: '' or None (flag absent) -> None; 'default' -> (10, 5);
    'W0' or 'W0,SIGMA'."""
    from .errors import UsageError

    if text is None:
        return None
    if text in ("", "default"):
        return DEFAULT_W0, DEFAULT_SIGMA
    try:
        parts = [float(p) for p in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or parts[0] < 0 or (len(parts) == 2 and parts[1] <= 0):
        raise UsageError(f"--border-weight '{text}': give W0 or W0,SIGMA (e.g. 10,5), W0 >= 0, SIGMA > 0")
    return (parts[0], parts[1] if len(parts) == 2 else DEFAULT_SIGMA)
