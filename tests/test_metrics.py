"""Every score on small masks whose values were computed by hand (see the comments)."""

from __future__ import annotations

import numpy as np
import pytest

from paulow.errors import ShapeMismatchError
from paulow.metrics import (
    as_labels,
    centerline_counts,
    cldice_from_counts,
    confusion,
    iou_pairs,
    mean_scores,
    multiclass_scores,
    object_scores,
    pixel_scores,
    pooled_object_scores,
    pooled_scores,
    thin_structure_scores,
    tolerant_counts,
    tolerant_scores_from_counts,
)

# pred has 4 positives, truth 3: tp 2 at (0,0),(1,1); fp 2 at (0,1),(0,2); fn 1 at (1,0); tn 1 at (1,2)
PRED = np.array([[1, 1, 1], [0, 1, 0]], dtype=np.uint8)
TRUTH = np.array([[1, 0, 0], [1, 1, 0]], dtype=np.uint8)
EMPTY = np.zeros((2, 3), dtype=np.uint8)
ONE = np.array([[1, 0, 0], [0, 0, 0]], dtype=np.uint8)


def test_confusion_counts_any_nonzero_as_foreground():
    assert confusion(PRED, TRUTH) == (2, 2, 1, 1)
    assert confusion(PRED * 255, TRUTH.astype(bool)) == (2, 2, 1, 1)


