"""Sliding-window inference against whole-image forward passes of tiny test networks.

The networks here are defined in this file, so the tests do not depend on `paulow.models`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from paulow.errors import ModelError, ShapeMismatchError, UsageError
from paulow.infer import (
    gaussian_window_1d,
    predict_slice,
    predict_stack,
    suggest_tile,
    tile_starts,
)
from paulow.inference_networks import default_device, prepare_model
from paulow.postprocess import to_mask

CPU = torch.device("cpu")


def conv_net(in_channels: int = 1, classes: int = 1, seed: int = 0) -> nn.Module:
    """Two 3x3 convolutions, no pooling: translation-equivariant, receptive field 5x5."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(in_channels, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, classes, 3, padding=1)
    )


def pointwise_net(in_channels: int = 1, classes: int = 1, seed: int = 0) -> nn.Module:
    """A 1x1 convolution: each output pixel depends on its input pixel only."""
    torch.manual_seed(seed)
    return nn.Conv2d(in_channels, classes, 1)


def flip_symmetric_net(seed: int = 0) -> nn.Module:
    """3x3 kernels symmetric under flips and 90° rotations, so the network commutes with them."""
    net = conv_net(seed=seed)
    with torch.no_grad():
        for layer in (net[0], net[2]):
            w = layer.weight
            turns = [torch.rot90(w, k, dims=(2, 3)) for k in range(4)]
            w.copy_(sum(t + t.flip(3) for t in turns) / 8)
    return net


