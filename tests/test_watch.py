"""Curves while training runs: validation loss, the curves PNG redrawn during a fold, TensorBoard files."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from _workflow import TINY_TRAIN, nuclei_slices

from paulow.loss_components import BCELoss
from paulow.losses import loss_from_probabilities
from paulow.watch import FoldWatch

TINY = dict(
    width=8,
    depth=2,
    patch=32,
    overlap=16,
    batch_size=4,
    per_epoch=8,
    patience=100,
    device="cpu",
    augment=False,
)


def _fold(epochs: int, watch=None, on_epoch=None):
    import time

    from paulow.config import TrainConfig
    from paulow.training.loop import fit_fold
    from paulow.training.network import build_network

    cfg = TrainConfig(epochs=epochs, **TINY)
    slices = nuclei_slices(3, size=32)
    model = build_network(cfg, 1, "cpu", 0)
    return fit_fold(
        model, slices[:2], slices[2:], cfg, "cpu", time.monotonic() + 3600, watch=watch, on_epoch=on_epoch
    )


def _scalars(folder) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_loss_from_probabilities_is_the_loss_of_their_logits():
    # BCE of p = 0.5 against anything is ln 2; of p = 0.9 against all-foreground, -ln 0.9
    targets = [np.array([[[1, 0], [0, 1]]], np.float32), np.ones((1, 2, 2), np.float32)]
    probs = [np.full((1, 2, 2), 0.5, np.float32), np.full((1, 2, 2), 0.9, np.float32)]
    assert loss_from_probabilities(BCELoss(), probs, targets) == pytest.approx(
        (math.log(2) - math.log(0.9)) / 2, rel=1e-5
    )
    # certain: clamped to [1e-6, 1 - 1e-6], so right costs -ln(1 - 1e-6) ~ 1e-6 (float32: within 5 %) and
    # wrong costs -ln(1e-6) = 13.8, never inf or NaN
    certain = [np.array([[[1.0, 0.0]]], np.float32)]
    assert loss_from_probabilities(BCELoss(), certain, [np.array([[[1, 0]]], np.float32)]) == pytest.approx(
        1e-6, rel=5e-2
    )
    assert loss_from_probabilities(BCELoss(), certain, [np.array([[[0, 1]]], np.float32)]) == pytest.approx(
        -math.log(1e-6), rel=1e-3
    )


def test_validation_loss_is_in_every_validated_row():
    result = _fold(2)
    assert [row["epoch"] for row in result.history] == [1, 2]
    for row in result.history:  # the first and the last epoch always validate
        assert math.isfinite(row["val_loss"]) and row["val_loss"] > 0
        assert list(row)[:5] == ["fold", "epoch", "train_loss", "val_dice", "val_loss"]


def test_curves_png_exists_while_the_fold_still_trains(tmp_path):
    path = tmp_path / "curves_fold1.png"
    seen = []
    _fold(
        3,
        FoldWatch(path, "fold 1", every=0),
        on_epoch=lambda row: seen.append((row["epoch"], path.is_file() and path.stat().st_size > 0)),
    )
    assert seen == [(1, True), (2, True), (3, True)]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("every, draws", [(0, [1, 2, 3, "end"]), (3600, [1, "end"])])
def test_curves_are_redrawn_at_most_every_few_seconds_and_at_the_end(tmp_path, monkeypatch, every, draws):
    import paulow.watch

    drawn, epoch = [], {"now": 0}
    monkeypatch.setattr(paulow.watch, "plot_curves", lambda history, path, title: drawn.append(epoch["now"]))
    watch = FoldWatch(tmp_path / "c.png", every=every)
    history = []
    for n in (1, 2, 3):
        history.append({"epoch": n, "train_loss": 1.0 / n})
        epoch["now"] = n
        watch.epoch(history)
    epoch["now"] = "end"
    watch.close(history)
    assert drawn == draws


def test_tensorboard_has_losses_dice_per_class_and_regime_shares(tmp_path):
    rows = [
        {
            "fold": 1,
            "epoch": 1,
            "train_loss": 0.9,
            "val_dice": 0.5,
            "val_loss": 0.8,
            "lr": 0.002,
            "regime_empty": 2,
            "regime_small": 1,
            "regime_large": 1,
            "val_dice_1": 0.4,
            "val_dice_2": 0.6,
        },
        {
            "fold": 1,
            "epoch": 2,
            "train_loss": 0.7,
            "val_dice": None,
            "val_loss": None,
            "lr": 0.001,
            "regime_empty": 0,
            "regime_small": 0,
            "regime_large": 4,
        },
    ]
    watch = FoldWatch(None, tensorboard=tmp_path / "tb")
    for n in (1, 2):
        watch.epoch(rows[:n])
    watch.close(rows)
    scalars = _scalars(tmp_path / "tb")
    assert sorted(scalars) == [
        "dice/validation",
        "dice/validation_1",
        "dice/validation_2",
        "loss/train",
        "loss/validation",
        "lr",
        "regime_share/empty",
        "regime_share/large",
        "regime_share/small",
    ]
    assert scalars["loss/train"] == [(1, pytest.approx(0.9)), (2, pytest.approx(0.7))]
    assert scalars["loss/validation"] == [(1, pytest.approx(0.8))]  # epoch 2 did not validate
    assert scalars["dice/validation_2"] == [(1, pytest.approx(0.6))]
    assert scalars["regime_share/empty"] == [(1, 0.5), (2, 0.0)]
    assert scalars["regime_share/large"] == [(1, 0.25), (2, 1.0)]


def test_train_script_writes_val_loss_curves_and_tensorboard(tmp_path, capsys):
    import csv

    from paulow.cli import main
    from paulow.synthetic import write_dataset
    from paulow.workspace import Workspace

    ws = Workspace(tmp_path)
    write_dataset(ws.train_images, ws.train_masks, n=3, size=(64, 64), seed=0)
    code = main(
        [
            "train",
            "--root",
            str(tmp_path),
            "--name",
            "t",
            *TINY_TRAIN,
            "--epochs",
            "2",
            "--tensorboard",
            str(tmp_path / "tb"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    report = ws.models / "t_report"
    assert (report / "curves_fold1.png").is_file()
    with open(report / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(math.isfinite(float(row["val_loss"])) for row in rows)
    scalars = _scalars(tmp_path / "tb" / "t" / "fold1")
    assert [step for step, _ in scalars["loss/validation"]] == [1, 2]
    assert scalars["loss/validation"][1][1] == pytest.approx(float(rows[1]["val_loss"]))
    assert {"loss/train", "dice/validation", "regime_share/small"} <= set(scalars)


@pytest.mark.parametrize("command", ["train", "finetune"])
def test_tensorboard_without_the_package_is_one_error_line_before_any_work(
    tmp_path, monkeypatch, capsys, command
):
    from paulow.cli import main

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    code = main(
        [command, "--root", str(tmp_path / "missing"), "--yes", "--tensorboard", str(tmp_path / "tb")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert (
        len(err) == 1
        and err[0].startswith("error: --tensorboard")
        and "pip install paulow[tensorboard]" in err[0]
    )
    assert not (tmp_path / "missing").exists() and not (tmp_path / "tb").exists()
