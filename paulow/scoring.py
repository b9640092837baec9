"""Model-selection scores from stored probabilities: binary (one threshold) or per class (argmax).

Training predicts each held-out image once and keeps its probabilities; validation, threshold tuning,
the test score and the sample panel all read them from here, so nothing is predicted twice.
The selection score is the pooled foreground Dice for K = 1 and the mean Dice over the foreground
classes 1..K-1 for K >= 2 (every class weighs the same, however small).
Sparse labels: every score takes the pages' labelled pixels (`valid`, bool `(H, W)` per page, None
for a dense page) and counts those pixels only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# 0.05 .. 0.95: NIH3T3 through the user's path tuned to 0.90, the top of the earlier 0.10 .. 0.90 range
THRESHOLD_CANDIDATES = tuple(round(0.05 + 0.05 * i, 2) for i in range(19))
Valid = Sequence[np.ndarray | None] | None  # each page's labelled pixels (sparse labels), or None


def page_counts(
    prob: np.ndarray,
    truth: np.ndarray,
    threshold: float = 0.5,
    min_size: int = 0,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Confusion counts of one page: `(C, 3)` int64 rows of (tp, fp, fn), over the `valid` pixels
    when given (the objects are still found and filtered on the whole page).

    K = 1 (`prob` `(1, H, W)`): one row, foreground = `prob > threshold` without the objects under
    `min_size` px (as `use_model.py` writes it), truth non-zero.
    K >= 2: one row per class 0..K-1 from the argmax of `prob` against the class indices of `truth`.
    """
    from .postprocess import to_mask

    pred = to_mask(prob, threshold)
    classes = int(prob.shape[0])
    if classes == 1:
        if min_size > 1:
            from .object_size import mask_without_small

            pred = mask_without_small(pred, min_size)
        p, t = pred > 0, truth > 0
        if valid is not None:
            p, t = p & valid, t & valid
        return np.array(
            [[np.count_nonzero(p & t), np.count_nonzero(p & ~t), np.count_nonzero(~p & t)]], dtype=np.int64
        )
    if valid is not None:
        truth, pred = truth[valid], pred[valid]
    joint = np.bincount(
        truth.astype(np.int64).ravel() * classes + pred.astype(np.int64).ravel(), minlength=classes * classes
    )[: classes * classes].reshape(classes, classes)
    tp = np.diag(joint)
    return np.stack([tp, joint.sum(0) - tp, joint.sum(1) - tp], axis=1).astype(np.int64)


def dice_from_counts(counts: np.ndarray) -> np.ndarray:
    """Dice per row of (tp, fp, fn); 1.0 where nothing was to be found and nothing was found."""
    counts = np.asarray(counts, dtype=np.float64).reshape(-1, 3)
    denom = 2 * counts[:, 0] + counts[:, 1] + counts[:, 2]
    return np.where(denom == 0, 1.0, 2 * counts[:, 0] / np.maximum(denom, 1))


def selection_score(counts: np.ndarray) -> float:
    """The number model selection maximises: the binary Dice, or the mean foreground-class Dice."""
    dice = dice_from_counts(counts)
    return float(dice[0] if len(dice) == 1 else dice[1:].mean())


def score_probabilities(
    probs: Sequence[np.ndarray],
    truths: Sequence[np.ndarray],
    threshold: float = 0.5,
    min_size: int = 0,
    objects: bool = False,
    valid: Valid = None,
) -> dict:
    """Pooled scores of stored probabilities: `dice` (the selection score) and `dice_c` per class
    (for K = 1 the single foreground Dice, objects under `min_size` px removed). `objects` (a
    boundary model's classes): also `dice_objects`, see `object_dice` (`threshold` is then the
    object threshold; the classes' own scores use the argmax). `valid`: the labelled pixels."""
    counts = sum(
        (page_counts(p, t, threshold, min_size, v) for p, t, v in zip(probs, truths, _pages(valid, probs))),
        start=np.zeros((1, 3), np.int64),
    )
    per_class = dice_from_counts(counts)
    scores = {"dice": selection_score(counts), "dice_c": [float(d) for d in per_class]}
    if objects:
        scores["dice_objects"] = object_dice(probs, truths, min_size, threshold, valid)
    return scores


def _pages(valid: Valid, probs: Sequence[np.ndarray]) -> Sequence[np.ndarray | None]:
    return [None] * len(probs) if valid is None else valid


def object_dice(
    probs: Sequence[np.ndarray],
    truths: Sequence[np.ndarray],
    min_size: int = 0,
    threshold: float = 0.5,
    valid: Valid = None,
) -> float:
    """Pooled Dice of a boundary model's object masks (`boundaries.object_mask` at `threshold`,
    objects under `min_size` px removed: the mask `use_model.py` writes) against the truths'
    non-zero pixels (the labelled ones, given `valid`)."""
    from .boundaries import object_probability

    counts = np.zeros((1, 3), np.int64)
    for prob, truth, v in zip(probs, truths, _pages(valid, probs)):
        counts += page_counts(object_probability(prob), np.asarray(truth) != 0, threshold, min_size, v)
    return float(dice_from_counts(counts)[0])


def sweep_thresholds(
    probs: Sequence[np.ndarray],
    truths: Sequence[np.ndarray],
    candidates: Sequence[float] = THRESHOLD_CANDIDATES,
    valid: Valid = None,
) -> tuple[float, float]:
    """The threshold with the best pooled Dice (ties: nearest 0.5) over stored binary probabilities
    (on the labelled pixels, given `valid`).

    K >= 2 uses the argmax, so there is nothing to tune: returns (0.5, selection score).
    """
    if not probs or probs[0].shape[0] > 1:
        return 0.5, score_probabilities(probs, truths, valid=valid)["dice"] if probs else 0.0
    scores = [score_probabilities(probs, truths, t, valid=valid)["dice"] for t in candidates]
    best = max(range(len(scores)), key=lambda i: (round(scores[i], 4), -abs(candidates[i] - 0.5)))
    return float(candidates[best]), scores[best]


def sweep_object_thresholds(
    probs: Sequence[np.ndarray],
    truths: Sequence[np.ndarray],
    candidates: Sequence[float] = THRESHOLD_CANDIDATES,
    valid: Valid = None,
) -> tuple[float, float]:
    """A boundary model's threshold on its object probability 1 - P(background), with the best
    pooled Dice of its object masks against the truths' non-zero pixels (ties: nearest 0.5)."""
    from .boundaries import object_probability

    return sweep_thresholds(
        [object_probability(p) for p in probs], [np.asarray(t) != 0 for t in truths], candidates, valid
    )


def class_columns(prefix: str, values: Sequence[float], names: Sequence[str]) -> dict[str, float]:
    """Per-class values as named columns, `{prefix}_{name}` (spaces in names become `_`), e.g.
    `val_dice_membrane`: history.csv's and metrics.csv's per-class columns for K >= 2."""
    return {f"{prefix}_{str(name).replace(' ', '_')}": float(v) for name, v in zip(names, values)}
