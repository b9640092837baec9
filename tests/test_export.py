"""ONNX and TorchScript exports give the probabilities PyTorch gives (within 1e-4), at new sizes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from paulow.checkpoint import load_checkpoint
from paulow.cli import main
from paulow.infer import predict_slice
from paulow.probability_net import probability_net


def _image(batch: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(1).random((batch, 1, height, width), dtype=np.float32)


@pytest.mark.parametrize("fmt, suffix", [("onnx", ".onnx"), ("torchscript", ".torchscript.pt")])
def test_export_matches_pytorch(trained, tmp_path, capsys, fmt, suffix):
    model = tmp_path / "t.pth"
    shutil.copy(trained["model"], model)
    assert main(["export", str(model), "--format", fmt, "--out", str(tmp_path / "out")]) == 0
    weights = tmp_path / "out" / f"t{suffix}"
    assert f"wrote {weights}" in capsys.readouterr().out
    info = json.loads((tmp_path / "out" / f"t{suffix}.json").read_text())
    loaded = load_checkpoint(model)
    assert info["threshold"] == loaded.meta["threshold"] and info["normalisation"]["high"] == 99.8
    assert info["mask"] == f"foreground where the probability > {loaded.meta['threshold']:.2f}"
    step = info["size_step"]
    x = _image(2, 3 * step, 5 * step)  # not the size the graph was traced at
    expected = probability_net(loaded)(torch.from_numpy(x)).detach().numpy()
    if fmt == "onnx":
        import onnxruntime

        got = onnxruntime.InferenceSession(str(weights)).run(None, {"image": x})[0]
    else:
        got = torch.jit.load(str(weights))(torch.from_numpy(x)).detach().numpy()
    assert got.shape == (2, 1, 3 * step, 5 * step)
    assert np.abs(got - expected).max() < 1e-4
    # the graph is the network users run: a square image predicted as one tile gives the same
    square = x[:1, :, :, : x.shape[-2]]
    single = predict_slice(loaded.models, square[0], tile=square.shape[-1], overlap=0.0, device="cpu")
    assert np.abs(single - probability_net(loaded)(torch.from_numpy(square)).detach().numpy()[0]).max() < 1e-4


def test_export_never_overwrites_and_refuses_unknown_models(trained, tmp_path, capsys):
    model = tmp_path / "t.pth"
    shutil.copy(trained["model"], model)
    assert main(["export", str(model), "--format", "torchscript"]) == 0
    first = {name: (tmp_path / name).read_bytes() for name in ("t.torchscript.pt", "t.torchscript.pt.json")}
    assert main(["export", str(model), "--format", "torchscript"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "t.pth",
        "t.torchscript.pt",
        "t.torchscript.pt.json",
        "t.torchscript_2.pt",
        "t.torchscript_2.pt.json",
    ]
    assert all((tmp_path / name).read_bytes() == data for name, data in first.items())  # untouched
    assert main(["export", str(tmp_path / "missing.pth")]) == 2
    assert "not found" in capsys.readouterr().err


def test_bioimageio_package_passes_spec_validation_and_the_core_model_test(trained, tmp_path, capsys):
    from bioimageio.core import test_model

    model = tmp_path / "t.pth"
    shutil.copy(trained["model"], model)
    assert main(["export", str(model), "--format", "bioimageio"]) == 0  # validates before it reports
    package = tmp_path / "t.bioimageio.zip"
    assert f"wrote {package}" in capsys.readouterr().out
    import zipfile

    names = set(zipfile.ZipFile(package).namelist())
    assert {
        "rdf.yaml",
        "weights.torchscript.pt",
        "test_input.npy",
        "test_output.npy",
        "cover.png",
        "README.md",
        "LICENSE",
    } <= names
    summary = test_model(package)  # runs the weights on the test tensors, offline
    assert summary.status == "passed", [(d.name, [e.msg for e in d.errors]) for d in summary.details]
