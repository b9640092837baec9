"""Between-epoch validation on a fixed, stratified subset of tiles (hand-built masks, fake clocks)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from _workflow import nuclei_slices

from paulow.config import TrainConfig
from paulow.slices import Slice
from paulow.validation_subset import allocate, describe, validation_subset


def page(mask: np.ndarray, name: str, labels: np.ndarray | None = None) -> Slice:
    """A slice whose image is its pixel index (so a crop's origin can be read back)."""
    h, w = mask.shape
    image = np.arange(h * w, dtype=np.float32).reshape(1, h, w)
    return Slice(
        image,
        mask.astype(np.uint8),
        Path(name),
        0,
        {"file": name, "shape": [h, w], "foreground_fraction": float(np.mean(mask > 0)), "snr": 0.0},
        labels,
    )


def strip(kinds: str, tile: int = 16) -> np.ndarray:
    """A (tile, tile * len(kinds)) mask, one tile per letter: b background, s one pixel (1/256:
    sparse), d all foreground (dense)."""
    mask = np.zeros((tile, tile * len(kinds)), np.uint8)
    for j, kind in enumerate(kinds):
        if kind == "s":
            mask[3, j * tile + 5] = 1
        elif kind == "d":
            mask[:, j * tile : (j + 1) * tile] = 1
    return mask


def origin(s: Slice, width: int = 64) -> tuple[str, int, int]:
    y, x, h, w = s.info["crop"]
    assert s.image[0, 0, 0] == y * width + x  # the image was cut where `crop` says
    return (s.source.name, y, x)


def test_crop_count_positions_and_contents_for_a_hand_built_case():
    # 16 px tiles without overlap: 8 candidates. Strata: background 5, sparse 1 (b x0), dense 2 (a x0,
    # b x32). 4 crops: one of each stratum at least, then the largest deficit (background: 4*5/8 - 1
    # = 1.5) gets the 4th. Background crops go one to each image; the dense one to `a` (fewer crops).
    val = [
        page(strip("dbbb"), "a.tif", labels=strip("dbbb").astype(np.int32) * 7),
        page(strip("sbdb"), "b.tif"),
    ]
    crops = validation_subset(val, 16, 0.0, cap=4, seed=3)
    assert len(crops) == 4
    where = [origin(c) for c in crops]
    assert where[0] == ("a.tif", 0, 0) and where[2] == ("b.tif", 0, 0)
    assert where[1][0] == "a.tif" and where[1][2] in (16, 32, 48)
    assert where[3][0] == "b.tif" and where[3][2] in (16, 48)
    dense, sparse = crops[0], crops[2]
    assert dense.image.shape == (1, 16, 16) and dense.mask.shape == (16, 16)
    assert dense.info["foreground_fraction"] == 1.0 and sparse.info["foreground_fraction"] == 1 / 256
    assert dense.info["shape"] == [16, 16] and dense.info["crop"] == [0, 0, 16, 16]
    assert dense.info["file"] == "a.tif" and dense.key == val[0].key
    assert dense.labels is not None and dense.labels.shape == (16, 16) and dense.labels.max() == 7
    assert sparse.labels is None and int(sparse.mask.sum()) == 1
    assert [c.info["foreground_fraction"] for c in (crops[1], crops[3])] == [0.0, 0.0]


def test_subset_is_deterministic():
    val = [page(strip("dbsbbdsb"), "a.tif"), page(strip("bbsbdbbs"), "b.tif")]
    first = validation_subset(val, 16, 0.0, cap=5, seed=0)
    again = validation_subset(val, 16, 0.0, cap=5, seed=0)
    assert len(first) == 5 and [origin(c, 128) for c in first] == [origin(c, 128) for c in again]
    assert all(
        np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask) for a, b in zip(first, again)
    )


def test_every_stratum_appears_in_proportion():
    # 48 tiles: background 24, sparse 16, dense 8 -> 12 crops split 6 / 4 / 2, over all three images
    val = [
        page(np.zeros((16, 256), np.uint8), "empty.tif"),
        page(strip("ssssssssbbbbbbbb"), "sparse.tif"),
        page(strip("ssssssssdddddddd"), "dense.tif"),
    ]
    crops = validation_subset(val, 16, 0.0, cap=12, seed=1)
    fractions = [c.info["foreground_fraction"] for c in crops]
    counts = (
        sum(f == 0 for f in fractions),
        sum(0 < f < 0.0625 for f in fractions),
        sum(f >= 0.0625 for f in fractions),
    )
    assert counts == (6, 4, 2)
    assert {c.source.name for c in crops} == {"empty.tif", "sparse.tif", "dense.tif"}


def test_a_rare_stratum_gets_one_crop():
    # 46 background tiles, one sparse, one dense: 4 crops = 2 background + 1 + 1
    assert allocate([46, 1, 1], 4, [1, 1, 1]) == [2, 1, 1]
    assert allocate([5, 1, 2], 4, [1, 1, 1]) == [2, 1, 1]
    val = [page(strip("b" * 46 + "sd"), "a.tif")]
    fractions = sorted(c.info["foreground_fraction"] for c in validation_subset(val, 16, 0.0, cap=4))
    assert fractions == [0.0, 0.0, 1 / 256, 1.0]


def test_every_class_present_is_in_some_crop():
    # K = 3: class 1 fills tiles 0-5, class 2 is one pixel in tile 7. Two crops: the rarest class's
    # tile (x 112) and class 1's first densest tile (x 0); the strata minimums give way to them.
    mask = np.zeros((16, 128), np.uint8)
    mask[:, :96] = 1
    mask[4, 120] = 2
    crops = validation_subset([page(mask, "a.tif")], 16, 0.0, cap=2, classes=3)
    assert [c.info["crop"][1] for c in crops] == [0, 112]
    assert sorted(set(np.unique(np.concatenate([c.mask.ravel() for c in crops])))) == [0, 1, 2]