class ConstantLogit(nn.Module):
    """Outputs the same logit everywhere, whatever the input."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x[:, :1], self.value)


class Recorder(nn.Module):
    """Wraps a network; records input batch shapes and fails like a GPU above `limit` tiles."""

    def __init__(self, inner: nn.Module, limit: int | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.limit = limit
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        if self.limit is not None and x.shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner(x)


def whole_image_probs(net: nn.Module, image: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.sigmoid(net(torch.from_numpy(image)[None]))[0].numpy()


def random_image(channels: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(channels, height, width)).astype(np.float32)


def test_tile_starts_cover_evenly_with_flush_last_tile():
    assert tile_starts(64, 64, 32) == [0]
    assert tile_starts(10, 64, 32) == [0]
    assert tile_starts(256, 64, 64) == [0, 64, 128, 192]
    assert tile_starts(260, 64, 64) == [0, 49, 98, 147, 196]
    assert tile_starts(129, 128, 64) == [0, 1]
    assert tile_starts(200, 64, 32) == [0, 27, 54, 82, 109, 136]


def test_gaussian_window_peaks_at_one_in_the_middle_and_is_never_zero():
    window = gaussian_window_1d(64)
    assert window.dtype == np.float32
    assert window[31] == window[32] == pytest.approx(math.exp(-0.5 * (0.5 / 8) ** 2))
    assert window[0] == pytest.approx(math.exp(-0.5 * (31.5 / 8) ** 2))
    np.testing.assert_array_equal(window, window[::-1])
    assert window.min() > 0
    assert gaussian_window_1d(1).tolist() == [1.0]


@pytest.mark.parametrize("overlap", [0.5, 0.25])
def test_overlapping_tiles_match_whole_image_forward(overlap):
    # Only tiles whose edge is within 2 px of a pixel see zero padding instead of the image there;
    # their Gaussian weight is at most ~exp(-6.8) ≈ 1e-3 of the peak, hence the 1e-3 bound.
    net = conv_net()
    image = random_image(1, 200, 260)
    probs = predict_slice(net, image, tile=64, overlap=overlap, device=CPU)
    assert probs.shape == (1, 200, 260) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, whole_image_probs(net, image), atol=1e-3, rtol=0)


def test_no_overlap_tiles_abut_and_each_pixel_comes_from_its_tile():
    net = conv_net()
    image = random_image(1, 192, 256)
    probs = predict_slice(net, image, tile=64, overlap=0.0, device=CPU)
    whole = whole_image_probs(net, image)
    # away from tile edges (receptive field radius 2) every pixel equals the whole-image forward
    inner = np.ones((192, 256), dtype=bool)
    for edge in range(0, 257, 64):
        inner[:, max(edge - 2, 0) : edge + 2] = False
        inner[max(edge - 2, 0) : edge + 2, :] = False
    np.testing.assert_allclose(probs[0][inner], whole[0][inner], atol=1e-6, rtol=0)
    tile = whole_image_probs(net, image[:, 64:128, 128:192])
    np.testing.assert_allclose(probs[:, 64:128, 128:192], tile, atol=1e-6, rtol=0)


@pytest.mark.parametrize("overlap", [0.0, 0.5])
@pytest.mark.parametrize("shape", [(1, 1), (7, 300), (129, 129), (200, 260)])
def test_pointwise_network_is_exact_for_any_size(shape, overlap):
    net = pointwise_net(in_channels=3, classes=2)
    image = random_image(3, *shape)
    probs = predict_slice(net, image, tile=64, overlap=overlap, device=CPU)
    assert probs.shape == (2, *shape) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, whole_image_probs(net, image), atol=1e-6, rtol=0)


@pytest.mark.parametrize("shape", [(1, 1), (7, 300), (129, 129)])
def test_output_shape_for_awkward_sizes_with_a_3x3_network(shape):
    probs = predict_slice(conv_net(in_channels=3, classes=2), random_image(3, *shape), tile=32, device=CPU)
    assert probs.shape == (2, *shape)
    assert np.isfinite(probs).all() and probs.min() > 0 and probs.max() < 1


def test_batched_and_unbatched_tiles_agree():
    net = conv_net(in_channels=3, classes=2)
    image = random_image(3, 150, 170)
    one = predict_slice(net, image, tile=48, batch_size=1, device=CPU)
    seven = predict_slice(net, image, tile=48, batch_size=7, device=CPU)
    np.testing.assert_allclose(one, seven, atol=1e-6, rtol=0)


def test_tiles_run_in_batches_of_at_most_batch_size():
    net = Recorder(conv_net())
    predict_slice(net, random_image(1, 100, 130), tile=32, overlap=0.5, batch_size=5, device=CPU)
    tiles = len(tile_starts(100, 32, 16)) * len(tile_starts(130, 32, 16))  # 6 * 8
    assert [shape[0] for shape in net.shapes] == [5] * 9 + [3]
    assert sum(shape[0] for shape in net.shapes) == tiles == 48
    assert {shape[1:] for shape in net.shapes} == {(1, 32, 32)}


def test_ensemble_is_the_mean_of_its_members():
    first, second = conv_net(seed=1), conv_net(seed=2)
    image = random_image(1, 90, 110)
    both = predict_slice([first, second], image, tile=40, device=CPU)
    mean = (
        predict_slice(first, image, tile=40, device=CPU) + predict_slice(second, image, tile=40, device=CPU)
    ) / 2
    np.testing.assert_allclose(both, mean, atol=1e-6, rtol=0)


def test_tta_with_a_flip_symmetric_network_changes_nothing():
    net = flip_symmetric_net()
    image = random_image(1, 80, 100)
    plain = predict_slice(net, image, tile=48, device=CPU)
    np.testing.assert_allclose(
        predict_slice(net, image, tile=48, device=CPU, tta=True), plain, atol=1e-6, rtol=0
    )


def test_tta_is_the_mean_of_the_eight_flips_and_rotations_inverted():
    net = conv_net(seed=3)
    image = random_image(1, 48, 48)  # one tile: each transform is a whole-image forward
    outputs = []
    for turns in range(4):
        for mirror in (False, True):
            x = np.rot90(image, turns, axes=(1, 2))
            x = np.ascontiguousarray(x[:, :, ::-1] if mirror else x)
            y = whole_image_probs(net, x)
            y = y[:, :, ::-1] if mirror else y
            outputs.append(np.rot90(y, -turns, axes=(1, 2)))
    expected = np.mean(outputs, axis=0)
    tta = predict_slice(net, image, tile=48, device=CPU, tta=True)
    np.testing.assert_allclose(tta, expected, atol=1e-6, rtol=0)
    assert np.abs(tta - predict_slice(net, image, tile=48, device=CPU)).max() > 1e-3


@pytest.mark.parametrize("logit, foreground", [(0.2, 1), (-0.1, 0)])
def test_threshold_applies_to_probabilities_not_logits(logit, foreground):
    probs = predict_slice(ConstantLogit(logit), random_image(1, 70, 90), tile=32, device=CPU)
    np.testing.assert_allclose(probs, 1 / (1 + math.exp(-logit)), atol=1e-6, rtol=0)
    mask = to_mask(probs, threshold=0.5)
    assert mask.dtype == np.uint8 and mask.shape == (70, 90)
    assert (mask == foreground).all()


def test_out_of_memory_halves_the_batch_and_keeps_results():
    reference = predict_slice(conv_net(), random_image(1, 100, 100), tile=32, batch_size=1, device=CPU)
    net = Recorder(conv_net(), limit=2)
    probs = predict_slice(net, random_image(1, 100, 100), tile=32, batch_size=8, device=CPU)
    np.testing.assert_allclose(probs, reference, atol=1e-6, rtol=0)
    sizes = [shape[0] for shape in net.shapes]
    assert sizes[:3] == [8, 4, 2]  # two failures, then chunks of 2 for the rest
    assert set(sizes[3:]) <= {2, 1}


def test_out_of_memory_with_a_single_tile_is_raised():
    with pytest.raises(torch.OutOfMemoryError):
        predict_slice(Recorder(conv_net(), limit=0), random_image(1, 40, 40), tile=32, device=CPU)


def test_other_runtime_errors_are_not_retried():
    net = Recorder(conv_net(in_channels=2))
    with pytest.raises(RuntimeError):
        predict_slice(net, random_image(1, 40, 40), tile=32, batch_size=4, device=CPU)
    assert len(net.shapes) == 1


def test_train_mode_is_restored_and_no_gradient_is_kept():
    net = conv_net()
    net.train()
    before = [p.detach().clone() for p in net.parameters()]
    predict_slice(net, random_image(1, 40, 40), tile=32, device=CPU)
    assert net.training
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert all(p.grad is None for p in net.parameters())


def test_predict_stack_yields_one_result_per_slice():
    net = pointwise_net()
    slices = [random_image(1, 20, 30, seed=i) for i in range(3)]
    results = list(predict_stack(net, iter(slices), tile=16, device=CPU))
    assert len(results) == 3
    for image, probs in zip(slices, results):
        np.testing.assert_allclose(probs, whole_image_probs(net, image), atol=1e-6, rtol=0)


def test_wrong_network_output_shape_raises_model_error():
    with pytest.raises(ModelError, match="returned shape"):
        predict_slice(nn.Conv2d(1, 1, 3), random_image(1, 40, 40), tile=32, device=CPU)


@pytest.mark.parametrize(
    "options", [{"overlap": 1.0}, {"overlap": -0.1}, {"tile": 0}, {"batch_size": 0}, {"tile": 31.5}]
)
def test_bad_options_raise_usage_error(options):
    with pytest.raises(UsageError):
        predict_slice(pointwise_net(), random_image(1, 8, 8), device=CPU, **options)


def test_a_two_dimensional_image_raises_shape_mismatch():
    with pytest.raises(ShapeMismatchError, match="channel axis"):
        predict_slice(pointwise_net(), np.zeros((8, 8), np.float32), device=CPU)


def test_empty_ensemble_raises_model_error():
    with pytest.raises(ModelError):
        predict_slice([], random_image(1, 8, 8), device=CPU)


def test_devices_and_tile_suggestion():
    assert default_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    net = prepare_model(conv_net().train(), "cpu")
    assert not net.training
    assert suggest_tile(128, "cpu") == 256
    assert suggest_tile(300, "cpu") == 320
    assert suggest_tile(100, "cuda") == 256  # the same tile on every device: outputs depend on it


@pytest.mark.parametrize("name", ["paulow_attention_unet", "attention_unet", "unet"])
def test_registry_networks_predict_any_size(name):
    from paulow.models import build_model

    net = build_model(name, in_channels=2, classes=3, width=4, depth=3)
    for shape in [(1, 1), (37, 50)]:
        probs = predict_slice(net, random_image(2, *shape), tile=32, batch_size=3, device=CPU)
        assert probs.shape == (3, *shape) and probs.dtype == np.float32
        assert np.isfinite(probs).all() and probs.min() >= 0 and probs.max() <= 1


# ---------------------------------------------------------------- --compile
def _small_attention_unet() -> nn.Module:
    from paulow.models import build_model

    torch.manual_seed(0)
    return build_model("paulow_attention_unet", in_channels=1, classes=1, width=4, depth=2).eval()


def test_compiled_network_predicts_what_the_plain_one_does(caplog):
    import torch._dynamo

    from paulow.inference_networks import compile_for_inference

    net = _small_attention_unet()
    image = np.random.default_rng(0).random((1, 100, 150), dtype=np.float32)
    # 3 x 4 tiles of 64 in batches of 5: the last batch (2 tiles) is padded to 5 for the compiled net
    plain = predict_slice(net, image, tile=64, overlap=0.5, batch_size=5, device="cpu")
    torch._dynamo.reset()
    compiled = predict_slice(
        compile_for_inference(net), image, tile=64, overlap=0.5, batch_size=5, device="cpu"
    )
    # the compiled graph really ran: dynamo compiled a frame and no fallback to the plain network
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 1
    assert "compiling the network failed" not in caplog.text
    assert compiled.shape == plain.shape == (1, 100, 150)
    assert np.abs(compiled - plain).max() < 1e-4


class _BrokenCompile(nn.Module):
    """Looks like a torch.compile wrapper whose compiler is missing."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self._orig_mod = net

    def forward(self, x):
        raise RuntimeError("no C++ compiler found\nlong details")


