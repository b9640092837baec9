"""`--border-weight`: the map travels with the patches, weighs the BCE/CE terms, and trains end to end."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from _workflow import TINY_TRAIN, run_script

from paulow.augmentation import Augment
from paulow.checkpoint import load_checkpoint
from paulow.config import config_from_options
from paulow.dynamic_loss import DynamicLoss
from paulow.errors import UsageError
from paulow.loss_components import BCELoss, TverskyLoss
from paulow.losses import build_loss
from paulow.patches import PatchDataset
from paulow.slices import Slice
from paulow.weights import border_weight_map


def _two_object_slice(size: int = 16) -> Slice:
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[2:7, 2:7] = 1
    mask[2:7, 8:13] = 1  # a 1-px gap at column 7
    image = np.stack([mask.astype(np.float32) + np.arange(size, dtype=np.float32)[None] / 100])
    return Slice(image[None][0], mask, Path("a.tif"), 0)


def test_weight_map_follows_every_turn_and_flip():
    s = _two_object_slice()
    data = PatchDataset(
        [s],
        patch=16,
        overlap=0,
        random_fraction=0.0,
        augment=Augment(intensity=False),
        border_weight=(10.0, 5.0),
    )
    expected = border_weight_map(s.mask)
    seen = set()
    for epoch in range(12):
        data.reshuffle(epoch)
        image, target, weight = data[0]
        image, target, weight = image[0].numpy(), target[0].numpy(), weight.numpy()
        # find the turn/flip that maps the original image onto the patch; mask and weights must match it
        for k in range(4):
            for flip in (False, True):
                turned = np.rot90(s.image[0], k)
                turned = turned[:, ::-1] if flip else turned
                if np.array_equal(turned, image):
                    seen.add((k, flip))
                    want_w, want_m = np.rot90(expected, k), np.rot90(s.mask, k)
                    if flip:
                        want_w, want_m = want_w[:, ::-1], want_m[:, ::-1]
                    assert np.array_equal(target, want_m) and np.allclose(weight, want_w)
    assert len(seen) >= 3  # several different augmentations were checked
    assert weight[target > 0].min() < weight[target == 0].max()  # the gap outweighs the objects


def test_instance_labels_of_the_mask_file_are_used():
    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[:, :4] = 1
    mask[:, 4:] = 2  # two touching objects: one component, two instances
    labels = mask.astype(np.int32)
    one = Slice(np.zeros((1, 8, 8), np.float32), (mask > 0).astype(np.uint8), Path("a"), 0)
    two = Slice(np.zeros((1, 8, 8), np.float32), (mask > 0).astype(np.uint8), Path("a"), 0, labels=labels)
    w_one = PatchDataset([one], patch=8, overlap=0, random_fraction=0.0, border_weight=(10, 5)).weights[0]
    w_two = PatchDataset([two], patch=8, overlap=0, random_fraction=0.0, border_weight=(10, 5)).weights[0]
    assert np.all(w_one == 1.0)  # all foreground, one object: no border term, balance 1
    assert np.array_equal(w_two, border_weight_map(labels))


def test_weighted_bce_by_hand_2x2():
    logits = torch.tensor([[[[0.0, 2.0], [-1.0, 3.0]]]])
    target = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    weight = torch.tensor([[[2.0, 1.0], [0.5, 4.0]]])

    def bce(x, y):
        p = 1 / (1 + math.exp(-x))
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    hand = (2 * bce(0, 1) + 1 * bce(2, 0) + 0.5 * bce(-1, 0) + 4 * bce(3, 1)) / 4
    assert float(BCELoss()(logits, target, weight)) == pytest.approx(hand, rel=1e-6)
    assert float(BCELoss()(logits, target)) == pytest.approx(
        (bce(0, 1) + bce(2, 0) + bce(-1, 0) + bce(3, 1)) / 4, rel=1e-6
    )


def test_weighted_ce_by_hand_k2_and_region_terms_unweighted():
    logits = torch.tensor([[[[0.0, 1.0]], [[1.0, 0.0]]]])  # (1, 2, 1, 2)
    target = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])
    weight = torch.tensor([[[3.0, 1.0]]])
    nll0 = -math.log(math.exp(0) / (math.exp(0) + math.exp(1)))
    nll1 = -math.log(math.exp(0) / (math.exp(1) + math.exp(0)))
    assert float(build_loss("ce")(logits, target, weight)) == pytest.approx((3 * nll0 + nll1) / 2, rel=1e-6)
    tversky = TverskyLoss()
    assert float(tversky(logits, target, weight)) == float(tversky(logits, target))


def test_dynamic_loss_weighs_only_its_bce_terms():
    torch.manual_seed(0)
    logits, target = torch.randn(3, 1, 8, 8), (torch.rand(3, 1, 8, 8) > 0.5).float()
    weight = torch.rand(3, 8, 8) * 3
    loss = DynamicLoss(empty="bce", small=("bce", "tversky"), large=("bce", "tversky"), max_loss=2.0)
    expected = BCELoss().per_sample(logits, target, weight) + TverskyLoss().per_sample(logits, target)
    assert torch.allclose(loss.per_sample(logits, target, weight), expected)


def test_border_weight_option_parsing():
    assert config_from_options({"border_weight": "default"}).border_weight == [10.0, 5.0]
    assert config_from_options({"border_weight": "3,2"}).border_weight == [3.0, 2.0]
    assert config_from_options({"border_weight": (4, 1)}).border_weight == [4.0, 1.0]
    assert config_from_options({}).border_weight is None
    with pytest.raises(UsageError, match="W0,SIGMA"):
        config_from_options({"border_weight": "x"})


def test_train_script_with_border_weight(tmp_path):
    from paulow.synthetic import write_dataset
    from paulow.workspace import Workspace

    ws = Workspace(tmp_path)
    ws.setup()
    write_dataset(ws.train_images, ws.train_masks, kind="nuclei", n=4, size=(64, 64), seed=3)
    done = run_script(
        "train_model.py",
        "--root",
        str(tmp_path),
        "--name",
        "bw",
        "--epochs",
        "2",
        "--border-weight",
        *TINY_TRAIN,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    meta = load_checkpoint(ws.models / "bw.pth").meta
    assert meta["config"]["border_weight"] == [10.0, 5.0]
    bad = run_script(
        "train_model.py", "--root", str(tmp_path), "--name", "bw2", "--border-weight", "1,-1", *TINY_TRAIN
    )
    assert bad.returncode == 2 and "error: --border-weight '1,-1'" in bad.stderr + bad.stdout
