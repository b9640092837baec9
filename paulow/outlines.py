"""Object outlines that follow pixel EDGES: the polygon of an object covers exactly its pixels.

Pixel (row r, column c) is the unit square x in [c, c+1], y in [r, r+1] (ImageJ's and QuPath's
convention: coordinates measured from the image's top-left corner). An object's outline is the
union of its pixel squares, so its area is its pixel count, and holes are interior rings.

For tools that take one simple ring per object (ImageJ polygon/traced ROIs), `single_ring` joins
the rings of an object with zero-width cuts from the first vertex ("keyhole"): the shoelace area
of the ring is the object's pixel count (holes subtract, separate parts add), and an even-odd fill
(ImageJ's) paints exactly the object's pixels.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def _row_boxes(inside: np.ndarray, top: int, left: int) -> list:
    """One shapely box per horizontal run of True pixels in `inside` (offset by top, left)."""
    from shapely import box

    padded = np.pad(inside, ((0, 0), (1, 1))).astype(np.int8)
    changes = np.diff(padded, axis=1)
    boxes = []
    for row, start in zip(*np.nonzero(changes == 1)):
        stop = start + int(np.argmax(changes[row, start:] == -1))
        boxes.append(box(left + start, top + row, left + stop, top + row + 1))
    return boxes


def object_geometries(labels: np.ndarray) -> Iterator[tuple[int, object]]:
    """(label, shapely Polygon or MultiPolygon) per object of an (H, W) label image, in label
    order; each geometry's area is exactly the object's pixel count."""
    from scipy import ndimage
    from shapely import orient_polygons, simplify, union_all

    labels = np.asarray(labels)
    source = labels if np.issubdtype(labels.dtype, np.integer) else labels.astype(np.int64)
    for index, box in enumerate(ndimage.find_objects(source), start=1):
        if box is None:
            continue
        inside = source[box] == index
        merged = union_all(_row_boxes(inside, box[0].start, box[1].start))
        # tolerance 0 only drops the collinear vertices every unit edge leaves behind
        yield index, orient_polygons(simplify(merged, 0.0), exterior_cw=False)


def _rings(geometry) -> list[np.ndarray]:
    """The exterior and interior rings of every part, each (n, 2) without the closing vertex."""
    parts = getattr(geometry, "geoms", [geometry])
    rings = []
    for polygon in parts:
        rings.append(np.asarray(polygon.exterior.coords)[:-1])
        rings += [np.asarray(hole.coords)[:-1] for hole in polygon.interiors]
    return rings


def single_ring(geometry) -> np.ndarray:
    """One (n, 2) x/y vertex ring for the whole geometry: every other ring (hole or part) is
    visited from the first ring's first vertex and back (see the module's note)."""
    rings = _rings(geometry)
    start = rings[0][:1]
    path = [rings[0]]
    for ring in rings[1:]:
        path += [start, ring, ring[:1]]
    return np.concatenate(path).astype(np.float64)


def shoelace_area(points: np.ndarray) -> float:
    """The absolute area of a closed polygon given as (n, 2) vertices (not repeated at the end)."""
    x, y = np.asarray(points, dtype=np.float64).T
    return abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))) / 2.0
