"""ImageJ ROI zips read back with roifile match the label image."""
from __future__ import annotations

import cv2
import numpy as np
from roifile import ROI_TYPE, roiread

from paulow.rois import write_roi_zip


def test_roi_zip_has_one_polygon_per_object(tmp_path):
    labels = np.zeros((40, 50), np.uint16)
    labels[5:15, 5:20] = 1  # 10 x 15 rectangle
    cv2.circle(labels, (35, 28), 8, 2, -1)  # a disc
    labels[30:33, 2:5] = 7
    path = write_roi_zip(labels, tmp_path / "x_rois.zip")
    rois = roiread(path)
    assert [r.name for r in rois] == ["object-1", "object-2", "object-7"]
    assert all(r.roitype == ROI_TYPE.POLYGON for r in rois)
    for roi, label in zip(rois, (1, 2, 7)):
        filled = np.zeros_like(labels, dtype=np.uint8)
        cv2.fillPoly(filled, [np.round(roi.coordinates()).astype(np.int32)], 1)
        assert np.array_equal(filled > 0, labels == label)  # the polygon covers exactly the object
    rect = rois[0].coordinates()
    assert (rect[:, 0].min(), rect[:, 0].max(), rect[:, 1].min(), rect[:, 1].max()) == (5, 19, 5, 14)


def test_empty_label_image_writes_an_empty_set(tmp_path):
    path = write_roi_zip(np.zeros((8, 8), np.uint16), tmp_path / "none.zip")
    assert path.is_file() and roiread(path) == []
