"""Per-object measurements of a chunked run: each chunk sums what it holds of every object (area,
coordinate sums, bounding box, intensity sums); the parts are merged into one row per object with
the columns of `postprocess.object_table` (label, area_px, centroid_y/x, bbox_min/max_row/col,
mean_intensity[_c<i>]). Memory: one row per object, not per pixel."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np


def object_parts(
    labels: np.ndarray, image: np.ndarray, y0: int, x0: int, table: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """What a chunk core holds of each object. `labels` (h, w): global labels, or with `table` the
    chunk's compact local labels 0..n-1 and `table` their global labels (0: dropped); `image`
    (C, h, w) raw values; (y0, x0) the core's position in the page."""
    from scipy import ndimage

    if table is None:
        table, inverse = np.unique(labels, return_inverse=True)
        if table[0] != 0:  # keep index 0 for the background
            table, inverse = np.concatenate([[0], table]), inverse + 1
        labels = inverse.reshape(labels.shape)
    n, flat = len(table), labels.ravel()
    boxes = ndimage.find_objects(labels, max_label=n - 1)
    keep = (np.asarray(table[1:]) > 0) & np.array([b is not None for b in boxes], dtype=bool)
    kept = [b for b, k in zip(boxes, keep) if k]
    yy, xx = np.indices(labels.shape)

    def sums(weights: np.ndarray | None) -> np.ndarray:
        return np.bincount(flat, None if weights is None else weights.ravel(), n)[1:][keep]

    return {
        "ids": np.asarray(table[1:])[keep].astype(np.int64),
        "area": sums(None).astype(np.int64),
        "sum_y": sums(yy + y0),
        "sum_x": sums(xx + x0),
        "sum_i": np.stack([sums(c.astype(np.float64)) for c in image], axis=1),
        "min_y": np.array([b[0].start + y0 for b in kept], dtype=np.int64),
        "min_x": np.array([b[1].start + x0 for b in kept], dtype=np.int64),
        "max_y": np.array([b[0].stop + y0 for b in kept], dtype=np.int64),
        "max_x": np.array([b[1].stop + x0 for b in kept], dtype=np.int64),
    }


def merge_parts(
    parts: list[dict[str, np.ndarray]], count: int, page: int | None = None
) -> list[dict[str, Any]]:
    """One row per object 1..`count` (objects with no part are left out), from all chunks' parts."""
    return list(iter_merged(parts, count, page))


def iter_merged(
    parts: list[dict[str, np.ndarray]], count: int, page: int | None = None
) -> Iterator[dict[str, Any]]:
    """The rows of `merge_parts` one at a time: only the merged arrays (a few numbers per object)
    are held, not a dict per object."""
    if not parts or count == 0:
        return
    ids = np.concatenate([p["ids"] for p in parts])
    channels = parts[0]["sum_i"].shape[1]
    total = {key: np.zeros(count + 1) for key in ("area", "sum_y", "sum_x")}
    for key, values in total.items():
        np.add.at(values, ids, np.concatenate([p[key] for p in parts]))
    sum_i = np.zeros((count + 1, channels))
    np.add.at(sum_i, ids, np.concatenate([p["sum_i"] for p in parts]))
    low = {key: np.full(count + 1, np.iinfo(np.int64).max) for key in ("min_y", "min_x")}
    high = {key: np.zeros(count + 1, dtype=np.int64) for key in ("max_y", "max_x")}
    for key, extremes in low.items():
        np.minimum.at(extremes, ids, np.concatenate([p[key] for p in parts]))
    for key, extremes in high.items():
        np.maximum.at(extremes, ids, np.concatenate([p[key] for p in parts]))
    for label in range(1, count + 1):
        area = total["area"][label]
        if not area:
            continue
        row: dict[str, Any] = {} if page is None else {"page": page}
        means = sum_i[label] / area
        row.update(
            label=label,
            area_px=int(area),
            centroid_y=float(total["sum_y"][label] / area),
            centroid_x=float(total["sum_x"][label] / area),
            bbox_min_row=int(low["min_y"][label]),
            bbox_min_col=int(low["min_x"][label]),
            bbox_max_row=int(high["max_y"][label]),
            bbox_max_col=int(high["max_x"][label]),
            mean_intensity=float(means.mean()),
        )
        if channels > 1:
            row.update({f"mean_intensity_c{c}": float(m) for c, m in enumerate(means)})
        yield row
