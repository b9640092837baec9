"""Segmentation scores: pixel level (binary and multi-class) and object level. Pure numpy (+ scipy).

Empty-case convention, used by every ratio here: when a ratio's denominator is 0 the score is 1.0 if
there was nothing to find and nothing was found (the ideal situation), else 0.0. So:

- prediction and truth both empty: dice = iou = precision = recall = 1.0;
- prediction empty, truth not: precision = 0.0 (something was missed), recall = 0.0, dice = iou = 0.0;
- truth empty, prediction not: recall = 0.0 (something was invented), precision = 0.0, dice = iou = 0.0.

The same rule applies per class in mIoU / mPA (a class absent from both counts as 1.0) and to object
scores. Binary inputs: any non-zero pixel is foreground. Connected components (when a binary mask is
given where labels are expected) use 8-connectivity, as `paulow.postprocess` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from .errors import ShapeMismatchError

# 8-connectivity: diagonal neighbours belong to the same object.
CONNECTIVITY = np.ones((3, 3), dtype=bool)


# ---------------------------------------------------------------- helpers
def _check_shapes(pred: np.ndarray, truth: np.ndarray) -> None:
    if pred.shape != truth.shape:
        raise ShapeMismatchError(
            f"prediction shape {pred.shape} and truth shape {truth.shape} differ "
            "— compare a prediction with the mask of the same image"
        )
    if pred.size == 0:
        raise ValueError("cannot score empty arrays")


def _ratio(num: float, den: float, ideal: bool) -> float:
    """num / den; when den == 0: 1.0 if nothing was to be found and nothing was found, else 0.0."""
    if den == 0:
        return 1.0 if ideal else 0.0
    return float(num) / float(den)


def _class_scores(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Dice, IoU, precision and recall of one class from its counts."""
    return {
        "dice": _ratio(2 * tp, 2 * tp + fp + fn, ideal=True),
        "iou": _ratio(tp, tp + fp + fn, ideal=True),
        "precision": _ratio(tp, tp + fp, ideal=fn == 0),
        "recall": _ratio(tp, tp + fn, ideal=fp == 0),
    }


# ---------------------------------------------------------------- binary pixel scores
def confusion(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) pixel counts of two binary masks of the same shape (non-zero = foreground)."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    _check_shapes(pred, truth)
    p, t = pred != 0, truth != 0
    tp = int(np.count_nonzero(p & t))
    fp = int(np.count_nonzero(p)) - tp
    fn = int(np.count_nonzero(t)) - tp
    return tp, fp, fn, int(p.size) - tp - fp - fn


