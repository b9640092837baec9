"""One slice's result: probabilities, mask, and the labels, objects and GeoJSON made from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UsageError


@dataclass
class Prediction:
    """One slice's result: probabilities (K, H, W) float32 and the mask (H, W) uint8 (objects under
    `min_size` px removed for binary and boundary models)."""

    probabilities: np.ndarray
    mask: np.ndarray
    threshold: float = 0.5
    image: np.ndarray | None = field(default=None, repr=False)  # the raw (C, H, W) input
    boundary: bool = False  # from a `boundary_target` model: the mask is its objects
    min_size: int = 0  # px: the model's smallest object (tuned in training) unless told otherwise
    boundary_width: int | None = None  # a boundary model's ring width (px): `evaluate` scores its classes

    def labels(self, split_touching: bool = False, min_size: int | None = None) -> np.ndarray:
        """Instance labels (H, W): 8-connected objects, touching ones split by watershed if asked;
        a boundary model's by the seeded watershed of its interiors (`split_touching` unused).
        Objects under `min_size` px (default: the prediction's) are removed."""
        from ..remask import labels_from

        small = self.min_size if min_size is None else min_size
        return labels_from(
            self.probabilities, self.mask, self.threshold, self.boundary, small, split_touching
        )

    def rethreshold(self, threshold: float | None = None, min_size: int | None = None) -> Prediction:
        """The same probabilities with another threshold and/or smallest object size (px): a new
        `Prediction` at once, without running the network again (defaults: this one's)."""
        from dataclasses import replace

        from ..remask import mask_from

        cut = self.threshold if threshold is None else float(threshold)
        if not 0.0 <= cut <= 1.0:
            raise UsageError(f"threshold {threshold} is outside 0..1")
        small = self.min_size if min_size is None else int(min_size)
        return replace(
            self, mask=mask_from(self.probabilities, cut, self.boundary, small), threshold=cut, min_size=small
        )

    def objects(
        self,
        split_touching: bool = False,
        min_size: int | None = None,
        pixel_size: float | None = None,
        unit: str | None = None,
    ) -> list[dict]:
        """One row per object: label, area, centroid, bounding box, mean intensity of the input."""
        from ..postprocess import object_table

        return object_table(
            self.labels(split_touching, min_size), self.image, pixel_size=pixel_size, unit=unit
        )

    def geojson(
        self,
        path: str | Path | None = None,
        *,
        split_touching: bool = False,
        min_size: int | None = None,
        object_type: str = "detection",
        class_name: str = "foreground",
        pixel_size: float | None = None,
        unit: str | None = None,
    ) -> dict:
        """The objects as a QuPath-ready GeoJSON FeatureCollection (polygons on pixel edges, the
        `objects()` columns as measurements), also written to `path` when given."""
        from ..geojson import feature_collection, page_features, write_geojson
        from ..postprocess import object_table

        labels = self.labels(split_touching, min_size)
        rows = object_table(labels, self.image, pixel_size=pixel_size, unit=unit)
        features = page_features(labels, rows, object_type=object_type, class_name=class_name)
        if path is not None:
            write_geojson(path, features)
        return feature_collection(features)


def predictions_from(
    meta: dict, probs: list[np.ndarray], pages, threshold: float | None = None, min_size: int | None = None
) -> list[Prediction]:
    """One `Prediction` per page from the network's probabilities: the one path from probabilities
    to a mask (`paulow.remask.mask_from`) under the model's threshold and smallest object unless
    told otherwise, used by `Model.predict_stack` and the drop folder (`paulow.api.segment_run`)."""
    from ..boundaries import boundary_width, is_boundary_model
    from ..object_size import choose_min_size
    from ..predict import choose_threshold
    from ..remask import mask_from

    cut = choose_threshold(meta, threshold)
    boundary = is_boundary_model(meta)
    small = choose_min_size(meta, min_size)
    return [
        Prediction(
            p.astype(np.float32, copy=False),
            mask_from(p, cut, boundary, small),
            cut,
            page,
            boundary,
            small,
            boundary_width(meta),
        )
        for p, page in zip(probs, pages)
    ]
