"""Scores of a prediction against a ground-truth mask."""

from __future__ import annotations

import numpy as np

from .prediction import Prediction


def evaluate(
    pred: Prediction | np.ndarray, truth: np.ndarray, *, classes: int | None = None, iou: float = 0.5
) -> dict[str, float]:
    """Scores of a prediction of any model against a ground-truth mask (`paulow.prediction_scores`).

    Binary and boundary models: any truth whose non-zero pixels are the objects (0/1, 0/255,
    instance labels); pixel scores (dice, iou, precision, recall, accuracy, miou, mpa) of the mask
    (a boundary model's object mask: its "object Dice") and object scores prefixed `object_`
    (instances matched one-to-one at IoU >= `iou`); a boundary model adds `class_mean_dice` and
    `class_dice_<background|interior|boundary>`. `classes` > 1 (default: a class model's K):
    class-index truth, per-class scores.
    """
    from ..prediction_scores import score_prediction

    return score_prediction(pred, truth, classes, iou)
