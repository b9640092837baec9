"""The smallest object size: candidates from training object areas, removal, tuning on validation."""

from __future__ import annotations

import numpy as np

from paulow.object_size import (
    choose_min_size,
    mask_without_small,
    object_areas,
    remove_small,
    size_candidates,
    tune_min_size,
)


def _labels() -> np.ndarray:
    lab = np.zeros((20, 20), dtype=np.uint16)
    lab[0:10, 0:10] = 1  # 100 px
    lab[12:14, 12:14] = 2  # 4 px
    lab[18, 18] = 3  # 1 px
    return lab


def test_object_areas_of_every_image():
    assert object_areas([_labels(), np.zeros((3, 3), np.uint8)]).tolist() == [100, 4, 1]
    assert object_areas([]).tolist() == []


def test_candidates_are_fractions_of_the_fifth_percentile():
    assert size_candidates(np.full(20, 100)) == [0, 12, 25, 50]  # round(12.5) = 12
    areas = np.array(
        [
            10,
            200,
            200,
            200,
            200,
            200,
            200,
            200,
            200,
            200,
            200,
            200,
            200,
            200,
            200,
            200,
            200,
            200,
            200,
            200,
            200,
        ]
    )  # 21 objects: 5th percentile = 10 + 0.05 * 20 * 190 = 200
    assert np.percentile(areas, 5) == 200.0 and size_candidates(areas) == [0, 25, 50, 100]
    assert size_candidates(np.zeros(0)) == [0]


def test_remove_small_renumbers_what_is_kept():
    kept = remove_small(_labels(), 4)
    assert kept.dtype == np.uint16 and kept.max() == 2
    assert np.count_nonzero(kept == 1) == 100 and np.count_nonzero(kept == 2) == 4 and kept[18, 18] == 0
    assert np.array_equal(remove_small(_labels(), 0), _labels())


def test_mask_without_small_keeps_dtype_and_large_components():
    mask = (_labels() > 0).astype(np.uint8)
    out = mask_without_small(mask, 5)
    assert out.dtype == np.uint8 and out.sum() == 100 and out[12, 12] == 0


def test_tuning_picks_the_size_with_the_best_object_f1():
    truth = np.zeros((20, 20), np.uint16)
    truth[0:10, 0:10] = 1
    # predicted: the object and two specks -> F1 at size 0 = 2*1/(3+1) = 0.5; specks gone -> 1.0
    size, f1, before = tune_min_size([_labels()], [truth], [0, 2, 5, 50])
    assert (size, f1, before) == (5, 1.0, 0.5)
    # removing a real object is never picked when it costs F1; ties go to the smaller size
    assert tune_min_size([truth], [truth], [0, 50, 200])[0] == 0


def test_choose_min_size_from_the_model_unless_given():
    assert choose_min_size({"min_object_px": 30}) == 30
    assert choose_min_size({"min_object_px": 30}, 0) == 0
    assert choose_min_size({}) == 0
