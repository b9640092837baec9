"""ONNX Runtime as the CPU runtime: same probabilities and masks as PyTorch, sessions cached per
network, tile and weights, a clear choice and a fallback when a network cannot be exported."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch import nn

from paulow import ort_runtime
from paulow.errors import ModelError, UsageError
from paulow.infer import predict_slice
from paulow.inference_networks import set_activation
from paulow.models import build_model
from paulow.ort_runtime import OrtNetwork, choose_runtime, with_runtime
from paulow.predict import predict_pages

pytest.importorskip("onnxruntime", reason="ONNX Runtime is in the export extra, which make install installs")


def _net(classes: int = 1, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("paulow_attention_unet", in_channels=1, classes=classes, width=4, depth=2).eval()


def test_choice_of_runtime(monkeypatch):
    assert choose_runtime("torch", "cpu") == "torch"
    assert choose_runtime("onnxruntime", "cpu") == "onnxruntime"
    with pytest.raises(UsageError, match="CPU only"):
        choose_runtime("onnxruntime", "cuda:0")
    with pytest.raises(UsageError, match="choose one of torch, onnxruntime"):
        choose_runtime("auto", "cpu")
    monkeypatch.setattr(ort_runtime, "available", lambda: False)
    with pytest.raises(UsageError, match=r"pip install 'paulow\[export\]'"):
        choose_runtime("onnxruntime", "cpu")


@pytest.mark.parametrize("classes, shape", [(1, (1, 70, 45)), (3, (1, 33, 97)), (1, (1, 20, 31))])
def test_same_probabilities_and_masks_as_pytorch(classes, shape):
    net = _net(classes)
    set_activation(net, {"activation": "softmax" if classes > 1 else "sigmoid"})
    image = np.random.default_rng(1).normal(size=shape).astype(np.float32)
    reference = predict_slice(net, image, tile=32, overlap=0.5, batch_size=3, device="cpu")
    members = with_runtime(net, "onnxruntime", 32, 1)
    assert isinstance(members[0], OrtNetwork)
    got = predict_slice(members, image, tile=32, overlap=0.5, batch_size=3, device="cpu")
    assert got.shape == reference.shape == (classes, *shape[1:])
    np.testing.assert_allclose(got, reference, atol=1e-5)
    if classes == 1:
        assert np.array_equal(got > 0.5, reference > 0.5)
    else:
        assert np.array_equal(got.argmax(0), reference.argmax(0))


def test_tta_and_ensembles_go_through_the_same_sessions():
    nets = [_net(seed=0), _net(seed=1)]
    image = np.random.default_rng(2).normal(size=(1, 40, 40)).astype(np.float32)
    reference = predict_slice(nets, image, tile=32, tta=True, device="cpu")
    got = predict_slice(with_runtime(nets, "onnxruntime", 32, 1), image, tile=32, tta=True, device="cpu")
    np.testing.assert_allclose(got, reference, atol=1e-5)


def test_sessions_are_cached_until_the_weights_change():
    net = _net()
    first = with_runtime(net, "onnxruntime", 32, 1)[0]
    assert with_runtime(net, "onnxruntime", 32, 1)[0] is first
    with pytest.raises(ModelError, match="exported for 32 px tiles"):
        first(torch.zeros(1, 1, 64, 64))
    assert with_runtime(net, "onnxruntime", 64, 1)[0] is not first  # another tile size: another export
    with torch.no_grad():
        next(net.parameters()).add_(1.0)  # a training step would do the same
    image = np.random.default_rng(3).normal(size=(1, 32, 32)).astype(np.float32)
    renewed = with_runtime(net, "onnxruntime", 32, 1)[0]
    assert renewed is not first
    np.testing.assert_allclose(
        predict_slice(renewed, image, tile=32, device="cpu"),
        predict_slice(net, image, tile=32, device="cpu"),
        atol=1e-5,
    )


def test_torch_runtime_and_compiled_networks_are_left_alone():
    net = _net()
    assert with_runtime(net, "torch", 32, 1) == [net]
    net._orig_mod = net  # what torch.compile's wrapper carries: the user chose PyTorch's compiler
    assert with_runtime(net, "onnxruntime", 32, 1) == [net]


class _NotExportable(nn.Module):
    def forward(self, x):
        if torch.onnx.is_in_onnx_export():  # as an operator ONNX has no counterpart for would
            raise RuntimeError("Exporting the operator 'paulow::custom' to ONNX is not supported")
        return x[:, :1]


def test_a_network_that_cannot_be_exported_stays_on_pytorch(caplog):
    net = _NotExportable()
    with caplog.at_level(logging.WARNING, logger="paulow"):
        members = with_runtime(net, "onnxruntime", 32, 1)
    assert members == [net]
    assert (
        "could not be exported (Exporting the operator 'paulow::custom' to ONNX is not supported); "
        "predicting with PyTorch"
    ) in caplog.text


def test_predict_pages_uses_pytorch_unless_asked(monkeypatch):
    chosen = []
    real = ort_runtime.with_runtime
    monkeypatch.setattr(
        ort_runtime, "with_runtime", lambda m, runtime, *a: chosen.append(runtime) or real(m, runtime, *a)
    )
    net = _net()
    meta = {"in_channels": 1, "patch": 32, "normalisation": {}, "activation": "sigmoid"}
    data = np.random.default_rng(4).integers(0, 255, size=(2, 1, 40, 50)).astype(np.uint8)
    default = predict_pages(net, meta, data, tile=32, device="cpu")
    fast = predict_pages(net, meta, data, tile=32, device="cpu", runtime="onnxruntime")
    assert chosen == ["torch", "onnxruntime"]
    for a, b in zip(default, fast, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
