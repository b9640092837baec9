"""Multi-class end to end through the scripts (issue 11): train_model.py --classes 3 on synthetic
discs/squares, use_model.py, then `paulow evaluate --model` with the model's class count."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import tifffile
from _workflow import TINY_TRAIN, run_script

from paulow import io
from paulow.synthetic import classes_image, write_dataset

NAMES = ["background", "disc", "square"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from paulow.workspace import Workspace

    root = tmp_path_factory.mktemp("mc_ws")
    ws = Workspace(root)
    ws.setup()
    write_dataset(ws.train_images, ws.train_masks, kind="classes", n=6, size=(64, 64), seed=5)
    done = run_script(
        "train_model.py",
        "--root",
        str(root),
        "--name",
        "mc",
        "--classes",
        "3",
        "--class-names",
        ",".join(NAMES),
        "--epochs",
        "200",
        "--seed",
        "0",
        *TINY_TRAIN,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return ws, done.stdout


def test_training_reports_every_class(trained):
    ws, stdout = trained
    metrics = json.loads((ws.models / "mc_report" / "metrics.json").read_text())
    per_class = metrics["test_dice_per_class"]
    assert list(per_class) == NAMES
    assert metrics["test_dice"] == pytest.approx((per_class["disc"] + per_class["square"]) / 2)
    assert per_class["disc"] > 0.5 and per_class["square"] > 0.5  # both classes learnt (~1 step an epoch)
    assert f"test Dice {metrics['test_dice']:.4f} (mean over foreground classes; disc " in stdout
    with open(ws.models / "mc_report" / "history.csv", newline="") as f:
        header = next(csv.reader(f))
    assert {"val_dice_background", "val_dice_disc", "val_dice_square"} <= set(header)


def test_use_model_writes_class_masks_with_a_lut_and_class_tables(trained):
    ws, _ = trained
    for seed in (101, 102):
        image, _ = classes_image((64, 64), classes=3, seed=seed)
        tifffile.imwrite(ws.use_inputs / f"new{seed}.tif", image)
    done = run_script(
        "use_model.py",
        "--root",
        str(ws.root),
        "--model",
        "mc",
        "--yes",
        "--save-prob",
        "--overlay",
        "--instances",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with tifffile.TiffFile(ws.use_outputs / "new101_mask.tif") as tif:
        mask = tif.asarray()
        lut = np.asarray(tif.imagej_metadata["LUTs"]).reshape(3, 256)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1, 2}
    np.testing.assert_array_equal(lut, io.class_lut(3))
    with tifffile.TiffFile(ws.use_outputs / "new101_prob.tif") as tif:
        prob = tif.asarray()
        assert tif.imagej_metadata["Labels"] == NAMES
    assert prob.shape == (3, 64, 64)
    np.testing.assert_allclose(prob.sum(axis=0), 1.0, atol=1e-4)
    np.testing.assert_array_equal(prob.argmax(axis=0), mask)
    with open(ws.use_outputs / "objects.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["class"] for r in rows} <= {"disc", "square"}
    with open(ws.use_outputs / "summary.csv", newline="") as f:
        summary = list(csv.DictReader(f))
    for row in summary:
        assert int(row["objects"]) == int(row["objects_disc"]) + int(row["objects_square"])


def test_evaluate_model_uses_its_class_count_and_names(trained, tmp_path, capsys):
    from paulow.cli import main

    ws, _ = trained
    images, truth = tmp_path / "images", tmp_path / "truth"
    write_dataset(images, truth, kind="classes", n=2, size=(64, 64), seed=77)
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(ws.models / "mc.pth"),
                "--images",
                str(images),
                "--truth",
                str(truth),
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "mean (foreground)" in out and "\nsquare " in out and "\ndisc " in out
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(ws.models / "mc.pth"),
                "--images",
                str(images),
                "--truth",
                str(truth),
                "--classes",
                "2",
            ]
        )
        == 2
    )
    assert "--classes 2 but model 'mc.pth' has 3 class(es)" in capsys.readouterr().err


def test_a_mask_value_beyond_the_classes_is_one_error_line(tmp_path):
    from paulow.workspace import Workspace

    ws = Workspace(tmp_path)
    ws.setup()
    write_dataset(ws.train_images, ws.train_masks, kind="classes", n=2, size=(32, 32), seed=1, classes=4)
    done = run_script(
        "train_model.py", "--root", str(tmp_path), "--name", "bad", "--classes", "3", *TINY_TRAIN
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "error: mask 'mask1.tif' has values 0, 1, 2, 3 but --classes 3 allows 0..2 (and 1 more mask(s): "
        "mask2.tif) — use --classes 4 if the mask has that many classes (0 = background), or fix the mask "
        "to hold 0..2"
    )
    assert "Traceback" not in done.stderr
