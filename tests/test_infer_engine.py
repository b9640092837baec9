"""The device engine of `paulow.infer.predict_slice` (tiles cut, weighted and summed as tensors on
the network's device) against a plain per-tile NumPy reference of the documented algorithm (the
path before the engine: pad, tile, weight by the Gaussian window, sum on the host, divide)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from paulow.infer import (
    TTA_TRANSFORMS,
    gaussian_window_1d,
    predict_slice,
    predict_stack,
    tile_starts,
)
from paulow.postprocess import to_mask

CPU = torch.device("cpu")


def small_unet(in_channels: int = 1, classes: int = 1) -> nn.Module:
    """A tiny attention U-Net: pooling makes tiles differ from the whole image, so blending matters."""
    from paulow.models import build_model

    torch.manual_seed(0)
    return build_model(
        "paulow_attention_unet", in_channels=in_channels, classes=classes, width=4, depth=2
    ).eval()


def reference_probs(
    net: nn.Module, image: np.ndarray, tile: int, overlap: float, tta: bool = False
) -> np.ndarray:
    """One tile at a time on the host: reflect-pad short axes (centred), Gaussian-weighted sum of
    sigmoid probabilities (TTA: mean over the 8 inverted flips/turns), divided by the weight sum."""
    pads = [(0, 0)] + [
        ((tile - n) // 2 * (n < tile), (tile - n - (tile - n) // 2) * (n < tile)) for n in image.shape[1:]
    ]
    padded = np.pad(image, pads, mode="reflect")
    step = max(1, round(tile * (1 - overlap)))
    window = np.outer(gaussian_window_1d(tile), gaussian_window_1d(tile)).astype(np.float64)
    total = weights = None
    transforms = TTA_TRANSFORMS if tta else ((0, False),)
    for y in tile_starts(padded.shape[1], tile, step):
        for x in tile_starts(padded.shape[2], tile, step):
            cut = torch.from_numpy(np.ascontiguousarray(padded[None, :, y : y + tile, x : x + tile]))
            probs = 0
            for turns, mirror in transforms:
                inp = torch.rot90(cut, turns, dims=(2, 3))
                inp = inp.flip(3) if mirror else inp
                with torch.no_grad():
                    out = torch.sigmoid(net(inp))
                out = out.flip(3) if mirror else out
                probs = probs + torch.rot90(out, -turns, dims=(2, 3))[0].double().numpy()
            probs = probs / len(transforms)
            if total is None:
                total = np.zeros((probs.shape[0],) + padded.shape[1:])
                weights = np.zeros(padded.shape[1:])
            total[:, y : y + tile, x : x + tile] += probs * window
            weights[y : y + tile, x : x + tile] += window
    total /= weights
    (top, _), (left, _) = pads[1], pads[2]
    return total[:, top : top + image.shape[1], left : left + image.shape[2]].astype(np.float32)


def image(channels: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(channels, height, width)).astype(np.float32)


AWKWARD = [(33, 33), (31, 57), (5, 9), (1, 1), (32, 32), (33, 64), (97, 65), (40, 1)]


@pytest.mark.parametrize(
    "shape,overlap", [(shape, 0.5) for shape in AWKWARD] + [((31, 57), 0.25), ((97, 65), 0.0)]
)
def test_engine_equals_the_per_tile_reference_on_awkward_sizes(shape, overlap):
    net = small_unet()
    img = image(1, *shape)
    probs = predict_slice(net, img, tile=32, overlap=overlap, batch_size=3, device=CPU)
    expected = reference_probs(net, img, 32, overlap)
    assert probs.shape == (1, *shape) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, expected, atol=1e-5, rtol=0)
    assert (to_mask(probs, 0.5) == to_mask(expected, 0.5)).all()


def test_engine_equals_reference_with_channels_classes_and_tta():
    net = small_unet(in_channels=2, classes=3)
    img = image(2, 45, 38, seed=4)
    probs = predict_slice(net, img, tile=32, overlap=0.5, batch_size=2, device=CPU, tta=True)
    np.testing.assert_allclose(probs, reference_probs(net, img, 32, 0.5, tta=True), atol=1e-5, rtol=0)


def test_stack_of_awkward_pages_equals_reference_page_by_page():
    net = small_unet()
    pages = [image(1, 65, 33, seed=s) for s in range(3)]
    results = list(predict_stack(net, pages, tile=32, overlap=0.5, batch_size=4, device=CPU))
    assert len(results) == 3
    for page, probs in zip(pages, results):
        expected = reference_probs(net, page, 32, 0.5)
        np.testing.assert_allclose(probs, expected, atol=1e-5, rtol=0)
        assert (to_mask(probs, 0.5) == to_mask(expected, 0.5)).all()


@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_batch_size_does_not_change_the_result(batch_size):
    net = small_unet()
    img = image(1, 70, 101, seed=2)
    probs = predict_slice(net, img, tile=32, overlap=0.5, batch_size=batch_size, device=CPU)
    np.testing.assert_allclose(probs, reference_probs(net, img, 32, 0.5), atol=1e-5, rtol=0)
