"""The CUDA paths on a real GPU: the tiny training and segmentation through the scripts, torchrun
with nccl, and tiled = untiled predictions on the device. Skipped where no CUDA GPU is visible."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _workflow import TINY_TRAIN, files, run_script
from torch import nn

from paulow.workspace import Workspace

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch"),
]


def _workspace(root):
    from paulow.synthetic import write_dataset

    ws = Workspace(root)
    ws.setup()
    write_dataset(ws.train_images, ws.train_masks, kind="nuclei", n=4, size=(64, 64), seed=3)
    write_dataset(ws.use_inputs, root / "unused_masks", kind="nuclei", n=3, size=(64, 64), seed=7)
    return ws


def test_tiny_training_and_segmentation_on_cuda(tmp_path):
    from paulow.checkpoint import load_checkpoint

    ws = _workspace(tmp_path)
    inputs = files(ws.use_inputs)
    done = run_script(
        "train_model.py",
        "--root",
        str(tmp_path),
        "--name",
        "g",
        "--device",
        "cuda",
        *TINY_TRAIN,
        "--epochs",
        "3",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "device: cuda" in done.stdout
    assert load_checkpoint(ws.models / "g.pth").meta["config"]["device"] == "cuda"
    done = run_script("use_model.py", "--root", str(tmp_path), "--model", "g", "--device", "cuda", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert files(ws.use_outputs) == sorted([n.rsplit(".", 1)[0] + "_mask.tif" for n in inputs] + ["runs"])
    assert files(ws.use_inputs) == []


def test_torchrun_on_every_gpu_trains_and_segments(tmp_path):
    from test_ddp_e2e import TRAIN, torchrun

    if torch.cuda.device_count() < 2:
        pytest.skip("torchrun with nccl needs 2 CUDA GPUs here (the CPU test covers the logic with gloo)")
    ws = _workspace(tmp_path)
    train = [a if a != "cpu" else "cuda" for a in TRAIN]
    done = torchrun("train_model.py", "--root", str(tmp_path), "--name", "d", *train, "--epochs", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert files(ws.models) == ["d.pth", "d_report"]
    done = torchrun("use_model.py", "--root", str(tmp_path), "--model", "d", "--device", "cuda", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(files(ws.use_outputs)) == 4 and files(ws.use_inputs) == []


@pytest.mark.parametrize("overlap", [0.5, 0.25])
def test_tiled_equals_untiled_on_cuda(overlap):
    # a translation-equivariant network (two 3x3 convolutions): tiles only differ from the whole
    # image where a tile edge is within 2 px, weighted ~1e-3 by the window; bf16 autocast adds ~1e-2
    from paulow.infer import predict_slice

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 3, padding=1))
    image = np.random.default_rng(0).normal(size=(1, 256, 256)).astype(np.float32)
    tiled = predict_slice(net, image, tile=64, overlap=overlap, device="cuda")
    whole = predict_slice(net, image, tile=256, overlap=overlap, device="cuda")
    assert tiled.shape == whole.shape == (1, 256, 256)
    np.testing.assert_allclose(tiled, whole, atol=2e-2, rtol=0)
    with torch.no_grad():
        exact = torch.sigmoid(net.cpu()(torch.from_numpy(image)[None]))[0].numpy()
    np.testing.assert_allclose(tiled, exact, atol=2e-2, rtol=0)
