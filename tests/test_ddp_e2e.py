"""`torchrun --nproc_per_node 2` on the real scripts, on the CPU with gloo: one model, one report,
every file segmented once, inputs cleared once, resume, and no hang when a rank fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from _workflow import REPO, TINY_TRAIN, default_sigint, files
from test_distributed import _free_port

from paulow.workspace import Workspace

pytestmark = pytest.mark.slow
TRAIN = ["--device", "cpu", *TINY_TRAIN, "--batch-size", "4", "--seed", "0"]


def torchrun(script: str | Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """`python -m torch.distributed.run --nproc_per_node 2 SCRIPT ARGS`, as a user starts it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(_free_port()),
        str(REPO / script),
        *args,
    ]
    return subprocess.run(
        cmd,
        text=True,
        capture_output=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
        preexec_fn=default_sigint,
        cwd=REPO.parent,
    )


def training_workspace(root: Path) -> Workspace:
    from paulow.synthetic import write_dataset

    ws = Workspace(root)
    ws.setup()
    write_dataset(ws.train_images, ws.train_masks, kind="nuclei", n=4, size=(64, 64), seed=3)
    return ws


def test_torchrun_trains_one_model_and_segments_every_file_once(tmp_path):
    from paulow.api import SegmentOptions, load_model, segment_file
    from paulow.checkpoint import load_checkpoint
    from paulow.io import read_mask
    from paulow.synthetic import write_dataset

    ws = training_workspace(tmp_path / "ws")
    # a time limit far below 1000 epochs: rank 0's clock stops both ranks (mid-epoch or after one)
    done = torchrun(
        "train_model.py",
        "--root",
        str(ws.root),
        "--name",
        "x",
        *TRAIN,
        "--epochs",
        "1000",
        "--time-limit",
        "0.1",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert files(ws.models) == ["x.pth", "x_report"]
    assert files(ws.train_images) == [] and files(ws.train_masks) == []
    for line in ("saved model:", "cleared 8 input file(s) from Train_Model", "plan: 1 fold(s)"):
        assert done.stdout.count(line) == 1, done.stdout  # rank 0 alone speaks
    assert "Traceback" not in done.stderr
    meta = load_checkpoint(ws.models / "x.pth").meta
    assert meta["metrics"]["folds"][0]["stopped"] == "time limit"
    assert 1 <= meta["metrics"]["folds"][0]["epochs_run"] < 1000
    assert not (ws.root / ".paulow.lock").exists()
    # 2 training images: 2 grid patches + 1 random crop, 2 per rank after the sampler pads them, so
    # each epoch is one step of a batch of 4 on each rank, and the history counts both ranks' steps
    history = (ws.models / "x_report" / "history.csv").read_text().splitlines()
    rows = [dict(zip(history[0].split(","), line.split(","))) for line in history[1:]]
    assert rows and all(row["patches"] == "8" for row in rows)

    write_dataset(ws.use_inputs, tmp_path / "unused_masks", kind="nuclei", n=5, size=(64, 64), seed=7)
    inputs = files(ws.use_inputs)
    originals = {name: (ws.use_inputs / name).read_bytes() for name in inputs}
    done = torchrun("use_model.py", "--root", str(ws.root), "--model", "x", "--device", "cpu", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    masks = [f"{Path(name).stem}_mask.tif" for name in inputs]
    assert files(ws.use_outputs) == sorted(masks + ["runs"]) and files(ws.use_inputs) == []
    assert done.stdout.count("cleared 5 input file(s) from INPUT_IMAGES") == 1
    records = list((ws.use_outputs / "runs").iterdir())
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert [f["input"] for f in record["files"]] == inputs
    assert [f["outputs"] for f in record["files"]] == [[m] for m in masks]

    loaded = load_model(ws.models / "x.pth")
    for name, m in zip(inputs, masks):  # sharding the files changes no mask: one process, in here
        (tmp_path / name).write_bytes(originals[name])
        segment_file(loaded, tmp_path / name, tmp_path, SegmentOptions(device="cpu"))
        sharded, single = read_mask(ws.use_outputs / m), read_mask(tmp_path / m)
        # a rank runs with fewer threads, so its float sums differ in the last bits: a pixel whose
        # probability sits on the threshold may flip (1 of 4,096 seen in CI), never more
        assert sharded.shape == single.shape and np.count_nonzero(sharded != single) <= 4

    # a file rank 1 cannot read (second by sorted name): its input stays, the others are cleared
    write_dataset(
        ws.use_inputs,
        tmp_path / "unused_masks2",
        kind="nuclei",
        n=2,
        size=(64, 64),
        seed=9,
        image_name="more{i}.tif",
    )
    (ws.use_inputs / "more1b.tif").write_bytes(b"not a tiff")
    done = torchrun("use_model.py", "--root", str(ws.root), "--model", "x", "--device", "cpu", "--yes")
    assert done.returncode != 0
    assert files(ws.use_inputs) == ["more1b.tif"]
    assert done.stdout.count("1 file(s) failed and were kept in INPUT_IMAGES") == 1
    assert {"more1_mask.tif", "more2_mask.tif"} <= set(files(ws.use_outputs))


def test_torchrun_resumes_a_stopped_run(tmp_path):
    from dataclasses import asdict

    from paulow import resume as resume_file
    from paulow.checkpoint import load_checkpoint
    from paulow.cli import build_parser
    from paulow.commands.common import config_from_args, read_fingerprints
    from paulow.pair_loading import load_pairs
    from paulow.training.cross_validation import cross_validate
    from paulow.training.state import ProgressSaver

    ws = training_workspace(tmp_path)
    args = build_parser(tmp_path).parse_args(
        ["train", *TRAIN, "--folds", "2", "--test-fraction", "0", "--epochs", "3", "--no-boundary-target"]
    )  # as settled
    cfg = config_from_args(args, "cpu")
    slices = load_pairs(ws.train_images, ws.train_masks, cfg.classes)
    saved: list[dict] = []

    class Stop(Exception):
        pass

    def write(state: dict) -> None:  # fold 1: after epochs 1, 2 and the fold; fold 2: after epoch 1
        saved.append(state)
        if len(saved) == 4:
            raise Stop

    with pytest.raises(Stop):
        cross_validate(slices, cfg, "cpu", echo=lambda _: None, progress=ProgressSaver(write, every=0))
    read_as = read_fingerprints(ws.train_images, ws.train_masks)
    resume_file.save_state(
        ws.models / "r_report" / resume_file.RESUME_FILE,
        "r",
        asdict(cfg),
        resume_file.input_hashes(read_as, ws.root),
        saved[-1],
    )

    done = torchrun("train_model.py", "--root", str(tmp_path), "--resume", "--device", "cpu")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("resuming 'r'") == 1
    assert "fold 1/2: finished before the interruption" in done.stdout
    assert "going on after epoch 1" in done.stdout
    assert files(ws.models) == ["r.pth", "r_report"]
    assert not (ws.models / "r_report" / resume_file.RESUME_FILE).exists()
    meta = load_checkpoint(ws.models / "r.pth").meta
    assert [f["epochs_run"] for f in meta["metrics"]["folds"]] == [3, 3]
    assert files(ws.train_images) == [] and files(ws.train_masks) == []


FAILING_RANK = textwrap.dedent("""
    # train_model.py, but rank 1 fails at its second training step
    import os, sys
    sys.path.insert(0, {repo!r})
    import paulow.training.epoch as epoch  # run_epoch calls its train_step

    if os.environ["RANK"] == "1":
        step, calls = epoch.train_step, []

        def failing_step(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise RuntimeError("rank 1 fails on purpose")
            return step(*args, **kwargs)

        epoch.train_step = failing_step
    from paulow.cli import script_main
    script_main("train", {script!r})
""")


def test_a_failing_rank_ends_the_run_quickly_and_deletes_nothing(tmp_path):
    ws = training_workspace(tmp_path / "ws")
    before = files(ws.train_images) + files(ws.train_masks)
    script = tmp_path / "failing_train.py"
    script.write_text(FAILING_RANK.format(repo=str(REPO), script=str(REPO / "train_model.py")))
    start = time.monotonic()
    done = torchrun(script, "--root", str(ws.root), "--name", "x", *TRAIN, "--epochs", "1000", timeout=180)
    assert done.returncode != 0
    assert time.monotonic() - start < 120  # the other rank did not wait for the collective's timeout
    assert "rank 1 fails on purpose" in done.stderr
    assert not (ws.models / "x.pth").exists()
    assert files(ws.train_images) + files(ws.train_masks) == before


def test_only_rank_0_asks_and_its_error_is_reported_once(tmp_path):
    ws = training_workspace(tmp_path)
    before = files(ws.train_images) + files(ws.train_masks)
    done = torchrun("train_model.py", "--root", str(tmp_path), "--device", "cpu", timeout=180)  # no --name
    assert done.returncode != 0
    assert done.stdout.count("Name for the new model") == 1
    assert (
        done.stderr.count("error: no answer on standard input to 'Name for the new model': pass --name") == 1
    )
    # no worker traceback (torchrun itself summarises the failed processes after it)
    assert "error (rank 1)" not in done.stderr and "[rank" not in done.stderr
    assert files(ws.train_images) + files(ws.train_masks) == before and files(ws.models) == []
