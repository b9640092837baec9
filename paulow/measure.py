"""Shape and intensity measurements added to every `objects.csv` row (scikit-image regionprops).

Columns (documented in docs/measurements.md):
- `perimeter_px`: scikit-image's perimeter (4-connected contour length through boundary pixel
  centres, diagonal steps counted as sqrt(2)) in pixels;
- `solidity`: area / convex hull area; `eccentricity`: of the ellipse with the same second moments
  (0 = circle, towards 1 = elongated);
- `major_axis_px`, `minor_axis_px`: that ellipse's full axis lengths in pixels;
- `integrated_intensity` (with an image): `mean_intensity` x `area_px`, the sum over the object's
  pixels of the mean over channels (ImageJ's RawIntDen on one channel);
- with a pixel size: `centroid_y_cal`, `centroid_x_cal`, the centroid in `length_unit` measured from
  the image's top-left corner as ImageJ does ((pixel index + 0.5) x pixel size); for square pixels
  also `perimeter`, `major_axis`, `minor_axis` in `length_unit`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_SHAPE = {
    "perimeter": "perimeter_px",
    "solidity": "solidity",
    "eccentricity": "eccentricity",
    "axis_major_length": "major_axis_px",
    "axis_minor_length": "minor_axis_px",
}
_LENGTHS = (("perimeter_px", "perimeter"), ("major_axis_px", "major_axis"), ("minor_axis_px", "minor_axis"))


def shape_columns(labels: np.ndarray) -> dict[int, dict[str, float]]:
    """Per label: perimeter, solidity, eccentricity and ellipse axes (see the module's note)."""
    from skimage.measure import regionprops_table

    source = labels if np.issubdtype(labels.dtype, np.integer) else labels.astype(np.int64)
    if not source.any():
        return {}
    table = regionprops_table(source, properties=("label", *_SHAPE))
    return {
        int(label): {name: float(table[prop][i]) for prop, name in _SHAPE.items()}
        for i, label in enumerate(table["label"])
    }


def add_measurements(
    rows: list[dict[str, Any]],
    labels: np.ndarray,
    pixel_size: float | tuple[float, float] | None = None,
    unit: str | None = None,
) -> list[dict[str, Any]]:
    """`object_table` rows with the columns of the module's note appended (same order of rows)."""
    shapes = shape_columns(labels)
    sizes = _sizes(pixel_size)
    for row in rows:
        row.update(shapes[row["label"]])
        if "mean_intensity" in row:
            row["integrated_intensity"] = row["mean_intensity"] * row["area_px"]
        if sizes is None:
            continue
        size_y, size_x = sizes
        row["centroid_y_cal"] = (row["centroid_y"] + 0.5) * size_y
        row["centroid_x_cal"] = (row["centroid_x"] + 0.5) * size_x
        if size_y == size_x:
            row.update({cal: row[px] * size_x for px, cal in _LENGTHS})
        row["length_unit"] = unit
    return rows


def _sizes(pixel_size: float | tuple[float, float] | None) -> tuple[float, float] | None:
    """(y, x) pixel size from one side or a (y, x) pair."""
    if pixel_size is None:
        return None
    if isinstance(pixel_size, (int, float, np.number)):
        return float(pixel_size), float(pixel_size)
    size_y, size_x = pixel_size  # a (y, x) pair
    return float(size_y), float(size_x)