def scores_from_counts(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    """Binary scores from confusion counts: dice (= F1), iou, precision, recall, accuracy, miou, mpa.

    miou is the mean of the foreground and background IoU; mpa the mean of their pixel accuracies
    (per-class recall, TP_c / (TP_c + FN_c)). The background's counts are the foreground's swapped:
    its TP is tn, its FP is fn and its FN is fp.
    """
    total = tp + fp + fn + tn
    if total == 0:
        raise ValueError("cannot score empty arrays")
    fg = _class_scores(tp, fp, fn)
    bg = _class_scores(tn, fn, fp)
    return {
        **fg,
        "accuracy": (tp + tn) / total,
        "miou": (fg["iou"] + bg["iou"]) / 2,
        "mpa": (fg["recall"] + bg["recall"]) / 2,
    }


def pixel_scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Binary pixel scores of one image: dice, iou, precision, recall, accuracy, miou, mpa."""
    return scores_from_counts(*confusion(pred, truth))


def pooled_scores(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Binary pixel scores with the confusion counts summed over all (pred, truth) pairs first.

    Unlike the mean of per-image scores, big images weigh more and an image with an empty truth
    does not score 0 or 1 on its own.
    """
    counts = np.zeros(4, dtype=np.int64)
    for pred, truth in pairs:
        counts += confusion(pred, truth)
    if counts.sum() == 0:
        raise ValueError("no image to score")
    return scores_from_counts(*(int(c) for c in counts))


def mean_scores(rows: Sequence[dict]) -> dict[str, float]:
    """Per-key mean of per-image score dicts (numeric keys present in every row; NaN ignored)."""
    if not rows:
        return {}
    keys = [k for k in rows[0] if all(isinstance(r.get(k), (int, float, np.number)) for r in rows)]
    means = {}
    for k in keys:
        values = np.array([float(r[k]) for r in rows])
        means[k] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    return means


# ---------------------------------------------------------------- multi-class pixel scores
def class_confusion(pred: np.ndarray, truth: np.ndarray, classes: int) -> np.ndarray:
    """(classes, classes) int64 matrix: rows are true classes, columns predicted classes."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    _check_shapes(pred, truth)
    for name, a in (("prediction", pred), ("truth", truth)):
        if a.min() < 0 or a.max() >= classes:
            raise ShapeMismatchError(
                f"{name} mask has values {int(a.min())}..{int(a.max())}, outside "
                f"0..{classes - 1} — fix the mask or the number of classes (--classes)"
            )
    index = truth.astype(np.int64).ravel() * classes + pred.astype(np.int64).ravel()
    return np.bincount(index, minlength=classes * classes).reshape(classes, classes)


def scores_from_matrix(matrix: np.ndarray) -> dict[str, float]:
    """Per-class dice_c / iou_c / precision_c / pa_c (pixel accuracy = recall), then miou and mpa over
    all classes, mean_dice and mean_iou over the foreground classes (1..K-1) and the overall pixel
    accuracy."""
    classes = matrix.shape[0]
    tp = np.diag(matrix)
    fn = matrix.sum(axis=1) - tp
    fp = matrix.sum(axis=0) - tp
    out: dict[str, float] = {}
    ious, pas, dices = [], [], []
    for c in range(classes):
        s = _class_scores(int(tp[c]), int(fp[c]), int(fn[c]))
        out[f"dice_{c}"], out[f"iou_{c}"], out[f"pa_{c}"] = s["dice"], s["iou"], s["recall"]
        out[f"precision_{c}"] = s["precision"]
        ious.append(s["iou"])
        pas.append(s["recall"])
        dices.append(s["dice"])
    out["mean_dice"] = float(np.mean(dices[1:])) if classes > 1 else dices[0]
    out["mean_iou"] = float(np.mean(ious[1:])) if classes > 1 else ious[0]
    out["miou"] = float(np.mean(ious))
    out["mpa"] = float(np.mean(pas))
    out["accuracy"] = float(tp.sum()) / float(matrix.sum())
    return out


def multiclass_scores(pred: np.ndarray, truth: np.ndarray, classes: int) -> dict[str, float]:
    """Class-index masks (values 0..classes-1, 0 = background): per-class dice_c, iou_c, pa_c;
    miou and mpa over all classes (background included); mean_dice over classes 1..K-1; accuracy."""
    return scores_from_matrix(class_confusion(pred, truth, classes))


# ---------------------------------------------------------------- object scores
def as_labels(mask: np.ndarray) -> np.ndarray:
    """A label image. A binary mask (bool, or a single non-zero value such as 255) is split into
    8-connected components; an image with several non-zero values is taken as labels already."""
    from scipy import ndimage

    mask = np.asarray(mask)
    nonzero = mask[mask != 0]
    if mask.dtype == bool or nonzero.size == 0 or bool((nonzero == nonzero[0]).all()):
        labels, _ = ndimage.label(mask != 0, structure=CONNECTIVITY)
        return labels
    if mask.min() < 0 or not np.issubdtype(mask.dtype, np.integer):
        raise ShapeMismatchError(
            "a label image holds negative or fractional values "
            "— give a binary mask or non-negative integer labels"
        )
    return mask


def _compact(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Renumber the labels present to 1..n (0 stays background)."""
    flat = labels.ravel().astype(np.int64, copy=False)
    if flat.size and flat.max() > 4 * flat.size:  # sparse huge ids: sort rather than a huge table
        values, inverse = np.unique(flat, return_inverse=True)
        offset = 0 if values[0] == 0 else 1
        return (inverse + offset).reshape(labels.shape), int(values.size - 1 + offset)
    present = np.flatnonzero(np.bincount(flat))
    present = present[present != 0]
    lut = np.zeros(int(flat.max(initial=0)) + 1, dtype=np.int64)
    lut[present] = np.arange(1, present.size + 1)
    return lut[flat].reshape(labels.shape), int(present.size)


def iou_pairs(
    pred_labels: np.ndarray, truth_labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Every overlapping (pred, truth) object pair and its IoU, from one joint histogram.

    Returns (pred_index, truth_index, iou, n_pred, n_true); indices are 0-based over the objects
    present, in increasing label order.
    """
    p, n_pred = _compact(np.asarray(pred_labels))
    t, n_true = _compact(np.asarray(truth_labels))
    area_p = np.bincount(p.ravel(), minlength=n_pred + 1)
    area_t = np.bincount(t.ravel(), minlength=n_true + 1)
    both = (p != 0) & (t != 0)
    pairs, inter = np.unique(p[both].astype(np.int64) * (n_true + 1) + t[both], return_counts=True)
    pi, ti = pairs // (n_true + 1), pairs % (n_true + 1)
    iou = inter / (area_p[pi] + area_t[ti] - inter)
    return pi - 1, ti - 1, iou, n_pred, n_true


def _match_component(rows: np.ndarray, cols: np.ndarray, iou: np.ndarray) -> np.ndarray:
    """Indices of the chosen pairs within one connected group of candidate pairs: most matches
    first, then the highest total IoU (Hungarian algorithm)."""
    from scipy.optimize import linear_sum_assignment

    r_ids, r = np.unique(rows, return_inverse=True)
    c_ids, c = np.unique(cols, return_inverse=True)
    n = min(len(r_ids), len(c_ids))
    # 1 per match dominates the IoU term (< 1 in total), so the number of matches is maximal.
    weight = np.zeros((len(r_ids), len(c_ids)))
    weight[r, c] = 1.0 + iou / (n + 1)
    chosen_r, chosen_c = linear_sum_assignment(weight, maximize=True)
    lookup = {(a, b): k for k, (a, b) in enumerate(zip(r, c))}
    return np.array([lookup[(a, b)] for a, b in zip(chosen_r, chosen_c) if (a, b) in lookup], dtype=int)


def match_objects(pi: np.ndarray, ti: np.ndarray, iou: np.ndarray, threshold: float) -> np.ndarray:
    """Indices of the candidate pairs kept by a one-to-one matching at IoU >= threshold.

    Above 0.5 each object overlaps at most one other that much, so the matching is unique; otherwise
    each connected group of candidates is solved by `linear_sum_assignment`.
    """
    keep = np.flatnonzero(iou >= threshold)
    if threshold > 0.5 or keep.size == 0:
        return keep
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n_p, n_t = int(pi.max()) + 1, int(ti.max()) + 1
    graph = coo_matrix((np.ones(keep.size), (pi[keep], n_p + ti[keep])), shape=(n_p + n_t,) * 2)
    _, group = connected_components(graph, directed=False)
    edge_group = group[pi[keep]]
    sizes = np.bincount(edge_group)[edge_group]
    chosen = [keep[sizes == 1]]  # an isolated pair needs no assignment
    order = np.argsort(edge_group[sizes > 1], kind="stable")
    crowded, crowded_group = keep[sizes > 1][order], edge_group[sizes > 1][order]
    if crowded.size:
        for edges in np.split(crowded, np.flatnonzero(np.diff(crowded_group)) + 1):
            chosen.append(edges[_match_component(pi[edges], ti[edges], iou[edges])])
    return np.sort(np.concatenate(chosen))


def _object_summary(tp: int, n_pred: int, n_true: int, iou_sum: float) -> dict[str, float]:
    fp, fn = n_pred - tp, n_true - tp
    return {
        "precision": _ratio(tp, n_pred, ideal=n_true == 0),
        "recall": _ratio(tp, n_true, ideal=n_pred == 0),
        "f1": _ratio(2 * tp, n_pred + n_true, ideal=True),
        "n_pred": n_pred,
        "n_true": n_true,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "count_error": n_pred - n_true,
        "mean_matched_iou": _ratio(iou_sum, tp, ideal=n_pred == 0 and n_true == 0),
    }


def _object_counts(pred: np.ndarray, truth: np.ndarray, iou: float) -> tuple[int, int, int, float]:
    if not 0.0 < iou <= 1.0:
        raise ValueError(f"IoU threshold must be in (0, 1], not {iou}")
    pred, truth = np.asarray(pred), np.asarray(truth)
    _check_shapes(pred, truth)
    pi, ti, scores, n_pred, n_true = iou_pairs(as_labels(pred), as_labels(truth))
    matched = match_objects(pi, ti, scores, iou)
    return len(matched), n_pred, n_true, float(scores[matched].sum())


def object_scores(pred_labels: np.ndarray, truth_labels: np.ndarray, iou: float = 0.5) -> dict[str, float]:
    """Object-level scores: objects matched one-to-one at IoU >= `iou`.

    Inputs are label images (0 = background) or binary masks (split into 8-connected components).
    Returns precision, recall, f1, n_pred, n_true, tp, fp, fn, count_error (n_pred - n_true) and
    mean_matched_iou (mean IoU of the matched pairs; 0.0 when nothing matched, 1.0 when both empty).
    """
    tp, n_pred, n_true, iou_sum = _object_counts(pred_labels, truth_labels, iou)
    return _object_summary(tp, n_pred, n_true, iou_sum)


def pooled_object_scores(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]], iou: float = 0.5
) -> dict[str, float]:
    """Object scores with matches and object counts summed over all (pred, truth) pairs first."""
    tp = n_pred = n_true = 0
    iou_sum = 0.0
    for pred, truth in pairs:
        m, p, t, s = _object_counts(pred, truth, iou)
        tp, n_pred, n_true, iou_sum = tp + m, n_pred + p, n_true + t, iou_sum + s
    return _object_summary(tp, n_pred, n_true, iou_sum)


# ---------------------------------------------------------------- thin structures
# Traced filaments, membranes and vessels are 1-3 px wide: moving a 2-px line by one pixel halves its
# Dice. These scores forgive that (and only that), so a model that finds the right structures is told
# apart from one that misses them. Both pool like the pixel scores: counts are summed first.
def tolerant_counts(pred: np.ndarray, truth: np.ndarray, tolerance: float = 1.0) -> tuple[int, int, int, int]:
    """(predicted pixels within `tolerance` px of a true pixel, predicted pixels, true pixels within
    `tolerance` px of a predicted pixel, true pixels); Euclidean distance, 8-neighbours are 1.41 px."""
    from scipy.ndimage import distance_transform_edt

    pred, truth = np.asarray(pred), np.asarray(truth)
    _check_shapes(pred, truth)
    p, t = pred != 0, truth != 0
    n_pred, n_true = int(np.count_nonzero(p)), int(np.count_nonzero(t))
    near_truth = distance_transform_edt(~t) <= tolerance if n_true else np.zeros_like(t)
    near_pred = distance_transform_edt(~p) <= tolerance if n_pred else np.zeros_like(p)
    return int(np.count_nonzero(p & near_truth)), n_pred, int(np.count_nonzero(t & near_pred)), n_true


def tolerant_scores_from_counts(hit_pred: int, n_pred: int, hit_true: int, n_true: int) -> dict[str, float]:
    """Tolerant precision, recall and F1 (the relaxed scores of road and boundary detection)."""
    precision = _ratio(hit_pred, n_pred, ideal=n_true == 0)
    recall = _ratio(hit_true, n_true, ideal=n_pred == 0)
    f1 = _ratio(2 * precision * recall, precision + recall, ideal=n_pred == 0 and n_true == 0)
    return {"tolerant_precision": precision, "tolerant_recall": recall, "tolerant_f1": f1}


def centerline_counts(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, int, int]:
    """(prediction skeleton pixels inside the truth, prediction skeleton pixels, truth skeleton pixels
    inside the prediction, truth skeleton pixels): the counts of clDice (Shit et al., CVPR 2021)."""
    from skimage.morphology import skeletonize

    pred, truth = np.asarray(pred), np.asarray(truth)
    _check_shapes(pred, truth)
    p, t = pred != 0, truth != 0
    sp, st = skeletonize(p), skeletonize(t)
    return (
        int(np.count_nonzero(sp & t)),
        int(np.count_nonzero(sp)),
        int(np.count_nonzero(st & p)),
        int(np.count_nonzero(st)),
    )


def cldice_from_counts(hit_pred: int, n_pred: int, hit_true: int, n_true: int) -> float:
    """clDice: the harmonic mean of topology precision (|S_pred ∩ truth| / |S_pred|) and topology
    sensitivity (|S_truth ∩ pred| / |S_truth|)."""
    precision = _ratio(hit_pred, n_pred, ideal=n_true == 0)
    sensitivity = _ratio(hit_true, n_true, ideal=n_pred == 0)
    return _ratio(2 * precision * sensitivity, precision + sensitivity, ideal=n_pred == 0 and n_true == 0)


def thin_structure_scores(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]], tolerance: float = 1.0
) -> dict[str, float]:
    """Tolerant precision/recall/F1 within `tolerance` px and clDice, counts pooled over all pairs."""
    tolerant, centre = np.zeros(4, dtype=np.int64), np.zeros(4, dtype=np.int64)
    for pred, truth in pairs:
        tolerant += tolerant_counts(pred, truth, tolerance)
        centre += centerline_counts(pred, truth)
    return {
        **tolerant_scores_from_counts(*(int(c) for c in tolerant)),
        "cldice": cldice_from_counts(*(int(c) for c in centre)),
    }
