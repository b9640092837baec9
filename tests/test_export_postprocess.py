"""The package's post-processing attachment (no PAULow import) gives the toolkit's masks and labels."""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest

from paulow import attachment_postprocess as attachment
from paulow.api import Prediction
from paulow.bioimageio_package import package_halo, package_tile, postprocess_params
from paulow.boundaries import object_mask
from paulow.object_size import mask_without_small
from paulow.postprocess import to_mask


def _blobs(seed: int, channels: int) -> np.ndarray:
    """Smooth random probabilities (channels, 48, 48) with several blobs, summing to 1 over channels."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    logits = np.stack([ndimage.gaussian_filter(rng.normal(size=(48, 48)), 2.5) * 8 for _ in range(channels)])
    if channels == 1:
        return (1 / (1 + np.exp(-logits))).astype(np.float32)
    e = np.exp(logits - logits.max(axis=0))
    return (e / e.sum(axis=0)).astype(np.float32)


def test_the_attachment_imports_nothing_from_paulow():
    tree = ast.parse(inspect.getsource(attachment))
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert names and not [n for n in names if n.startswith("paulow") or n.startswith(".")]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("min_px", [0, 12])
def test_binary_mask_and_labels_equal_the_toolkits(seed, min_px):
    probs = _blobs(seed, 1)
    meta = {"classes": 1, "threshold": 0.6, "min_object_px": min_px}
    params = postprocess_params(meta)
    assert params["rule"] == "binary" and params["version"] == attachment.VERSION
    expected = mask_without_small(to_mask(probs, 0.6), min_px)
    mask = attachment.mask_from_probabilities(probs, params)
    assert 0 < mask.sum() < mask.size and np.array_equal(mask, expected)
    labels = Prediction(probs, expected, 0.6, min_size=min_px).labels()
    assert np.array_equal(attachment.labels_from_probabilities(probs, params), labels)


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("min_px", [0, 10])
def test_boundary_mask_and_watershed_labels_equal_the_toolkits(seed, min_px):
    probs = _blobs(seed, 3)
    meta = {"classes": 3, "boundary_target": 2, "threshold": 0.45, "min_object_px": min_px}
    params = postprocess_params(meta)
    assert params["rule"] == "boundary"
    expected = mask_without_small(object_mask(probs, 0.45), min_px)
    mask = attachment.mask_from_probabilities(probs, params)
    assert 0 < mask.sum() < mask.size and np.array_equal(mask, expected)
    labels = Prediction(probs, expected, 0.45, boundary=True, min_size=min_px).labels()
    got = attachment.labels_from_probabilities(probs, params)
    assert labels.max() >= 2 and np.array_equal(got, labels)


def test_class_maps_are_the_argmax_and_components_per_class():
    probs = _blobs(5, 4)
    params = postprocess_params({"classes": 4, "threshold": 0.5, "min_object_px": 50})
    assert params["rule"] == "classes"
    mask = attachment.mask_from_probabilities(probs, params)
    assert np.array_equal(mask, to_mask(probs))  # min_object_px does not apply to class maps' mask
    labels = Prediction(probs, mask, 0.5, min_size=50).labels()
    assert np.array_equal(attachment.labels_from_probabilities(probs, params), labels)


def test_a_newer_parameter_file_is_refused_with_the_fix():
    params = {**postprocess_params({"classes": 1}), "version": attachment.VERSION + 1}
    with pytest.raises(ValueError, match="use the paulow_postprocess.py of the same package"):
        attachment.mask_from_probabilities(np.zeros((1, 4, 4), np.float32), params)


def test_declared_tile_is_the_toolkits_default_and_no_halo():
    assert package_tile({"patch": 64}) == 256 and package_tile({"patch": 300}) == 320
    assert package_halo(256, 16) == 0 and package_halo(320, 16) == 0
