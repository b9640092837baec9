"""`paulow.evaluate`: scores of any model's `Prediction` (or a plain mask) against a truth mask.

- Binary and boundary models: the truth's non-zero pixels are the objects (0/1, 0/255 or instance
  labels); pixel scores (`dice`, `iou`, ...) are those of the prediction's mask, which for a boundary
  model is its object mask (1 - P(background) > threshold): the "object Dice". Object scores
  (`object_*`) match the prediction's instances (a boundary model's seeded watershed) with the
  truth's (its labels, or the connected components of a binary truth) at IoU >= `iou`.
- A boundary model also gets its class scores beside it: `class_mean_dice` (interior and boundary)
  and `class_dice_background|interior|boundary`, against the 3-class target of the truth's objects
  (ring of the model's width), as training scores its validation images.
- K >= 2 class models: the truth holds class indices; per-class scores (`multiclass_scores`).
"""

from __future__ import annotations

import numpy as np

from .errors import ShapeMismatchError

_BOUNDARY_CLASSES = ("background", "interior", "boundary")


def _truth_2d(truth, shape: tuple[int, ...]) -> np.ndarray:
    truth = np.asarray(truth)
    if truth.ndim == 3 and truth.shape[0] == 1:
        truth = truth[0]
    if truth.shape != tuple(shape):
        raise ShapeMismatchError(
            f"the truth mask is {truth.shape} but the prediction {tuple(shape)}: "
            "give the truth of the same image (H, W)"
        )
    return truth


def _boundary_classes(pred, truth_labels: np.ndarray) -> dict[str, float]:
    from .boundaries import DEFAULT_WIDTH, boundary_target
    from .metrics import multiclass_scores
    from .postprocess import to_mask

    target = boundary_target(truth_labels, pred.boundary_width or DEFAULT_WIDTH)
    scores = multiclass_scores(to_mask(pred.probabilities), target, 3)
    out = {"class_mean_dice": scores["mean_dice"]}
    out.update({f"class_dice_{name}": scores[f"dice_{c}"] for c, name in enumerate(_BOUNDARY_CLASSES)})
    return out


def score_prediction(pred, truth, classes: int | None = None, iou: float = 0.5) -> dict[str, float]:
    """See the module's note; `pred` is a `paulow.api.Prediction` or a mask array."""
    from .metrics import as_labels, multiclass_scores, object_scores, pixel_scores

    is_prediction = hasattr(pred, "probabilities")
    mask = pred.mask if is_prediction else np.asarray(pred)
    truth = _truth_2d(truth, mask.shape)
    boundary = bool(getattr(pred, "boundary", False))
    if classes is None:
        classes = 1 if boundary or not is_prediction else int(pred.probabilities.shape[0])
    if classes > 1 and not boundary:
        return multiclass_scores(mask, truth, classes)
    if truth.min(initial=0) < 0:
        raise ShapeMismatchError("the truth mask holds negative values: give 0 / non-zero or labels 0..N")
    truth_labels = as_labels(truth if np.issubdtype(truth.dtype, np.integer) else truth != 0)
    predicted = pred.labels() if is_prediction else mask != 0
    objects = object_scores(predicted, truth_labels, iou)
    scores = {**pixel_scores(mask, truth), **{f"object_{k}": v for k, v in objects.items()}}
    if boundary:
        scores.update(_boundary_classes(pred, truth_labels))
    return scores
