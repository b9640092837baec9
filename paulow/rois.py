"""ImageJ ROI sets: one traced polygon per labelled object, in a zip Fiji's ROI Manager opens."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def object_polygons(labels: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(label, (n, 2) integer x/y vertices) per object, in label order. The polygon follows the
    object's pixel edges (as Fiji's wand traces it), so the area Fiji measures is the object's
    pixel count; holes and separate parts are joined by zero-width cuts (`paulow.outlines`)."""
    from .outlines import object_geometries, single_ring

    return [(label, single_ring(geometry).astype(np.int32)) for label, geometry in object_geometries(labels)]


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
        roi.roitype = ROI_TYPE.TRACED  # integer vertices on pixel corners, like the wand's
        rois.append(roi)
    return rois


def write_roi_zip(labels: np.ndarray, path: str | Path, names: Sequence[str] | None = None) -> Path:
    """Write one ImageJ polygon ROI per object of a `(H, W)` label image, or of every page of a
    `(pages, H, W)` stack, to `path` (a `.zip` for Fiji's ROI Manager). Written atomically."""
    from roifile import roiwrite

    from .io.atomic import atomic_write_path

    if labels.ndim == 3 and labels.shape[0] == 1:
        labels = labels[0]
    rois = (
        page_rois(labels, names=names)
        if labels.ndim == 2
        else [roi for page, lab in enumerate(labels) for roi in page_rois(lab, page)]
    )
    with atomic_write_path(path) as tmp:
        roiwrite(tmp, rois, mode="w")
    return Path(path)
