"""Masks, instances, object tables and overlays on hand-made arrays with hand-computed answers."""

from __future__ import annotations

import numpy as np
import pytest

from paulow.errors import ShapeMismatchError, UsageError
from paulow.postprocess import label_instances, object_table, outline_overlay, summary_row, to_mask


def disc(shape: tuple[int, int], centre: tuple[float, float], radius: float) -> np.ndarray:
    yy, xx = np.indices(shape)
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def test_to_mask_thresholds_a_single_channel_strictly():
    prob = np.array([[[0.2, 0.5, 0.51], [0.9, 0.0, 1.0]]], dtype=np.float32)
    mask = to_mask(prob)
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, [[0, 0, 1], [1, 0, 1]])
    np.testing.assert_array_equal(to_mask(prob, threshold=0.1), [[1, 1, 1], [1, 0, 1]])


def test_to_mask_takes_the_argmax_for_several_classes():
    prob = np.array([[[0.9, 0.1, 0.3]], [[0.05, 0.8, 0.3]], [[0.0, 0.7, 0.6]]], dtype=np.float32)
    mask = to_mask(prob, threshold=0.99)  # the threshold plays no part for K > 1
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, [[0, 1, 2]])
    np.testing.assert_array_equal(mask, np.argmax(prob, axis=0))


def test_to_mask_argmax_ties_go_to_the_first_class_like_numpy():
    prob = np.full((3, 2, 2), 0.4, dtype=np.float32)
    prob[2, 0, 0] = 0.4000001
    np.testing.assert_array_equal(to_mask(prob), [[2, 0], [0, 0]])


def test_to_mask_rejects_a_2d_array():
    with pytest.raises(ShapeMismatchError):
        to_mask(np.zeros((4, 4)))


def test_two_separate_squares_get_labels_one_and_two():
    mask = np.zeros((10, 12), dtype=np.uint8)
    mask[1:4, 1:4] = 1
    mask[5:9, 6:11] = 1
    labels = label_instances(mask)
    assert labels.dtype == np.uint16
    expected = np.zeros((10, 12), dtype=np.uint16)
    expected[1:4, 1:4] = 1
    expected[5:9, 6:11] = 2
    np.testing.assert_array_equal(labels, expected)


def test_diagonal_neighbours_are_one_object():
    mask = np.eye(5, dtype=np.uint8)
    assert label_instances(mask).max() == 1


def test_classes_are_labelled_separately_even_when_touching():
    mask = np.zeros((4, 6), dtype=np.uint8)
    mask[:, 0:3] = 1
    mask[:, 3:5] = 2
    labels = label_instances(mask)
    np.testing.assert_array_equal(labels[0], [1, 1, 1, 2, 2, 0])
    assert labels.max() == 2


def test_min_size_removes_small_objects_and_renumbers():
    mask = np.zeros((8, 8), dtype=bool)
    mask[0, 0] = True  # 1 px
    mask[2:4, 2:4] = True  # 4 px
    mask[6:8, 5:8] = True  # 6 px
    labels = label_instances(mask, min_size=4)
    assert labels[0, 0] == 0
    assert set(np.unique(labels).tolist()) == {0, 1, 2}
    assert (labels[2:4, 2:4] == 1).all() and (labels[6:8, 5:8] == 2).all()


def test_empty_mask_gives_no_labels():
    labels = label_instances(np.zeros((5, 5), dtype=np.uint8), split_touching=True)
    assert labels.dtype == np.uint16 and not labels.any()


def test_touching_discs_split_only_when_asked():
    mask = (disc((40, 60), (20, 20), 10) | disc((40, 60), (20, 38), 10)).astype(np.uint8)
    assert label_instances(mask).max() == 1
    split = label_instances(mask, split_touching=True, min_distance=5)
    assert split.max() == 2
    assert split[20, 20] != split[20, 38] and split[20, 20] > 0 and split[20, 38] > 0
    assert set(np.unique(split[mask == 1]).tolist()) == {1, 2}
    # each half holds its own disc's centre region and roughly half the pixels
    areas = np.bincount(split.ravel())[1:]
    assert abs(int(areas[0]) - int(areas[1])) <= 0.05 * mask.sum()


def test_split_touching_keeps_a_separate_small_object():
    mask = disc((30, 30), (15, 15), 8)
    mask[0, 29] = True
    assert label_instances(mask.astype(np.uint8), split_touching=True).max() == 2


def test_more_than_65535_objects_use_uint32():
    few = np.zeros((364, 364), dtype=np.uint8)
    few[::2, ::2] = 1  # 182 * 182 = 33,124 isolated pixels
    many = np.zeros((364, 1092), dtype=np.uint8)
    many[::2, ::2] = 1  # 182 * 546 = 99,372 isolated pixels
    assert label_instances(few).dtype == np.uint16
    labels = label_instances(many)
    assert labels.dtype == np.uint32 and labels.max() == 99372


