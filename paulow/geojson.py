"""QuPath-ready GeoJSON: one Feature per object, its polygon following the pixel edges.

QuPath (File > Import objects, or drag and drop) reads a FeatureCollection whose features carry
`properties.objectType` ("detection" or "annotation"), `properties.classification` (`name`,
`color`) and `properties.measurements` (name -> number). Holes are interior rings; an object in
separate parts is a MultiPolygon; a stack page is `geometry.plane` (`z`, 0-based).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

OBJECT_TYPES = ("detection", "annotation")
_DEFAULT_COLOUR = (255, 0, 0)


def _measurements(row: dict[str, Any]) -> dict[str, float]:
    """The numeric, finite columns of an `objects.csv` row (identity and class columns left out)."""
    skip = {"label", "class", "class_index", "file", "page"}
    return {
        k: float(v)
        for k, v in row.items()
        if k not in skip
        and isinstance(v, (int, float))
        and not isinstance(v, bool)
        and math.isfinite(float(v))
    }


def _geometry(geometry, page: int | None) -> dict[str, Any]:
    from shapely.geometry import mapping

    shape = mapping(geometry)
    shape = {"type": shape["type"], "coordinates": _as_lists(shape["coordinates"])}
    if page is not None:
        shape["plane"] = {"c": -1, "z": int(page), "t": 0}
    return shape


def _as_lists(coords) -> list:
    """shapely's nested tuples as JSON lists of integers (vertices lie on pixel corners)."""
    if isinstance(coords[0], (int, float)):
        return [int(c) if float(c).is_integer() else float(c) for c in coords]
    return [_as_lists(c) for c in coords]


def page_features(
    labels: np.ndarray,
    rows: Sequence[dict[str, Any]],
    *,
    object_type: str = "detection",
    class_name: str = "foreground",
    colours: dict[str, Sequence[int]] | None = None,
    page: int | None = None,
) -> list[dict[str, Any]]:
    """Features of one (H, W) label image; `rows` are its `objects.csv` rows (by `label`; a row's
    `class` names its classification, else `class_name`)."""
    from .outlines import object_geometries

    if object_type not in OBJECT_TYPES:
        raise ValueError(f"object_type must be one of {OBJECT_TYPES}, not {object_type!r}")
    by_label = {int(r["label"]): r for r in rows}
    features = []
    for label, geometry in object_geometries(labels):
        row = by_label.get(label, {"label": label})
        name = str(row.get("class", class_name))
        colour = list((colours or {}).get(name, _DEFAULT_COLOUR))
        features.append(
            {
                "type": "Feature",
                "id": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{page}-{label}")),
                "geometry": _geometry(geometry, page),
                "properties": {
                    "objectType": object_type,
                    "name": f"object-{label}",
                    "classification": {"name": name, "color": [int(c) for c in colour[:3]]},
                    "measurements": _measurements(row),
                },
            }
        )
    return features


def feature_collection(features: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": features}


def write_geojson(path: str | Path, features: list[dict[str, Any]]) -> Path:
    """Write a FeatureCollection atomically (UTF-8); returns `path`."""
    from .io.atomic import atomic_write_path

    with atomic_write_path(path) as tmp:
        Path(tmp).write_text(json.dumps(feature_collection(features)), encoding="utf-8")
    return Path(path)