def test_at_or_below_the_cap_the_whole_images_are_validated():
    val = [page(strip("dbsb"), "a.tif"), page(strip("bbbb"), "b.tif")]
    for cap in (8, 100, 0):
        same = validation_subset(val, 16, 0.0, cap=cap)
        assert len(same) == 2 and all(a is b for a, b in zip(same, val))
    # overlapping inference tiles count: 64 px at half overlap of 16 px tiles are 7 tiles each
    assert len(validation_subset(val, 16, 0.5, cap=14)) == 2
    assert len(validation_subset(val, 16, 0.5, cap=13)) == 13


def test_plan_line_names_the_validation():
    val = [page(strip("dbsb"), "a.tif"), page(strip("bbbb"), "b.tif")]
    assert describe([val], 16, 0.0, 8) == "validation: 8 tiles of 2 images (whole images)"
    assert describe([val], 16, 0.0, 3) == "validation: 3 tiles of 2 images (subset)"
    assert (
        describe([val, val[:1]], 16, 0.0, 5)
        == "validation: 4-5 tiles of 1-2 images (subset where over 5 tiles)"
    )


def test_planner_costs_a_validation_by_the_subset_tiles(monkeypatch):
    from paulow.training import planning

    monkeypatch.setattr(planning, "time_steps", lambda *a, **k: 0.5)
    monkeypatch.setattr(planning, "time_inference", lambda *a, **k: 1.0)  # 1 s per tile
    # six 512x768 pages: 256 px CPU tiles at half overlap, 3 x 5 = 15 tiles each; two folds of 3 pages
    slices = [
        Slice(np.zeros((1, 512, 768), np.float32), np.zeros((512, 768), np.uint8), Path(f"{i}.tif"), 0)
        for i in range(6)
    ]
    cfg = TrainConfig(width=4, depth=2, patch=32, folds=2, test_fraction=0.0, time_limit=20.0, val_tiles=24)
    plan, _ = planning.plan_run(slices, cfg, "cpu", folds_explicit=True)
    # 600 s per fold; closing = 45 whole tiles = 45 s; 25 % - 45 s = 105 s -> 4 validations of 24 s;
    # 600 - 96 - 45 = 459 s of steps = 918 steps x 8 patches
    assert (plan.validations_per_fold, plan.patches_per_fold) == (4, 7344)
    assert plan.val_ratio == pytest.approx(96 / 459)
    assert "validation: 24 tiles of 3 images (subset)" in plan.line()
    cfg = replace(cfg, val_tiles=0)  # whole images: 45 s each, 2 validations, 465 s of steps
    plan, _ = planning.plan_run(slices, cfg, "cpu", folds_explicit=True)
    assert (plan.validations_per_fold, plan.patches_per_fold) == (2, 7440)
    assert "validation: 45 tiles of 3 images (whole images)" in plan.line()


def test_fit_validates_on_the_subset_and_closes_on_whole_images(monkeypatch, tmp_path):
    from paulow.training import cross_validation, evaluation, tuning

    shapes = []
    predict = evaluation.predict_slices
    for module in (evaluation, tuning):  # validation and panels; threshold tuning
        monkeypatch.setattr(
            module,
            "predict_slices",
            lambda models, slices, *a, **k: (
                shapes.append([s.image.shape for s in slices]) or predict(models, slices, *a, **k)
            ),
        )
    cfg = TrainConfig(
        width=4,
        depth=2,
        patch=32,
        overlap=16,
        batch_size=4,
        per_epoch=8,
        epochs=2,
        folds=1,
        test_fraction=0.0,
        time_limit=None,
        patience=100,
        device="cpu",
        augment=False,
        val_tiles=2,
    )
    # three 384 px pages, one held out: 2 x 2 tiles of 256 px > 2 -> two crops between epochs
    result = cross_validation.cross_validate(
        nuclei_slices(3, size=384), cfg, "cpu", tmp_path, echo=lambda _: None
    )
    assert shapes[:2] == [[(1, 256, 256)] * 2] * 2  # both epochs' validations
    assert shapes[2:] == [[(1, 384, 384)]]  # threshold tuning and the final panel on the whole image
    assert (tmp_path / "fold1_epoch001.png").is_file() and (tmp_path / "fold1_final.png").is_file()
    assert len(result.folds[0].val_files) == 1 and result.folds[0].val_dice >= 0


def test_val_tiles_option():
    from paulow.config import config_from_options
    from paulow.errors import UsageError

    assert config_from_options({}, None, "cpu").val_tiles == 24
    assert config_from_options({}, "gpu", "cuda").val_tiles == 96
    assert config_from_options({"val_tiles": 0}, None, "cpu").val_tiles == 0
    with pytest.raises(UsageError, match="--val-tiles"):
        config_from_options({"val_tiles": -1}, None, "cpu")


def test_cli_passes_val_tiles(tmp_path):
    from paulow.cli import build_parser
    from paulow.commands.common import config_from_args

    assert (
        config_from_args(build_parser(tmp_path).parse_args(["train", "--val-tiles", "0"]), "cpu").val_tiles
        == 0
    )
    assert (
        config_from_args(build_parser(tmp_path).parse_args(["train", "--val-tiles", "8"]), "cpu").val_tiles
        == 8
    )
