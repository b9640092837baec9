"""Objects through z: per-section instance labels linked into 3-D labels, and their 3-D measurements.

Linking (as Cellpose's `stitch_threshold`, but one-to-one): going up the stack, each object of
section z is matched to at most one object of section z-1 and vice versa, maximising the summed IoU
(Hungarian assignment), and a match is kept when the two overlap by at least `threshold` of the
smaller one's area (the overlap coefficient). The smaller-area rule links the shrinking sections
near an object's poles (a cap of radius r/2 inside a section of radius r has IoU 0.25 but overlap
1.0); one-to-one matching keeps touching objects apart when every section separates them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

STITCH_THRESHOLD = 0.5  # overlap / smaller area that links two objects on consecutive sections


def _overlaps(below: np.ndarray, above: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(labels below, labels above, intersections, IoUs) of every overlapping pair of objects."""
    both = (below > 0) & (above > 0)
    pairs, inter = np.unique(np.stack([below[both], above[both]]), axis=1, return_counts=True)
    if not inter.size:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, np.zeros(0)
    a, b = pairs[0].astype(np.int64), pairs[1].astype(np.int64)
    area_a = np.bincount(below.ravel(), minlength=int(a.max()) + 1)[a]
    area_b = np.bincount(above.ravel(), minlength=int(b.max()) + 1)[b]
    coefficient = inter / np.minimum(area_a, area_b)
    return a, b, coefficient, inter / (area_a + area_b - inter)


def _links(below: np.ndarray, above: np.ndarray, threshold: float) -> dict[int, int]:
    """{label above: label below} for the one-to-one matches that pass `threshold`."""
    from scipy.optimize import linear_sum_assignment

    a, b, coefficient, iou = _overlaps(below, above)
    keep = coefficient >= threshold
    if not keep.any():
        return {}
    a, b, iou = a[keep], b[keep], iou[keep]
    rows, cols = np.unique(a, return_inverse=True), np.unique(b, return_inverse=True)
    score = np.zeros((rows[0].size, cols[0].size))
    score[rows[1], cols[1]] = iou
    chosen_rows, chosen_cols = linear_sum_assignment(score, maximize=True)
    return {int(cols[0][c]): int(rows[0][r]) for r, c in zip(chosen_rows, chosen_cols) if score[r, c] > 0}


def stitch_sections(sections: np.ndarray, threshold: float = STITCH_THRESHOLD) -> np.ndarray:
    """(Z, H, W) labels numbered per section -> 3-D labels 1..N (int32), linked as the module says."""
    sections = np.asarray(sections)
    if sections.ndim != 3:
        raise ValueError(f"stitch_sections needs (Z, H, W) labels, got shape {sections.shape}")
    out = np.zeros(sections.shape, dtype=np.int32)
    following = 0
    for z, section in enumerate(sections):
        links = _links(out[z - 1], section, threshold) if z else {}
        lookup = np.zeros(int(section.max(initial=0)) + 1, dtype=np.int32)
        for label in np.unique(section[section > 0]):
            if int(label) in links:
                lookup[label] = links[int(label)]
            else:
                following += 1
                lookup[label] = following
        out[z] = lookup[section]
    return _consecutive(out)


def _consecutive(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 1..N in order of first appearance through the stack (z, then y, then x)."""
    flat = labels.ravel()
    present = flat[flat > 0]
    _, first = np.unique(present, return_index=True)
    order = present[np.sort(first)]
    lookup = np.zeros(int(labels.max(initial=0)) + 1, dtype=np.int32)
    lookup[order] = np.arange(1, order.size + 1, dtype=np.int32)
    return lookup[labels]


def objects_3d(
    labels: np.ndarray,
    image: np.ndarray | None = None,
    spacing: tuple[float, float, float] | None = None,
    unit: str | None = None,
) -> list[dict[str, Any]]:
    """One row per 3-D object of (Z, H, W) labels: label, voxels, z_first, z_last, sections (z-extent),
    centroid_z/y/x (voxels); with `spacing` (z, y, x in `unit`): volume and volume_unit ("unit^3") and
    the centroid in `unit` (centroid_z/y/x_<unit>), z_extent in `unit`; with `image` (Z, H, W) raw
    values: mean_intensity."""
    from scipy import ndimage

    rows = []
    for index, box in enumerate(ndimage.find_objects(labels.astype(np.int32, copy=False)), start=1):
        if box is None:
            continue
        inside = labels[box] == index
        zs, ys, xs = np.nonzero(inside)
        centre = (zs.mean() + box[0].start, ys.mean() + box[1].start, xs.mean() + box[2].start)
        row: dict[str, Any] = {
            "label": index,
            "voxels": int(zs.size),
            "z_first": int(box[0].start + zs.min()),
            "z_last": int(box[0].start + zs.max()),
            "sections": int(np.unique(zs).size),
            "centroid_z": float(centre[0]),
            "centroid_y": float(centre[1]),
            "centroid_x": float(centre[2]),
        }
        if spacing is not None:
            name = unit or "unit"
            row.update(
                {
                    "volume": row["voxels"] * float(np.prod(spacing)),
                    "volume_unit": f"{name}^3",
                    "z_extent": (row["z_last"] - row["z_first"] + 1) * float(spacing[0]),
                    **{f"centroid_{a}_{name}": c * s for a, c, s in zip("zyx", centre, spacing)},
                }
            )
        if image is not None:
            row["mean_intensity"] = float(np.asarray(image)[box][inside].astype(np.float64).mean())
        rows.append(row)
    return rows


def links_through_z(stack, per_page: bool = False) -> bool:
    """Whether `--instances` links a file's objects through z: a volume (NIfTI, DICOM) or a stack of
    several pages that is not a time series, unless `per_page` keeps today's per-section labels."""
    pages = stack.data.shape[0]
    return not per_page and pages > 1 and (stack.geometry is not None or "T" not in stack.axes)


def stack_spacing(stack) -> tuple[float, float, float] | None:
    """(z, y, x) voxel size in `stack.unit`: a volume's geometry, else an ImageJ stack's `spacing` with
    its pixel size; None when the section spacing is not recorded."""
    if stack.geometry is not None:
        i, j, k = stack.geometry.spacing
        return (k, j, i)
    if stack.pixel_size is None or stack.path.suffix.lower() not in (".tif", ".tiff"):
        return None
    import tifffile

    with tifffile.TiffFile(stack.path) as tif:
        spacing = (tif.imagej_metadata or {}).get("spacing")
    if not spacing:
        return None
    return (float(spacing), 1.0 / stack.resolution[1], 1.0 / stack.resolution[0])


def volume_rows(stack, labels: np.ndarray, masks: list[np.ndarray]) -> tuple[list[dict], dict]:
    """objects.csv rows (one per 3-D object) and the summary.csv row of one linked stack."""
    spacing = stack_spacing(stack)
    rows = objects_3d(labels, stack.data[:, 0], spacing, stack.unit if spacing else None)
    foreground = sum(int(np.count_nonzero(m)) for m in masks) / max(sum(m.size for m in masks), 1)
    summary = {
        "file": stack.path.name,
        "page": "all",
        "objects": len(rows),
        "foreground_fraction": foreground,
    }
    return [{"file": stack.path.name, **row} for row in rows], summary
