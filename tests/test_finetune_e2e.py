"""`finetune_model.py`: adapts a model to a shifted domain, never touches the parent, keeps inputs safe."""

from __future__ import annotations

import signal
import subprocess
import sys

import numpy as np
import tifffile
from _workflow import REPO, default_sigint, files, run_script

from paulow.checkpoint import load_checkpoint, sha256_file
from paulow.synthetic import write_dataset

TUNE = [
    "--yes",
    "--model",
    "t",
    "--patch",
    "64",
    "--overlap",
    "32",
    "--batch-size",
    "8",
    "--per-epoch",
    "0",
    "--time-limit",
    "0",
    "--patience",
    "100",
    "--seed",
    "0",
]
# The parent learned bright nuclei on a dark background. The new domain has inverted contrast (dark
# nuclei on a bright background, as in transmitted light): when this test was written the parent
# scored 0.001 held-out Dice there and 8 epochs of fine-tuning reached 0.88. A gain of 0.3 is a clear
# effect with a wide margin for run-to-run noise.
MIN_GAIN = 0.3


def _inverted_nuclei(ws, n=6, seed=21):
    """New-domain images: synthetic nuclei with inverted contrast."""
    pairs = write_dataset(ws.finetune_images, ws.finetune_masks, kind="nuclei", n=n, size=(96, 96), seed=seed)
    for image_path, _ in pairs:
        tifffile.imwrite(image_path, 255 - tifffile.imread(image_path))


def test_finetune_beats_the_parent_and_never_touches_it(workspace_with_model):
    ws = workspace_with_model
    parent_sha = sha256_file(ws.models / "t.pth")
    _inverted_nuclei(ws)
    done = run_script(
        "finetune_model.py",
        "--root",
        str(ws.root),
        *TUNE,
        "--epochs",
        "8",
        "--holdout",
        "0.34",
        "--lr",
        "0.002",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "held-out Dice of the parent model" in done.stdout
    meta = load_checkpoint(ws.models / "t_finetuned.pth").meta
    scores = meta["finetune"]["scores"]
    assert scores["held_out_images"] == 2
    assert scores["finetuned_dice"] - scores["parent_dice"] > MIN_GAIN, scores
    assert meta["parent"] == {"name": "t.pth", "sha256": parent_sha}
    assert sha256_file(ws.models / "t.pth") == parent_sha
    assert files(ws.finetune_images) == [] and files(ws.finetune_masks) == []
    assert (ws.models / "t_finetuned_report" / "scores.json").is_file()
    assert (ws.models / "t_finetuned_report" / "curves.png").is_file()
    # a second fine-tune of the same parent never overwrites the first
    _inverted_nuclei(ws, n=3, seed=5)
    done = run_script(
        "finetune_model.py",
        "--root",
        str(ws.root),
        *TUNE,
        "--epochs",
        "1",
        "--tensorboard",
        str(ws.root / "tb"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert {"t_finetuned.pth", "t_finetuned_2.pth"} <= set(files(ws.models))
    assert [p.name.split(".")[0] for p in (ws.root / "tb" / "t_finetuned_2").iterdir()] == ["events"]
    assert sha256_file(ws.models / "t.pth") == parent_sha


def test_channel_mismatch_fails_before_training(workspace_with_model):
    ws = workspace_with_model
    for i in (1, 2):
        tifffile.imwrite(
            ws.finetune_images / f"image{i}.tif", np.zeros((32, 32, 3), np.uint8), photometric="rgb"
        )
        tifffile.imwrite(ws.finetune_masks / f"mask{i}.tif", np.zeros((32, 32), np.uint8))
    done = run_script("finetune_model.py", "--root", str(ws.root), *TUNE)
    assert done.returncode == 2
    assert "'image1.tif' has 3 channel(s) but the model expects 1" in done.stderr
    assert "fine-tuning" not in done.stdout  # no training started
    assert len(files(ws.finetune_images)) == 2


def test_interrupted_finetune_keeps_inputs(workspace_with_model):
    ws = workspace_with_model
    _inverted_nuclei(ws, n=4)
    before = files(ws.finetune_images) + files(ws.finetune_masks)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-u",
            str(REPO / "finetune_model.py"),
            "--root",
            str(ws.root),
            *TUNE,
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
    for line in proc.stdout:
        if line.startswith("held-out Dice of the parent"):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "nothing was deleted" in err
    assert files(ws.finetune_images) + files(ws.finetune_masks) == before
    assert "t_finetuned.pth" not in files(ws.models)


def test_check_scores_both_models_on_old_domain_images(workspace_with_model, tmp_path):
    """--check: both models' Dice on other images, each as its file is used. Every fine-tune image is
    the same picture, and so is the one --check image: its Dice must equal the held-out Dice exactly."""
    ws = workspace_with_model
    _inverted_nuclei(ws, n=1)
    image, mask = ws.finetune_images / "image1.tif", ws.finetune_masks / "mask1.tif"
    check = tmp_path / "check_images", tmp_path / "check_masks"
    for folder, source in zip(check, (image, mask)):
        folder.mkdir()
        (folder / source.name).write_bytes(source.read_bytes())
    for i in (2, 3, 4):
        (ws.finetune_images / f"image{i}.tif").write_bytes(image.read_bytes())
        (ws.finetune_masks / f"mask{i}.tif").write_bytes(mask.read_bytes())
    done = run_script(
        "finetune_model.py", "--root", str(ws.root), *TUNE, "--epochs", "1", "--check", *map(str, check)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    scores = load_checkpoint(ws.models / "t_finetuned.pth").meta["finetune"]["scores"]
    assert scores["check_images"] == 1 and scores["held_out_images"] == 1
    assert scores["check_parent_dice"] == scores["parent_dice"]
    assert scores["check_finetuned_dice"] == scores["finetuned_dice"]
    assert (
        f"old-domain Dice ({check[0]}): parent {scores['parent_dice']:.4f}, "
        f"fine-tuned {scores['finetuned_dice']:.4f}"
    ) in done.stdout
    assert files(check[0]) == ["image1.tif"] and files(check[1]) == ["mask1.tif"]  # never cleared