def test_object_table_areas_centroids_boxes_and_intensity():
    labels = np.zeros((6, 8), dtype=np.uint16)
    labels[1:3, 1:4] = 1  # 2 x 3 rectangle
    labels[4, 5:8] = 2  # 1 x 3 line
    labels[5, 7] = 2  # plus one pixel below its end
    image = np.arange(48, dtype=np.uint16).reshape(6, 8)
    rows = object_table(labels, image)
    assert [r["label"] for r in rows] == [1, 2]
    first, second = rows
    assert first["area_px"] == 6 and second["area_px"] == 4
    assert first["centroid_y"] == 1.5 and first["centroid_x"] == 2.0
    assert second["centroid_y"] == pytest.approx((4 * 3 + 5) / 4)
    assert second["centroid_x"] == pytest.approx((5 + 6 + 7 + 7) / 4)
    assert (first["bbox_min_row"], first["bbox_min_col"], first["bbox_max_row"], first["bbox_max_col"]) == (
        1,
        1,
        3,
        4,
    )
    assert (
        second["bbox_min_row"],
        second["bbox_min_col"],
        second["bbox_max_row"],
        second["bbox_max_col"],
    ) == (4, 5, 6, 8)
    assert first["mean_intensity"] == pytest.approx((9 + 10 + 11 + 17 + 18 + 19) / 6)
    assert second["mean_intensity"] == pytest.approx((37 + 38 + 39 + 47) / 4)
    assert "area" not in first and "mean_intensity_c0" not in first


def test_object_table_calibrated_area_and_channels():
    labels = np.zeros((4, 4), dtype=np.uint8)
    labels[0:2, 0:2] = 3  # labels need not be consecutive
    image = np.stack([np.full((4, 4), 10.0), np.full((4, 4), 30.0)])
    rows = object_table(labels, image, pixel_size=0.5, unit="µm")
    assert len(rows) == 1
    row = rows[0]
    assert row["label"] == 3 and row["area_px"] == 4
    assert row["area"] == 4 * 0.25 and row["area_unit"] == "µm^2"
    assert row["mean_intensity_c0"] == 10.0 and row["mean_intensity_c1"] == 30.0
    assert row["mean_intensity"] == 20.0
    assert object_table(labels, pixel_size=(0.5, 2.0))[0]["area"] == 4.0


def test_object_table_of_an_empty_label_image_is_empty():
    assert object_table(np.zeros((3, 3), dtype=np.uint16)) == []


def test_object_table_rejects_bad_inputs():
    labels = np.ones((4, 4), dtype=np.uint16)
    with pytest.raises(ShapeMismatchError):
        object_table(labels, np.zeros((5, 4)))
    with pytest.raises(UsageError):
        object_table(labels, pixel_size=0)


def test_summary_row_counts_objects():
    labels = np.zeros((10, 10), dtype=np.uint16)
    labels[0:2, 0:2] = 1
    labels[5:9, 5:9] = 2
    row = summary_row(labels, pixel_size=2.0, unit="nm", image="a.tif", page=3)
    assert list(row)[:2] == ["image", "page"]
    assert row["image"] == "a.tif" and row["page"] == 3
    assert row["objects"] == 2 and row["foreground_px"] == 20
    assert row["foreground_fraction"] == 0.2 and row["mean_area_px"] == 10.0
    assert row["total_area"] == 80.0 and row["area_unit"] == "nm^2"


def test_outline_overlay_draws_the_inner_boundary_only():
    image = np.full((7, 7), 50, dtype=np.uint8)
    mask = np.zeros((7, 7), dtype=np.uint8)
    mask[1:6, 1:6] = 1
    overlay = outline_overlay(image, mask, color=(255, 0, 0))
    assert overlay.shape == (7, 7, 3) and overlay.dtype == np.uint8
    red = (overlay == [255, 0, 0]).all(axis=2)
    expected = mask.astype(bool)
    expected[2:5, 2:5] = False
    np.testing.assert_array_equal(red, expected)
    assert (overlay[~red] == 50).all()
    assert (image == 50).all()  # the input is not modified


def test_outline_overlay_separates_touching_instances_and_takes_colour_images():
    labels = np.zeros((5, 8), dtype=np.uint16)
    labels[:, 0:4] = 1
    labels[:, 4:8] = 2
    rgb = np.zeros((5, 8, 3), dtype=np.uint8)
    overlay = outline_overlay(rgb, labels, color=(0, 255, 0))
    green = (overlay == [0, 255, 0]).all(axis=2)
    # objects touching the image edge are not outlined along it, only where labels meet
    expected = np.zeros((5, 8), dtype=bool)
    expected[:, 3:5] = True
    np.testing.assert_array_equal(green, expected)


def test_outline_overlay_scales_other_dtypes_and_checks_shapes():
    image = np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)
    overlay = outline_overlay(image, np.zeros((2, 2), dtype=np.uint8))
    np.testing.assert_array_equal(overlay[..., 0], [[0, 63], [127, 255]])
    with pytest.raises(ShapeMismatchError):
        outline_overlay(image, np.zeros((3, 2), dtype=np.uint8))
