"""`train_model.py` end to end on synthetic data, and an interrupted run that deletes nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import torch
from _workflow import REPO, TINY_TRAIN, default_sigint, files
from conftest import read_json

from paulow.checkpoint import load_checkpoint

# Synthetic nuclei sit on an uneven background with noise: a global Otsu threshold scores 0.855 Dice
# on average (0.69-0.93 per image, 40 seeds); 20 epochs of the width-8 network reached a validation
# Dice of 0.966 and 0.968 with seeds 0 and 1. 0.88 is clearly above the threshold baseline and leaves
# room for run-to-run noise. The test share is a single image, so it gets only a sanity bound.
MIN_VAL_DICE = 0.88
MIN_TEST_DICE = 0.75


def test_train_script_leaves_a_model_a_report_and_empty_inputs(trained):
    ws, model = trained["ws"], trained["model"]
    loaded = load_checkpoint(model)
    meta = loaded.meta
    assert meta["arch"] == "paulow_attention_unet" and meta["arch_args"]["width"] == 8
    assert meta["metrics"]["folds"][0]["val_dice"] > MIN_VAL_DICE
    assert meta["metrics"]["test_dice"] > MIN_TEST_DICE
    assert len(meta["training_files"]) == 8 and len(meta["training_files"][0]["sha256"]) == 64
    assert len(meta["split"]["test"]) == 1  # 10 % of 8 images, at least one
    raw = torch.load(model, weights_only=True)
    assert raw["meta"]["normalisation"] == {"method": "percentile", "low": 1.0, "high": 99.8}
    report = trained["report"]
    for name in (
        "curves_fold1.png",
        "history.csv",
        "metrics.json",
        "metrics.csv",
        "config.json",
        "options.json",
        "dataset_summary.json",
        "loss_regimes.csv",
        "train.log",
        "fold1_epoch001.png",
    ):
        assert (report / name).is_file(), name
    assert read_json(report / "dataset_summary.json")["summary"]
    assert files(ws.train_images) == [] and files(ws.train_masks) == []
    out = trained["stdout"]
    assert "parameters" in out and "estimated training time" in out and "test Dice" in out


def test_existing_name_is_refused_without_overwrite(trained):
    from paulow.synthetic import write_dataset

    ws = trained["ws"]
    write_dataset(ws.train_images, ws.train_masks, n=3, size=(64, 64), seed=5)
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "train_model.py"),
            "--root",
            str(trained["root"]),
            "--name",
            "t",
            *TINY_TRAIN,
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "a model named 't' already exists" in done.stderr and "--overwrite" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(files(ws.train_images)) == 3  # nothing consumed


def test_no_answer_on_stdin_names_the_flag(tmp_path):
    from paulow.synthetic import write_dataset
    from paulow.workspace import Workspace

    ws = Workspace(tmp_path)
    ws.setup()
    write_dataset(ws.train_images, ws.train_masks, n=2, size=(32, 32), seed=5)
    done = subprocess.run(
        [sys.executable, str(REPO / "train_model.py"), "--root", str(tmp_path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "no answer on standard input" in done.stderr and "--name NAME" in done.stderr
    assert "Traceback" not in done.stderr


def test_interrupted_training_deletes_nothing(tmp_path):
    from paulow.synthetic import write_dataset
    from paulow.workspace import Workspace

    ws = Workspace(tmp_path)
    ws.setup()
    write_dataset(ws.train_images, ws.train_masks, n=4, size=(64, 64), seed=3)
    before = files(ws.train_images) + files(ws.train_masks)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-u",
            str(REPO / "train_model.py"),
            "--root",
            str(tmp_path),
            "--name",
            "x",
            *TINY_TRAIN,
            "--epochs",
            "1000",
            "--patience",
            "100000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    for line in proc.stdout:  # wait until training has started
        if line.startswith("fold 1/1"):
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "nothing was deleted" in err and "Traceback" not in err
    assert files(ws.train_images) + files(ws.train_masks) == before
    # no model file and no temporary file; the log of the interrupted run stays in its report folder
    assert [p.name for p in ws.models.iterdir() if p.is_file()] == []
    assert not (tmp_path / ".paulow.lock").exists()
