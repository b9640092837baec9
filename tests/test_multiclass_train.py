"""Multi-class (K >= 2) training: selection by the mean foreground-class Dice, per-class columns in
history.csv / metrics, the closing summary and the model table (issue 11)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paulow.config import TrainConfig
from paulow.normalisation import normalise
from paulow.slices import Slice
from paulow.synthetic import classes_image

NAMES = ["background", "disc", "square"]


def class_slices(n: int = 5, size: int = 48) -> list[Slice]:
    out = []
    for i in range(n):
        image, mask = classes_image((size, size), classes=3, seed=i)
        out.append(Slice(normalise(image[None].astype(np.float32)), mask, Path(f"img{i}.tif"), 0))
    return out


def test_classes_image_draws_every_class_with_its_own_brightness():
    image, mask = classes_image((64, 64), classes=4, seed=3)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1, 2, 3}
    means = [image[mask == c].mean() for c in range(4)]
    assert means == sorted(means)  # background darkest, then class 1 (0.3) .. class 3 (1.0)
    again, _ = classes_image((64, 64), classes=4, seed=3)
    np.testing.assert_array_equal(image, again)


@pytest.fixture(scope="module")
def result():
    from paulow.training.cross_validation import cross_validate

    cfg = TrainConfig(
        classes=3,
        class_names=NAMES,
        width=4,
        depth=2,
        patch=32,
        overlap=16,
        batch_size=4,
        per_epoch=8,
        epochs=2,
        folds=1,
        test_fraction=0.2,
        time_limit=None,
        patience=100,
        device="cpu",
        augment=False,
    )
    lines: list[str] = []
    return cfg, cross_validate(class_slices(), cfg, "cpu", echo=lines.append), lines


def test_validation_rows_carry_each_class_and_select_by_the_foreground_mean(result):
    cfg, res, _ = result
    row = res.folds[0].history[-1]
    per_class = [row[f"val_dice_{n}"] for n in NAMES]
    assert row["val_dice"] == pytest.approx(np.mean(per_class[1:]))  # background left out
    assert res.folds[0].val_dice == max(r["val_dice"] for r in res.folds[0].history)


def test_test_score_and_metrics_per_class_with_names(result):
    from paulow.training.metadata import training_meta
    from paulow.training_run import test_line

    cfg, res, lines = result
    fold = res.folds[0]
    assert len(fold.test_dice_c) == 3 and fold.test_dice == pytest.approx(np.mean(fold.test_dice_c[1:]))
    assert any(line.startswith("fold 1 test: per-class Dice background") for line in lines)
    meta = training_meta(cfg, class_slices(), res, 1, {})
    metrics = meta["metrics"]
    assert list(metrics["test_dice_per_class"]) == NAMES
    assert metrics["test_dice_per_class"]["square"] == pytest.approx(fold.test_dice_c[2])
    assert metrics["folds"][0]["test_dice_disc"] == pytest.approx(fold.test_dice_c[1])
    line = test_line(meta)
    assert "mean over foreground classes" in line and f"square {fold.test_dice_c[2]:.4f}" in line
    assert "background" not in line


def test_model_table_shows_the_foreground_classes(tmp_path, result):
    from paulow.checkpoint import save_checkpoint
    from paulow.commands.common import model_table
    from paulow.training.metadata import training_meta

    cfg, res, _ = result
    meta = {**training_meta(cfg, class_slices(), res, 1, {}), "name": "m3"}
    path = save_checkpoint(tmp_path / "m3.pth", res.state_dicts(False), meta)
    table = model_table([path])
    dice = meta["metrics"]["test_dice_per_class"]
    assert "class_dice" in table.splitlines()[0]
    assert f"disc {dice['disc']:.3f}, square {dice['square']:.3f}" in table


def test_curves_plot_each_class(tmp_path, result):
    from paulow.report import _class_keys, plot_curves

    _, res, _ = result
    assert _class_keys(res.folds[0].history) == [f"val_dice_{n}" for n in NAMES]
    assert plot_curves(res.folds[0].history, tmp_path / "c.png").stat().st_size > 0
