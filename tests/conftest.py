"""Shared fixtures: one tiny model trained through the real `train_model.py`, reused by later tests."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from _workflow import TINY_TRAIN, run_script

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs pytest-xdist workers side by side: each gets its share of the cores for torch
    # (and the scripts it starts), so together they do not oversubscribe the machine. The tests of
    # the thread choice clear this variable themselves.
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // _workers)))
TRAIN_EPOCHS = "20"


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> dict:
    """Train once on synthetic nuclei through the real script; return the run's facts."""
    from paulow.synthetic import write_dataset
    from paulow.workspace import Workspace

    root = tmp_path_factory.mktemp("trained_ws")
    ws = Workspace(root)
    ws.setup()
    pairs = write_dataset(ws.train_images, ws.train_masks, kind="nuclei", n=8, size=(96, 96), seed=11)
    done = run_script(
        "train_model.py",
        "--root",
        str(root),
        "--name",
        "t",
        "--epochs",
        TRAIN_EPOCHS,
        "--seed",
        "0",
        *TINY_TRAIN,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return {
        "root": root,
        "ws": ws,
        "model": ws.models / "t.pth",
        "report": ws.models / "t_report",
        "inputs": pairs,
        "stdout": done.stdout,
    }


@pytest.fixture
def workspace_with_model(tmp_path, trained):
    """A fresh workspace holding a copy of the trained model."""
    from paulow.workspace import Workspace

    ws = Workspace(tmp_path)
    ws.setup()
    shutil.copy(trained["model"], ws.models / "t.pth")
    return ws


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())
