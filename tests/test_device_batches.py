"""The device training data path (`paulow.device_batches`, `paulow.device_validation`) run with
device="cpu": exact crops and transforms, the same position pool as `PatchDataset`, no host copy
per batch, the pinned fallback's choice, and batched validation equal to `predict_slice`'s."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from paulow.augmentation import Augment
from paulow.device_batches import DeviceBatches, residence, transform_tables
from paulow.device_validation import predict_batched
from paulow.normalisation import normalise
from paulow.patches import PatchDataset
from paulow.slices import Slice
from paulow.synthetic import nuclei_image


def _slices(sizes=((40, 52), (33, 33), (20, 45)), channels: int = 2, classes: int = 1) -> list[Slice]:
    out = []
    for k, (h, w) in enumerate(sizes):
        rng = np.random.default_rng(k)
        image = rng.normal(0.3, 0.4, (channels, h, w)).astype(np.float32)  # negative values too
        mask = rng.integers(0, max(classes, 2), (h, w)).astype(np.uint8)
        out.append(Slice(image, mask, Path(f"s{k}.tif"), 0))
    return out


def _crop(dataset: PatchDataset, i: int, y: int, x: int):
    p = dataset.patch
    image, mask = dataset.items[i]
    return image[:, y : y + p, x : x + p], mask[y : y + p, x : x + p]


def _turned(array: np.ndarray, t: int) -> np.ndarray:
    """Transform `t = 2 * turns + mirror` of `(..., P, P)`, as `Augment` applies it."""
    out = np.rot90(array, t // 2, axes=(-2, -1))
    return out[..., ::-1] if t % 2 else out


def test_transform_tables_are_augment_flips_and_turns_of_a_hand_made_array():
    a = np.arange(9).reshape(3, 3)
    rows, cols = transform_tables(3)
    turned = [a[rows[t].numpy(), cols[t].numpy()] for t in range(8)]
    assert turned[0].tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert turned[1].tolist() == [[2, 1, 0], [5, 4, 3], [8, 7, 6]]  # mirror left-right
    assert turned[2].tolist() == [[2, 5, 8], [1, 4, 7], [0, 3, 6]]  # one turn counter-clockwise
    assert turned[4].tolist() == [[8, 7, 6], [5, 4, 3], [2, 1, 0]]  # two turns
    assert turned[5].tolist() == [[6, 7, 8], [3, 4, 5], [0, 1, 2]]  # two turns, mirrored: upside down
    assert turned[6].tolist() == [[6, 3, 0], [7, 4, 1], [8, 5, 2]]
    assert len({tuple(t.ravel()) for t in turned}) == 8


@pytest.mark.parametrize("where", ["device", "pinned"])
def test_patches_are_the_crops_it_names_turned_as_it_says(where):
    dataset = PatchDataset(
        _slices(), patch=16, overlap=8, augment=Augment(intensity=False), seed=3, border_weight=(10, 3)
    )
    dataset.reshuffle(2)
    batches = DeviceBatches(dataset, 5, "cpu", where=where)
    seen, used = 0, set()
    for images, targets, weights in batches:
        drawn = batches.last
        for b, ((i, y, x), t) in enumerate(zip(drawn["positions"].tolist(), drawn["transforms"].tolist())):
            image, mask = _crop(dataset, i, y, x)
            weight = dataset.weights[i][y : y + 16, x : x + 16]
            assert np.array_equal(images[b].numpy(), _turned(image, t))
            assert np.array_equal(targets[b, 0].numpy(), _turned(mask, t).astype(np.float32))
            assert np.array_equal(weights[b].numpy(), _turned(weight, t))
            used.add(t)
            seen += 1
    assert seen == len(batches) * 5 == len(dataset) // 5 * 5
    assert used == set(range(8))


def test_same_position_pool_as_the_patch_dataset_and_no_rotations_keeps_turns_0_and_2():
    dataset = PatchDataset(_slices(), patch=16, overlap=8, augment=Augment(rotations=False, intensity=False))
    dataset.reshuffle(1)
    batches = DeviceBatches(dataset, 4, "cpu")
    drawn, transforms = [], set()
    for _ in batches:
        drawn += [tuple(p) for p in batches.last["positions"].tolist()]
        transforms |= set(batches.last["transforms"].tolist())
    assert len(drawn) == len(dataset) // 4 * 4  # the last partial batch is dropped, as by the loader
    assert set(drawn) <= set(dataset.positions) and len(set(drawn)) >= len(set(dataset.positions)) - 3
    assert transforms == {0, 1, 4, 5}


def test_intensity_is_augments_gamma_scale_shift_with_the_drawn_values():
    dataset = PatchDataset(_slices(), patch=16, overlap=8, augment=Augment(flips=False), seed=1)
    batches = DeviceBatches(dataset, 6, "cpu")
    images, _ = next(iter(batches))
    drawn = batches.last
    for b, (i, y, x) in enumerate(drawn["positions"].tolist()):
        crop = _crop(dataset, i, y, x)[0].astype(np.float64)
        gamma, scale, shift = (float(drawn[k][b]) for k in ("gamma", "scale", "shift"))
        positive = np.clip(crop, 0, None)
        expected = (crop - positive + positive**gamma) * scale + shift
        np.testing.assert_allclose(images[b].numpy(), expected, rtol=1e-5, atol=1e-6)
    assert 0.7 <= float(drawn["gamma"].min()) and float(drawn["gamma"].max()) <= 1.4
    assert 0.8 <= float(drawn["scale"].min()) and float(drawn["scale"].max()) <= 1.25


def test_multiclass_targets_are_one_hot_and_draws_repeat_for_the_same_epoch():
    dataset = PatchDataset(_slices(classes=3), patch=16, overlap=8, augment=Augment(), classes=3, seed=5)
    batches = DeviceBatches(dataset, 4, "cpu")
    first = [(i.clone(), t.clone()) for i, t in batches]
    again = list(batches)
    for (i1, t1), (i2, t2) in zip(first, again):
        assert torch.equal(i1, i2) and torch.equal(t1, t2)
    positions = batches.last["positions"].tolist()
    turns = batches.last["transforms"].tolist()
    for b, ((i, y, x), t) in enumerate(zip(positions, turns)):
        mask = _turned(_crop(dataset, i, y, x)[1], t)
        assert np.array_equal(
            first[-1][1][b].numpy(), (np.arange(3)[:, None, None] == mask).astype(np.float32)
        )


def test_no_host_copy_per_batch(monkeypatch):
    dataset = PatchDataset(_slices(), patch=16, overlap=8, augment=Augment(), seed=2)
    batches = DeviceBatches(dataset, 4, "cpu")
    store = (batches.images.device, batches.images.data_ptr(), batches.masks.data_ptr())
    epoch = iter(batches)  # the one copy per epoch: the crop positions

    def refuse(*args, **kwargs):
        raise AssertionError("a host array was copied into a tensor while drawing batches")

    for name in ("from_numpy", "tensor", "as_tensor"):
        monkeypatch.setattr(torch, name, refuse)
    count = sum(1 for _ in epoch)
    monkeypatch.undo()
    assert count == len(batches) > 1
    dataset.reshuffle(2)
    list(batches)
    assert (batches.images.device, batches.images.data_ptr(), batches.masks.data_ptr()) == store


def test_pinned_host_memory_is_chosen_when_the_slices_do_not_fit_the_gpu(monkeypatch):
    import paulow.device_batches as db

    gib = 2**30
    assert residence(3 * gib, "cuda", free=lambda d: 8 * gib) == "device"
    assert residence(5 * gib, "cuda", free=lambda d: 8 * gib) == "pinned"  # over half the free memory
    assert residence(10**15, "cpu", free=lambda d: 0) == "device"
    monkeypatch.setattr(db, "_cuda_free", lambda d: 1000)
    dataset = PatchDataset(_slices(), patch=16, overlap=8)
    batches = DeviceBatches(dataset, 4, "cuda")  # built only: there is no GPU to draw on here
    assert batches.where == "pinned" and batches.images.device.type == "cpu"
    monkeypatch.setattr(db, "_cuda_free", lambda d: 10**12)
    assert db.residence(10**6, "cuda") == "device"


def _tiny_net(classes: int = 1):
    from paulow.models import build_model

    torch.manual_seed(0)
    return build_model("paulow_attention_unet", in_channels=1, classes=classes, width=4, depth=2).eval()


def test_batched_validation_gives_the_probabilities_and_dice_of_todays_validation():
    from paulow.config import TrainConfig
    from paulow.infer import suggest_tile
    from paulow.scoring import score_probabilities
    from paulow.training.evaluation import predict_slices

    sizes = [(256, 256), (50, 90), (300, 270)]  # a crop of one tile, a padded one, 4 tiles
    slices = []
    for k, size in enumerate(sizes):
        image, mask = nuclei_image(size=size, seed=k)
        slices.append(Slice(normalise(image[None]), mask, Path(f"v{k}.tif"), 0))
    cfg = TrainConfig(patch=64, batch_size=3, infer_overlap=0.5)  # today's batch: max(3, 4)
    net = _tiny_net()
    today = predict_slices(net, slices, cfg, "cpu")
    tile = suggest_tile(cfg.patch, "cpu")
    assert tile == 256  # today's validation tile: 256 px on every device
    batched = predict_batched(
        net, [s.image for s in slices], tile=tile, overlap=0.5, batch_size=4, device="cpu"
    )
    for a, b in zip(today, batched):
        assert a.shape == b.shape
        # batches of 4 tiles across slices against one slice's tiles: the convolutions round differently (3.4e-5 seen)
        np.testing.assert_allclose(a, b, atol=1e-4)
        clear = np.abs(a - 0.5) > 1e-4
        assert np.array_equal((a > 0.5)[clear], (b > 0.5)[clear])
    truths = [s.mask for s in slices]
    today_dice = score_probabilities(today, truths, 0.5)["dice"]
    assert 0.05 < today_dice < 0.95  # an untrained net: masks neither empty nor perfect
    assert score_probabilities(batched, truths, 0.5)["dice"] == pytest.approx(today_dice, abs=1e-4)


def test_validation_uses_the_batched_path_only_on_the_device_path(monkeypatch):
    import paulow.device_batches as db
    import paulow.device_validation as dv
    from paulow.config import TrainConfig
    from paulow.training.evaluation import validation_probabilities

    calls = []
    monkeypatch.setattr(dv, "predict_batched", lambda *a, **k: calls.append("batched") or [])
    slices = _slices(sizes=((64, 64),), channels=1)
    cfg = TrainConfig(patch=64)
    net = _tiny_net()
    assert len(validation_probabilities(net, slices, cfg, "cpu")) == 1 and calls == []
    monkeypatch.setattr(db, "use_device_batches", lambda device: True)
    assert validation_probabilities(net, slices, cfg, "cpu") == [] and calls == ["batched"]


def test_fit_fold_trains_on_device_batches_when_the_device_path_is_on(monkeypatch):
    import paulow.device_batches as db
    from paulow.config import TrainConfig
    from paulow.training.loop import fit_fold
    from paulow.training.network import build_network

    made = []

    class Counting(DeviceBatches):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(db, "use_device_batches", lambda device: True)
    monkeypatch.setattr(db, "DeviceBatches", Counting)
    pairs = [nuclei_image(size=(48, 48), seed=k) for k in range(3)]
    slices = [Slice(normalise(i[None]), m, Path(f"t{k}.tif"), 0) for k, (i, m) in enumerate(pairs)]
    cfg = TrainConfig(
        width=4, depth=2, patch=32, overlap=16, epochs=1, batch_size=4, per_epoch=8, val_tiles=0
    )
    model = build_network(cfg, 1, "cpu", 0)
    result = fit_fold(model, slices[:2], slices[2:], cfg, "cpu", deadline=float("inf"))
    assert len(made) == 1 and made[0].where == "device"
    assert [row["patches"] for row in result.history] == [8]
    assert all(np.isfinite(row["train_loss"]) for row in result.history)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch")
def test_resident_path_on_a_real_gpu_matches_the_cpu_crops():
    dataset = PatchDataset(_slices(), patch=16, overlap=8, augment=Augment(intensity=False), seed=4)
    batches = DeviceBatches(dataset, 5, "cuda")
    assert batches.where == "device" and batches.images.device.type == "cuda"
    pointer = batches.images.data_ptr()
    for images, targets in batches:
        assert images.device.type == "cuda" and images.is_contiguous(memory_format=torch.channels_last)
        for b, ((i, y, x), t) in enumerate(
            zip(batches.last["positions"].tolist(), batches.last["transforms"].tolist())
        ):
            image, mask = _crop(dataset, i, y, x)
            assert np.array_equal(images[b].cpu().numpy(), _turned(image, t))
            assert np.array_equal(targets[b, 0].cpu().numpy(), _turned(mask, t).astype(np.float32))
    assert batches.images.data_ptr() == pointer


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch")
def test_pinned_path_on_a_real_gpu_copies_the_crops_it_names():
    dataset = PatchDataset(_slices(), patch=16, overlap=8, augment=Augment(intensity=False), seed=4)
    batches = DeviceBatches(dataset, 5, "cuda", where="pinned")
    assert batches.images.device.type == "cpu"
    count = 0
    for images, targets in batches:
        assert images.device.type == "cuda" and targets.device.type == "cuda"
        for b, ((i, y, x), t) in enumerate(
            zip(batches.last["positions"].tolist(), batches.last["transforms"].tolist())
        ):
            assert np.array_equal(images[b].cpu().numpy(), _turned(_crop(dataset, i, y, x)[0], t))
            count += 1
    assert count == len(batches) * 5
