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
