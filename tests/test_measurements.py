"""objects.csv shape columns (by hand for a rectangle) and QuPath GeoJSON validated with shapely."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from shapely.geometry import shape

from paulow.geojson import page_features, write_geojson
from paulow.postprocess import object_table


def _labels() -> np.ndarray:
    labels = np.zeros((30, 30), np.uint16)
    labels[1:3, 1:4] = 1  # 2 x 3 rectangle
    labels[10:20, 10:20] = 2  # a square with a 2 x 2 hole
    labels[14:16, 14:16] = 0
    labels[25, 25] = labels[26, 26] = 3  # two pixels touching at a corner
    return labels


def test_shape_columns_of_a_rectangle_by_hand():
    labels = _labels()
    image = np.full((30, 30), 7.0)
    row = object_table(labels, image, pixel_size=0.5, unit="µm")[0]
    # second moments of a w x h pixel rectangle: (w^2 - 1) / 12 and (h^2 - 1) / 12; axis = 4 sqrt(moment)
    major, minor = 4 * math.sqrt(8 / 12), 4 * math.sqrt(3 / 12)
    assert row["major_axis_px"] == pytest.approx(major) and row["minor_axis_px"] == pytest.approx(minor)
    assert row["eccentricity"] == pytest.approx(math.sqrt(1 - (minor / major) ** 2))
    assert row["solidity"] == 1.0
    assert row["integrated_intensity"] == 6 * 7.0
    # ImageJ convention: centroid from the top-left corner, (index + 0.5) x pixel size
    assert (row["centroid_y_cal"], row["centroid_x_cal"]) == ((1.5 + 0.5) * 0.5, (2.0 + 0.5) * 0.5)
    assert row["perimeter"] == row["perimeter_px"] * 0.5 and row["length_unit"] == "µm"
    assert row["major_axis"] == pytest.approx(major * 0.5)
    holed = object_table(labels)[1]
    assert holed["solidity"] == pytest.approx(96 / 100)  # the hole is inside the convex hull
    assert "centroid_y_cal" not in holed and "integrated_intensity" not in holed


def test_non_square_pixels_calibrate_centroids_only():
    row = object_table(_labels(), pixel_size=(0.5, 2.0), unit="µm")[0]
    assert (row["centroid_y_cal"], row["centroid_x_cal"]) == (1.0, 5.0)
    assert "perimeter" not in row and "major_axis" not in row


def test_geojson_polygons_follow_pixel_edges_with_holes(tmp_path):
    labels = _labels()
    rows = object_table(labels, np.ones((30, 30)))
    features = page_features(labels, rows, class_name="nucleus", colours={"nucleus": (0, 255, 0)})
    path = write_geojson(tmp_path / "x.geojson", features)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["type"] == "FeatureCollection" and len(data["features"]) == 3
    for feature, label in zip(data["features"], (1, 2, 3)):
        geometry = shape(feature["geometry"])
        assert geometry.is_valid and geometry.area == np.count_nonzero(labels == label)
        props = feature["properties"]
        assert props["objectType"] == "detection" and props["name"] == f"object-{label}"
        assert props["classification"] == {"name": "nucleus", "color": [0, 255, 0]}
        assert props["measurements"]["area_px"] == np.count_nonzero(labels == label)
    square = shape(data["features"][1]["geometry"])
    assert square.geom_type == "Polygon" and len(square.interiors) == 1 and square.interiors[0].length == 8
    assert square.exterior.bounds == (10, 10, 20, 20)  # x0, y0, x1, y1 on pixel corners
    assert shape(data["features"][2]["geometry"]).geom_type == "MultiPolygon"


def test_geojson_stack_page_and_annotation_type():
    labels = _labels()
    features = page_features(labels, [], object_type="annotation", page=4)
    assert features[0]["geometry"]["plane"] == {"c": -1, "z": 4, "t": 0}
    assert features[0]["properties"]["objectType"] == "annotation"
    assert features[0]["properties"]["classification"]["name"] == "foreground"
    with pytest.raises(ValueError, match="object_type"):
        page_features(labels, [], object_type="cell")


def test_prediction_geojson_from_the_api(tmp_path):
    from paulow.api import Prediction

    mask = (_labels() > 0).astype(np.uint8)
    pred = Prediction(mask[None].astype(np.float32), mask, image=np.ones((1, 30, 30)))
    collection = pred.geojson(tmp_path / "p.geojson")
    assert len(collection["features"]) == 3  # the two corner-touching pixels are one 8-connected object
    assert json.loads((tmp_path / "p.geojson").read_text()) == collection
