"""PAULow post-processing for exported models: probabilities -> mask -> instance labels.

This file travels inside every PAULow bioimage.io package as `paulow_postprocess.py`, beside
`postprocess.json` (the model's parameters). It imports numpy, scipy and scikit-image only (no
PAULow), so any consumer of the package (a notebook, ilastik, a QuPath script through Python) gets
the masks and labels `use_model.py` writes from the package's `probabilities` output:

    import json, numpy as np
    from paulow_postprocess import mask_from_probabilities, labels_from_probabilities
    params = json.load(open("postprocess.json"))
    probs = ...  # (K, H, W) float32: the package's "probabilities" output for one image
    mask = mask_from_probabilities(probs, params)      # (H, W) uint8: 0/1, or class indices
    labels = labels_from_probabilities(probs, params)  # (H, W) int32 objects 1..N

Rules (`params["rule"]`):
- "binary": foreground where P > threshold (K = 1).
- "boundary": channels background / interior / boundary; objects where 1 - P(background) >
  threshold; instances by a seeded watershed on P(boundary), seeds the 8-connected interior
  components (argmax = interior) inside the objects; an object without a seed stays one object.
- "classes": the most probable class (first on ties); instances are 8-connected components per class.
Objects (8-connected, or watershed instances) under `params["min_object_px"]` pixels are removed.
"""

from __future__ import annotations

import numpy as np

VERSION = 1  # bump when a rule changes; postprocess.json names the version it was written for
EIGHT = np.ones((3, 3), dtype=bool)
BACKGROUND, INTERIOR, BOUNDARY = 0, 1, 2


def _argmax(probs: np.ndarray) -> np.ndarray:
    """First index of the largest channel (uint8)."""
    return np.argmax(probs, axis=0).astype(np.uint8)


def _relabel(labels: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Labels where `keep[label]`, renumbered 1..N in order (int32); the others become 0."""
    keep = keep.copy()
    keep[0] = False
    lookup = np.zeros(len(keep), dtype=np.int32)
    lookup[keep] = np.arange(1, int(keep.sum()) + 1)
    return lookup[labels]


def _without_small(labels: np.ndarray, min_px: int) -> np.ndarray:
    areas = np.bincount(labels.ravel())
    return _relabel(labels, areas >= max(min_px, 1))


def _components(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return ndimage.label(mask, structure=EIGHT)[0].astype(np.int32)


def _check(probs: np.ndarray, params: dict) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 3:
        raise ValueError(f"probabilities must be (channels, height, width), got shape {probs.shape}")
    if int(params.get("version", VERSION)) > VERSION:
        raise ValueError(
            f"postprocess.json is version {params['version']}, this file knows {VERSION}: "
            "use the paulow_postprocess.py of the same package"
        )
    return probs


def mask_from_probabilities(probs: np.ndarray, params: dict) -> np.ndarray:
    """`(H, W)` uint8 mask (0/1, or class indices for "classes") as `use_model.py` writes it."""
    probs = _check(probs, params)
    rule, threshold, min_px = params["rule"], float(params["threshold"]), int(params.get("min_object_px", 0))
    if rule == "classes":
        return _argmax(probs)
    objects = (1.0 - probs[BACKGROUND] if rule == "boundary" else probs[0]) > threshold
    if min_px > 1:
        objects = _without_small(_components(objects), min_px) > 0
    return objects.astype(np.uint8)


def labels_from_probabilities(probs: np.ndarray, params: dict) -> np.ndarray:
    """`(H, W)` int32 instance labels 1..N as `use_model.py --instances` writes them."""
    probs = _check(probs, params)
    min_px = int(params.get("min_object_px", 0))
    if params["rule"] == "boundary":
        labels = _boundary_instances(probs, float(params["threshold"]))
    elif params["rule"] == "classes":
        mask = _argmax(probs)
        labels = np.zeros(mask.shape, dtype=np.int32)
        for value in range(1, probs.shape[0]):
            parts = _components(mask == value)
            labels[parts > 0] = parts[parts > 0] + labels.max()
    else:
        labels = _components(probs[0] > float(params["threshold"]))
    return _without_small(labels, min_px) if min_px > 1 else labels


def _boundary_instances(probs: np.ndarray, threshold: float) -> np.ndarray:
    from scipy import ndimage
    from skimage.segmentation import watershed

    objects = (1.0 - probs[BACKGROUND]) > threshold
    seeds = _components((_argmax(probs) == INTERIOR) & objects)
    split = watershed(probs[BOUNDARY], seeds, mask=objects, connectivity=2)
    unseeded = objects & (split == 0)
    if unseeded.any():
        extra = ndimage.label(unseeded, structure=EIGHT)[0]
        split[unseeded] = extra[unseeded] + split.max()
    return _relabel(split.astype(np.int32), np.bincount(split.ravel()) > 0)
