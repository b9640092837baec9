"""ImageJ ROI zips read back with roifile match the label image."""

from __future__ import annotations

import cv2
import numpy as np
from roifile import ROI_TYPE, roiread

from paulow.outlines import shoelace_area
from paulow.rois import write_roi_zip


def _filled(points: np.ndarray, shape) -> np.ndarray:
    """Pixels whose centre lies inside the polygon (even-odd), as Fiji fills a traced ROI."""
    from skimage.draw import polygon2mask

    return polygon2mask(shape, np.asarray(points, float)[:, ::-1] - 0.5)  # (row, col), centres at +0.5


def _test_labels() -> np.ndarray:
    labels = np.zeros((40, 50), np.uint16)
    labels[5:15, 5:20] = 1  # 10 x 15 rectangle
    cv2.circle(labels, (35, 28), 8, 2, -1)  # a disc
    labels[30:33, 2:5] = 7
    labels[18:28, 2:12] = 3  # a square with a 3 x 4 hole and an island in the hole
    labels[21:24, 5:9] = 0
    labels[22, 6] = 3
    labels[36, 40] = labels[37, 41] = 4  # two pixels touching at a corner only
    return labels


def test_roi_zip_has_one_traced_polygon_per_object_on_pixel_edges(tmp_path):
    labels = _test_labels()
    path = write_roi_zip(labels, tmp_path / "x_rois.zip")
    rois = roiread(path)
    assert [r.name for r in rois] == ["object-1", "object-2", "object-3", "object-4", "object-7"]
    assert all(r.roitype == ROI_TYPE.TRACED and not r.subpixelresolution for r in rois)
    for roi, label in zip(rois, (1, 2, 3, 4, 7)):
        points = roi.coordinates()
        assert shoelace_area(points) == np.count_nonzero(labels == label)  # Fiji's area == area_px
        np.testing.assert_array_equal(_filled(points, labels.shape), labels == label)
    rect = rois[0].coordinates()
    assert (rect[:, 0].min(), rect[:, 0].max(), rect[:, 1].min(), rect[:, 1].max()) == (5, 20, 5, 15)
    assert len(rect) == 4  # collinear vertices dropped: the rectangle's four corners


def test_empty_label_image_writes_an_empty_set(tmp_path):
    path = write_roi_zip(np.zeros((8, 8), np.uint16), tmp_path / "none.zip")
    assert path.is_file() and roiread(path) == []


def test_stack_rois_are_named_and_placed_by_page(tmp_path):
    stack = np.zeros((2, 20, 20), np.uint16)
    stack[0, 2:6, 2:6] = 1
    stack[1, 10:14, 3:9] = 1
    stack[1, 1:4, 15:19] = 2
    rois = roiread(write_roi_zip(stack, tmp_path / "s_rois.zip"))
    assert [r.name for r in rois] == ["0001-object-1", "0002-object-1", "0002-object-2"]
    assert [r.position for r in rois] == [1, 2, 2]  # ImageJ's 1-based stack positions
    box = rois[1].coordinates()
    assert (box[:, 0].min(), box[:, 0].max(), box[:, 1].min(), box[:, 1].max()) == (3, 9, 10, 14)
