"""Objects through z: per-section labels linked into 3-D objects on synthetic ellipsoids."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from paulow.postprocess import label_instances
from paulow.stitch import objects_3d, stitch_sections
from paulow.synthetic import ellipsoid_labels, ellipsoid_volume


def _per_section(labels: np.ndarray, split: bool = False) -> np.ndarray:
    return np.stack([label_instances(page > 0, split_touching=split) for page in labels])


def test_separate_ellipsoids_each_become_one_object_exactly():
    image, truth = ellipsoid_volume((12, 64, 64), n=4, seed=3)
    assert image.shape == truth.shape == (12, 64, 64) and int(truth.max()) == 4
    sections = _per_section(truth)
    assert int(sum(page.max() for page in sections)) > 4 * 3  # each crosses several sections
    stitched = stitch_sections(sections)
    assert int(stitched.max()) == 4  # 4 objects in, 4 labels out
    for label in range(1, 5):  # each is exactly one true ellipsoid, voxel for voxel
        (values,) = [np.unique(truth[stitched == label])]
        assert values.size == 1 and np.array_equal(stitched == label, truth == values[0])


def test_touching_ellipsoids_stay_two_objects_with_volumes_within_their_contact_zone():
    shape = (9, 48, 64)
    truth = ellipsoid_labels(shape, [((4, 24, 20), (4, 10, 10)), ((4, 24, 38), (4, 10, 10))])
    assert np.any(ndimage.binary_dilation(truth == 1) & (truth == 2))  # they touch
    assert int(_per_section(truth)[4].max()) == 1  # unsplit, the middle section holds one blob
    stitched = stitch_sections(_per_section(truth, split=True))
    assert int(stitched.max()) == 2
    for label in (1, 2):
        match = np.bincount(truth[stitched == label]).argmax()
        other = 3 - match
        # the watershed may draw the line anywhere within 2 px of the true contact face
        zone = np.count_nonzero(
            (truth == match)
            & ndimage.binary_dilation(truth == other, structure=np.ones((1, 3, 3)), iterations=2)
        )
        assert abs(int(np.count_nonzero(stitched == label)) - int(np.count_nonzero(truth == match))) <= zone


def test_shifted_sections_below_the_threshold_are_not_linked():
    sections = np.zeros((2, 10, 20), np.int32)
    sections[0, 2:6, 2:6] = 1  # 16 px
    sections[1, 2:6, 5:9] = 1  # overlaps 4 px: a quarter of the smaller one
    assert int(stitch_sections(sections, threshold=0.5).max()) == 2
    assert int(stitch_sections(sections, threshold=0.25).max()) == 1


def test_a_small_cap_inside_a_larger_section_is_linked_one_to_one():
    sections = np.zeros((2, 20, 20), np.int32)
    sections[0, 2:18, 2:10] = 1
    sections[0, 2:18, 10:18] = 2
    sections[1, 8:12, 4:8] = 7  # a cap inside object 1 only (IoU 16 / 128, overlap 1.0)
    sections[1, 8:12, 12:16] = 3  # and one inside object 2
    stitched = stitch_sections(sections)
    assert int(stitched.max()) == 2
    assert stitched[1, 9, 5] == stitched[0, 9, 5] and stitched[1, 9, 13] == stitched[0, 9, 13]


def test_objects_3d_reports_volume_extent_and_centroid_in_units():
    labels = np.zeros((4, 6, 8), np.int32)
    labels[1:3, 2:4, 2:6] = 1  # 2 x 2 x 4 = 16 voxels
    image = np.full(labels.shape, 5.0)
    (row,) = objects_3d(labels, image, spacing=(2.0, 0.5, 0.25), unit="micron")
    assert row["voxels"] == 16 and row["sections"] == 2 and (row["z_first"], row["z_last"]) == (1, 2)
    assert row["volume"] == pytest.approx(16 * 2.0 * 0.5 * 0.25) and row["volume_unit"] == "micron^3"
    assert row["z_extent"] == pytest.approx(4.0)
    assert (row["centroid_z"], row["centroid_y"], row["centroid_x"]) == (1.5, 2.5, 3.5)
    assert row["centroid_z_micron"] == pytest.approx(3.0) and row["centroid_x_micron"] == pytest.approx(0.875)
    assert row["mean_intensity"] == 5.0