def test_pixel_scores_by_hand():
    s = pixel_scores(PRED, TRUTH)
    assert s["dice"] == pytest.approx(4 / 7)  # 2tp / (2tp + fp + fn) = 4 / 7
    assert s["iou"] == pytest.approx(2 / 5)
    assert s["precision"] == pytest.approx(2 / 4)
    assert s["recall"] == pytest.approx(2 / 3)
    assert s["accuracy"] == pytest.approx(3 / 6)
    # background: tp 1 (tn), fp 1 (fn), fn 2 (fp) -> IoU 1/4, recall 1/3
    assert s["miou"] == pytest.approx((2 / 5 + 1 / 4) / 2)
    assert s["mpa"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert set(s) == {"dice", "iou", "precision", "recall", "accuracy", "miou", "mpa"}


def test_both_empty_scores_one():
    assert pixel_scores(EMPTY, EMPTY) == {
        "dice": 1.0,
        "iou": 1.0,
        "precision": 1.0,
        "recall": 1.0,
        "accuracy": 1.0,
        "miou": 1.0,
        "mpa": 1.0,
    }


def test_empty_prediction():
    s = pixel_scores(EMPTY, ONE)  # tp 0, fp 0, fn 1, tn 5
    assert (s["dice"], s["iou"], s["precision"], s["recall"]) == (0.0, 0.0, 0.0, 0.0)
    assert s["accuracy"] == pytest.approx(5 / 6)
    assert s["miou"] == pytest.approx((0 + 5 / 6) / 2)
    assert s["mpa"] == pytest.approx((0 + 5 / 5) / 2)


def test_empty_truth():
    s = pixel_scores(ONE, EMPTY)  # tp 0, fp 1, fn 0, tn 5
    assert (s["dice"], s["iou"], s["precision"], s["recall"]) == (0.0, 0.0, 0.0, 0.0)
    assert s["miou"] == pytest.approx((0 + 5 / 6) / 2)
    assert s["mpa"] == pytest.approx((0 + 5 / 6) / 2)


def test_all_foreground_background_class_absent_counts_as_perfect():
    full = np.ones((2, 3), dtype=np.uint8)
    s = pixel_scores(full, full)
    assert (s["miou"], s["mpa"], s["dice"]) == (1.0, 1.0, 1.0)


def test_shape_mismatch_raises_user_error():
    with pytest.raises(ShapeMismatchError, match=r"\(2, 3\).*\(3, 2\)"):
        pixel_scores(PRED, TRUTH.T)


def test_pooled_differs_from_per_image_mean():
    perfect = (np.ones((2, 2), np.uint8), np.ones((2, 2), np.uint8))
    invented = (np.array([[1, 0], [0, 0]], np.uint8), np.zeros((2, 2), np.uint8))
    per_image = mean_scores([pixel_scores(*perfect), pixel_scores(*invented)])
    assert per_image["dice"] == pytest.approx(0.5)  # (1 + 0) / 2
    pooled = pooled_scores([perfect, invented])  # tp 4, fp 1, fn 0, tn 3
    assert pooled["dice"] == pytest.approx(8 / 9)
    assert pooled["precision"] == pytest.approx(4 / 5)
    assert pooled["recall"] == 1.0
    assert pooled["accuracy"] == pytest.approx(7 / 8)


def test_pooled_of_nothing_raises():
    with pytest.raises(ValueError):
        pooled_scores([])


def test_mean_scores_ignores_nan():
    rows = [{"a": 1.0, "b": "x"}, {"a": float("nan"), "b": "y"}, {"a": 3.0, "b": "z"}]
    assert mean_scores(rows) == {"a": 2.0}


# truth / pred (rows, cols), rows = true class, cols = predicted:
# M[0,0]=2, M[1,1]=1, M[1,2]=1, M[2,2]=1, M[2,0]=1
MC_TRUTH = np.array([[0, 1, 1], [2, 2, 0]])
MC_PRED = np.array([[0, 1, 2], [2, 0, 0]])


def test_multiclass_per_class_by_hand():
    s = multiclass_scores(MC_PRED, MC_TRUTH, 3)
    # class 0: tp 2, fp 1, fn 0; class 1: tp 1, fp 0, fn 1; class 2: tp 1, fp 1, fn 1
    assert (s["dice_0"], s["iou_0"], s["pa_0"]) == pytest.approx((4 / 5, 2 / 3, 1.0))
    assert (s["dice_1"], s["iou_1"], s["pa_1"]) == pytest.approx((2 / 3, 1 / 2, 1 / 2))
    assert (s["dice_2"], s["iou_2"], s["pa_2"]) == pytest.approx((1 / 2, 1 / 3, 1 / 2))
    assert s["miou"] == pytest.approx((2 / 3 + 1 / 2 + 1 / 3) / 3)
    assert s["mpa"] == pytest.approx((1 + 1 / 2 + 1 / 2) / 3)
    assert s["mean_dice"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert s["accuracy"] == pytest.approx(4 / 6)


def test_multiclass_absent_class_counts_as_perfect():
    s = multiclass_scores(MC_PRED, MC_TRUTH, 4)
    assert (s["dice_3"], s["iou_3"], s["pa_3"]) == (1.0, 1.0, 1.0)
    assert s["miou"] == pytest.approx((2 / 3 + 1 / 2 + 1 / 3 + 1) / 4)


def test_multiclass_with_two_classes_matches_binary_miou_mpa():
    binary, multi = pixel_scores(PRED, TRUTH), multiclass_scores(PRED, TRUTH, 2)
    assert (multi["miou"], multi["mpa"], multi["dice_1"]) == pytest.approx(
        (binary["miou"], binary["mpa"], binary["dice"])
    )


def test_multiclass_rejects_out_of_range_values():
    with pytest.raises(ShapeMismatchError, match="0..2"):
        multiclass_scores(MC_PRED + 1, MC_TRUTH, 3)


# Two objects in one row of 12 pixels.
# A: truth cols 0-3, pred cols 1-4 -> intersection 3, union 5 -> IoU 0.6
# B: truth cols 7-9, pred cols 8-11 -> intersection 2, union 5 -> IoU 0.4
def _two_objects() -> tuple[np.ndarray, np.ndarray]:
    pred, truth = np.zeros((3, 12), np.uint16), np.zeros((3, 12), np.uint16)
    truth[1, 0:4], pred[1, 1:5] = 1, 1
    truth[1, 7:10], pred[1, 8:12] = 2, 2
    return pred, truth


def test_iou_pairs_from_joint_histogram():
    pi, ti, iou, n_pred, n_true = iou_pairs(*_two_objects())
    assert (pi.tolist(), ti.tolist(), n_pred, n_true) == ([0, 1], [0, 1], 2, 2)
    assert iou.tolist() == pytest.approx([0.6, 0.4])


def test_object_scores_one_of_two_matched():
    s = object_scores(*_two_objects())
    assert (s["tp"], s["fp"], s["fn"], s["n_pred"], s["n_true"], s["count_error"]) == (1, 1, 1, 2, 2, 0)
    assert (s["precision"], s["recall"], s["f1"]) == (0.5, 0.5, 0.5)
    assert s["mean_matched_iou"] == pytest.approx(0.6)


def test_object_scores_lower_threshold_matches_both():
    s = object_scores(*_two_objects(), iou=0.4)
    assert (s["tp"], s["precision"], s["recall"]) == (2, 1.0, 1.0)
    assert s["mean_matched_iou"] == pytest.approx(0.5)


def test_object_scores_binary_masks_are_labelled():
    pred, truth = _two_objects()
    assert object_scores(pred > 0, (truth > 0) * 255) == object_scores(pred, truth)


def test_binary_mask_uses_8_connectivity():
    diagonal = np.array([[255, 0], [0, 255]], np.uint8)
    assert as_labels(diagonal).max() == 1


def test_label_ids_need_not_be_consecutive():
    pred, truth = _two_objects()
    assert object_scores(pred * 7, truth * 1000) == object_scores(pred, truth)
    huge = truth.astype(np.int64) * 10**9  # ids far above the pixel count take the sorting path
    assert object_scores(pred, huge) == object_scores(pred, truth)


def test_fractional_labels_raise_user_error():
    with pytest.raises(ShapeMismatchError, match="fractional"):
        object_scores(np.array([[0.5, 0.25]]), np.array([[1, 0]]))


def test_matching_is_one_to_one_and_maximal():
    # threshold 0.2, truth T1 cols 0-3, T2 cols 4-7; pred P1 cols 2-6, P2 cols 7-8
    # IoU(P1,T1) = 2/7, IoU(P1,T2) = 3/6, IoU(P2,T2) = 1/5: taking the best pair first (P1-T2)
    # would leave one match; the optimum is P1-T1 and P2-T2.
    pred, truth = np.zeros((1, 12), np.uint8), np.zeros((1, 12), np.uint8)
    truth[0, 0:4], truth[0, 4:8] = 1, 2
    pred[0, 2:7], pred[0, 7:9] = 1, 2
    s = object_scores(pred, truth, iou=0.2)
    assert (s["tp"], s["fp"], s["fn"]) == (2, 0, 0)
    assert s["mean_matched_iou"] == pytest.approx((2 / 7 + 1 / 5) / 2)


def test_half_iou_split_object_matches_once():
    # P covers T1 and T2 exactly: IoU 0.5 with each, but it may match only one of them
    truth = np.array([[1, 1, 2, 2]], np.uint8)
    pred = np.array([[1, 1, 1, 1]], np.uint8)
    s = object_scores(pred, truth)
    assert (s["tp"], s["fp"], s["fn"], s["count_error"]) == (1, 0, 1, -1)
    assert s["mean_matched_iou"] == 0.5


def test_object_scores_empty_cases():
    empty = np.zeros((3, 12), np.uint16)
    pred, truth = _two_objects()
    both = object_scores(empty, empty)
    assert (both["precision"], both["recall"], both["f1"], both["mean_matched_iou"]) == (1.0, 1.0, 1.0, 1.0)
    assert (both["n_pred"], both["n_true"], both["count_error"]) == (0, 0, 0)
    missed = object_scores(empty, truth)
    assert (missed["precision"], missed["recall"], missed["f1"]) == (0.0, 0.0, 0.0)
    assert missed["mean_matched_iou"] == 0.0
    assert missed["count_error"] == -2
    invented = object_scores(pred, empty)
    assert (invented["precision"], invented["recall"], invented["f1"]) == (0.0, 0.0, 0.0)
    assert invented["count_error"] == 2


def test_pooled_object_scores_sum_counts():
    pred, truth = _two_objects()
    empty = np.zeros_like(truth)
    s = pooled_object_scores([(pred, truth), (empty, empty), (pred, empty)])
    assert (s["tp"], s["n_pred"], s["n_true"]) == (1, 4, 2)
    assert s["precision"] == pytest.approx(1 / 4)
    assert s["recall"] == pytest.approx(1 / 2)
    assert s["f1"] == pytest.approx(2 / 6)


def test_bad_threshold_raises():
    with pytest.raises(ValueError):
        object_scores(*_two_objects(), iou=0.0)


# ---------------------------------------------------------------- thin structures
def _line(row: int, shape=(9, 9), cols=slice(1, 8)) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    mask[row, cols] = 1  # 7 pixels
    return mask


def test_one_pixel_shift_of_a_line_scores_zero_dice_but_full_tolerant_f1():
    truth, pred = _line(4), _line(5)
    assert pixel_scores(pred, truth)["dice"] == 0.0
    s = thin_structure_scores([(pred, truth)])
    assert (s["tolerant_precision"], s["tolerant_recall"], s["tolerant_f1"]) == (1.0, 1.0, 1.0)
    assert s["cldice"] == 0.0  # each 1-px line is its own skeleton and misses the other line


def test_tolerance_is_euclidean_distance_in_pixels():
    truth = np.zeros((5, 5), dtype=np.uint8)
    truth[2, 2] = 1
    diagonal, two_away = truth * 0, truth * 0
    diagonal[1, 1] = 1  # 1.41 px away
    two_away[2, 4] = 1  # 2 px away
    assert tolerant_counts(diagonal, truth, 1.0) == (0, 1, 0, 1)
    assert tolerant_counts(diagonal, truth, 1.5) == (1, 1, 1, 1)
    assert tolerant_counts(two_away, truth, 1.5) == (0, 1, 0, 1)
    assert tolerant_counts(two_away, truth, 2.0) == (1, 1, 1, 1)


def test_tolerant_scores_with_a_false_blob_by_hand():
    truth = _line(6)
    pred = truth.copy()
    pred[0, 1:4] = 1  # 3 invented pixels, 6 rows from the truth
    assert tolerant_counts(pred, truth) == (7, 10, 7, 7)
    s = tolerant_scores_from_counts(7, 10, 7, 7)
    assert s["tolerant_precision"] == pytest.approx(0.7)
    assert s["tolerant_recall"] == 1.0
    assert s["tolerant_f1"] == pytest.approx(2 * 0.7 / 1.7)


def test_cldice_forgives_width_but_not_missing_centrelines():
    truth = np.zeros((9, 11), dtype=np.uint8)
    truth[3:6, 1:10] = 1  # a 3-px-wide bar; its skeleton: (4, 1..7) and a spur pixel at (3, 8)
    centre = np.zeros_like(truth)
    centre[4, 1:10] = 1  # a 1-px line is its own skeleton, all inside the bar
    assert pixel_scores(centre, truth)["dice"] == pytest.approx(2 * 9 / (9 + 27))
    assert centerline_counts(centre, truth) == (9, 9, 7, 8)
    # topology precision 1, sensitivity 7/8: clDice 14/15 where Dice is 0.5
    assert thin_structure_scores([(centre, truth)])["cldice"] == pytest.approx(14 / 15)
    edge = np.zeros_like(truth)
    edge[3, 1:10] = 1  # inside the bar (precision 1) but it holds only the spur of the bar's skeleton
    assert centerline_counts(edge, truth) == (9, 9, 1, 8)
    assert thin_structure_scores([(edge, truth)])["cldice"] == pytest.approx(2 * (1 / 8) / (9 / 8))
    assert cldice_from_counts(3, 4, 1, 2) == pytest.approx(2 * 0.75 * 0.5 / 1.25)


def test_thin_structure_scores_empty_cases_and_pooling():
    line, empty = _line(4), _line(4) * 0
    assert thin_structure_scores([(empty, empty)]) == {
        "tolerant_precision": 1.0,
        "tolerant_recall": 1.0,
        "tolerant_f1": 1.0,
        "cldice": 1.0,
    }
    missed = thin_structure_scores([(empty, line)])
    invented = thin_structure_scores([(line, empty)])
    assert missed["tolerant_f1"] == invented["tolerant_f1"] == 0.0
    assert missed["cldice"] == invented["cldice"] == 0.0
    # counts summed first: 7/7 predicted pixels near truth, 7 of 14 true pixels found
    pooled = thin_structure_scores([(line, line), (empty, line)])
    assert pooled["tolerant_precision"] == 1.0
    assert pooled["tolerant_recall"] == pytest.approx(0.5)
    assert pooled["tolerant_f1"] == pytest.approx(2 / 3)


def test_score_pages_reports_thin_structure_scores_per_page_and_pooled():
    from paulow.evaluate import THIN_KEYS, score_pages

    scored = score_pages([("a.tif", 0, _line(5), _line(4)), ("b.tif", 0, _line(4), _line(4))])
    assert [r["tolerant_f1"] for r in scored.rows] == [1.0, 1.0]
    assert [r["cldice"] for r in scored.rows] == [0.0, 1.0]
    assert all(k in scored.pooled for k in THIN_KEYS)
    assert scored.pooled["cldice"] == pytest.approx(0.5)  # skeleton counts (7, 14, 7, 14) pooled