def test_a_network_that_fails_to_compile_falls_back_with_a_warning(caplog):
    net = _small_attention_unet()
    image = np.random.default_rng(1).random((1, 64, 64), dtype=np.float32)
    plain = predict_slice(net, image, tile=64, device="cpu")
    with caplog.at_level("WARNING", logger="paulow"):
        fallback = predict_slice(_BrokenCompile(net), image, tile=64, device="cpu")
    np.testing.assert_allclose(fallback, plain, atol=1e-5)  # padded batch: same up to float rounding
    assert "compiling the network failed on this machine (no C++ compiler found)" in caplog.text


def test_tiled_softmax_prediction_of_a_k3_model_sums_to_one_per_pixel():
    from paulow.inference_networks import activation_of, set_activation

    model = conv_net(1, 3, seed=3)
    image = np.random.default_rng(0).random((1, 100, 90), dtype=np.float32)
    old = predict_slice(model, image, tile=64, overlap=0.5, device="cpu")  # no activation in meta
    set_activation(model, {"activation": "softmax"})
    assert activation_of(model) == "softmax"
    probs = predict_slice(model, image, tile=64, overlap=0.5, device="cpu")
    assert probs.shape == (3, 100, 90)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-5)
    assert not np.allclose(old.sum(axis=0), 1.0, atol=1e-3)  # old K>1 models: per-channel sigmoid
    set_activation(model, {})
    np.testing.assert_allclose(predict_slice(model, image, tile=64, overlap=0.5, device="cpu"), old)
    with pytest.raises(ModelError, match="activation"):
        set_activation(model, {"activation": "tanh"})


def test_training_marks_multiclass_networks_softmax():
    from paulow.config import TrainConfig
    from paulow.inference_networks import activation_of
    from paulow.training.network import build_network, output_activation

    assert output_activation(TrainConfig(classes=1)) == "sigmoid"
    cfg = TrainConfig(classes=3, width=4, depth=2)
    assert activation_of(build_network(cfg, 1, "cpu", 0)) == "softmax"
