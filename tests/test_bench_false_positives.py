"""bench/false_positives.py splits false-positive pixels into false objects and outline errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_false_objects_and_outline_errors_are_counted_by_hand():
    sys.path.insert(0, str(BENCH))
    import false_positives

    truth = np.zeros((12, 12), np.uint8)
    truth[2:6, 2:6] = 1  # one 4x4 object
    pred = np.zeros_like(truth)
    pred[2:7, 2:5] = 1  # one row too many (3 px), one column missing (4 px)
    pred[9:11, 9:11] = 1  # a 2x2 object where there is none, 4 to 5 px (chessboard) from the truth
    got = false_positives.false_positive_anatomy(pred, truth, near=1)
    assert got == {"fp": 7, "fp_in_false_objects": 4, "fp_near_truth": 3, "fn": 4, "true": 16}
    assert false_positives.false_positive_anatomy(pred, truth, near=4)["fp_near_truth"] == 3 + 1
    assert false_positives.false_positive_anatomy(pred, truth, near=5)["fp_near_truth"] == 3 + 4


def test_target_choice_counts_the_interior_by_hand():
    sys.path.insert(0, str(BENCH))
    import target_choice

    square = np.zeros((30, 30), np.uint8)
    square[5:25, 5:25] = 255  # a 2 px ring leaves its 16 x 16 centre: 256 of 400 px
    line = np.zeros((30, 30), np.uint8)
    line[10:13, :] = 1  # 3 px wide: no pixel more than 2 px inside
    assert target_choice.choice([square]) == {"interior_share": 0.64, "target": "boundary"}
    assert target_choice.choice([line]) == {"interior_share": 0.0, "target": "binary"}
    assert target_choice.choice([square, line, line]) == {
        "interior_share": round(256 / 580, 4),
        "target": "binary",
    }
