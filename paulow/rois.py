"""ImageJ ROI sets: one polygon per labelled object, in a zip Fiji's ROI Manager opens."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def object_polygons(labels: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(label, (n, 2) x/y vertices of the object's outer boundary) per object, in label order.
    The polygon runs through the outer pixels' corners' centres (OpenCV's outer contour)."""
    import cv2

    polygons = []
    for label in np.unique(labels[labels > 0]):
        region = (labels == label).astype(np.uint8)
        contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        outer = max(contours, key=cv2.contourArea)  # a split object keeps its largest part
        polygons.append((int(label), outer[:, 0, :].astype(np.float32)))
    return polygons


def page_rois(labels: np.ndarray, page: int | None = None, names: Sequence[str] | None = None) -> list:
    """ImageJ polygon ROIs of one `(H, W)` label image, named `object-<label>` (or `names[i]`);
    on a stack page `<page>-object-<label>` (1-based, zero-padded so ROI Manager sorts by page),
    and the ROI carries the page as its stack position."""
    from roifile import ROI_TYPE, ImagejRoi

    rois = []
    for i, (label, points) in enumerate(object_polygons(labels)):
        name = names[i] if names else f"object-{label}"
        name = name if page is None else f"{page + 1:04d}-{name}"
        roi = ImagejRoi.frompoints(points, name=name, position=page)  # stored 1-based
        roi.roitype = ROI_TYPE.POLYGON
        rois.append(roi)
    return rois


def write_roi_zip(labels: np.ndarray, path: str | Path, names: Sequence[str] | None = None) -> Path:
    """Write one ImageJ polygon ROI per object of a `(H, W)` label image, or of every page of a
    `(pages, H, W)` stack, to `path` (a `.zip` for Fiji's ROI Manager). Written atomically."""
    from roifile import roiwrite

    from .io import atomic_write_path

    if labels.ndim == 3 and labels.shape[0] == 1:
        labels = labels[0]
    rois = (page_rois(labels, names=names) if labels.ndim == 2 else
            [roi for page, lab in enumerate(labels) for roi in page_rois(lab, page)])
    with atomic_write_path(path) as tmp:
        roiwrite(tmp, rois, mode="w")
    return Path(path)
