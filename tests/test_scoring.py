"""Selection scores from stored probabilities, checked against hand-computed counts."""

from __future__ import annotations

import numpy as np
import pytest

from paulow.scoring import page_counts, score_probabilities, selection_score, sweep_thresholds


def test_binary_counts_and_threshold():
    prob = np.array([[[0.9, 0.4], [0.2, 0.6]]], dtype=np.float32)
    truth = np.array([[1, 1], [0, 0]], dtype=np.uint8)
    assert page_counts(prob, truth, 0.5).tolist() == [[1, 1, 1]]  # tp (0,0), fp (1,1), fn (0,1)
    assert page_counts(prob, truth, 0.3).tolist() == [[2, 1, 0]]
    assert score_probabilities([prob], [truth], 0.3)["dice"] == pytest.approx(4 / 5)


def test_multiclass_counts_use_argmax_and_mean_foreground_dice():
    # argmax: [[0, 1], [2, 2]]; truth: [[0, 1], [1, 2]]
    prob = np.zeros((3, 2, 2), dtype=np.float32)
    prob[0, 0, 0] = prob[1, 0, 1] = prob[2, 1, 0] = prob[2, 1, 1] = 1.0
    truth = np.array([[0, 1], [1, 2]])
    counts = page_counts(prob, truth)
    assert counts.tolist() == [[1, 0, 0], [1, 0, 1], [1, 1, 0]]
    # class 1: 2/3, class 2: 2/3 -> mean foreground 2/3; background is not in the mean
    assert selection_score(counts) == pytest.approx(2 / 3)
    scores = score_probabilities([prob], [truth])
    assert scores["dice_c"] == pytest.approx([1.0, 2 / 3, 2 / 3])


def test_absent_class_counts_as_perfect_and_small_class_weighs_the_same():
    prob = np.zeros((3, 1, 4), dtype=np.float32)
    prob[1] = 1.0  # everything predicted as class 1
    truth = np.array([[1, 1, 1, 2]])
    scores = score_probabilities([prob], [truth])
    assert scores["dice_c"] == pytest.approx([1.0, 6 / 7, 0.0])
    assert scores["dice"] == pytest.approx(3 / 7)


def test_sweep_picks_best_threshold_nearest_half_on_ties():
    prob = np.array([[[0.35, 0.7]]], dtype=np.float32)
    truth = np.array([[1, 1]])
    t, dice = sweep_thresholds([prob], [truth], (0.2, 0.3, 0.5, 0.8))
    assert (t, dice) == (0.3, 1.0)
    t, dice = sweep_thresholds([prob], [np.array([[0, 1]])], (0.2, 0.4, 0.6))
    assert (t, dice) == (0.4, 1.0)


def test_object_dice_of_a_boundary_model_merges_interior_and_boundary():
    from paulow.training_run import test_line

    # argmax [[1, 2, 0, 0], [0, 0, 0, 2]] against the 3-class truth [[2, 1, 0, 0], [1, 0, 0, 0]]: the
    # object masks share 2 px, (1, 3) is false, (1, 0) missed: Dice 4 / 6
    prob = np.zeros((3, 2, 4), dtype=np.float32)
    for (r, c), k in np.ndenumerate(np.array([[1, 2, 0, 0], [0, 0, 0, 2]])):
        prob[k, r, c] = 1.0
    truth = np.array([[2, 1, 0, 0], [1, 0, 0, 0]], dtype=np.uint8)
    scores = score_probabilities([prob], [truth], objects=True)
    assert scores["dice_objects"] == pytest.approx(4 / 6)
    assert scores["dice_c"][1] == 0.0 and scores["dice_c"][2] == 0.0  # no class right pixel by pixel
    assert "dice_objects" not in score_probabilities([prob], [truth])
    # objects under min_size px go, as use_model.py removes them: the 1 px object at (1, 3)
    assert score_probabilities([prob], [truth], min_size=2, objects=True)["dice_objects"] == pytest.approx(
        4 / 5
    )
    meta = {
        "metrics": {
            "test_dice": 0.0,
            "best_fold": 1,
            "test_dice_objects": 4 / 6,
            "test_dice_per_class": {"background": 0.5, "interior": 0.0, "boundary": 0.0},
        }
    }
    assert test_line(meta) == (
        "selected fold 1; test Dice 0.6667 (object masks, as use_model.py writes them; "
        "per class: interior 0.0000, boundary 0.0000)"
    )
