"""Resuming a stopped training run: the state file, the checks, and going on where it stopped."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import torch
from _workflow import REPO, TINY_TRAIN, default_sigint, files, nuclei_slices

from paulow import resume as resume_file
from paulow.config import TrainConfig
from paulow.errors import UsageError
from paulow.training.cross_validation import cross_validate
from paulow.training.state import ProgressSaver

CFG = TrainConfig(
    width=4,
    depth=2,
    patch=32,
    overlap=16,
    batch_size=4,
    per_epoch=8,
    epochs=5,
    folds=2,
    test_fraction=0.0,
    time_limit=None,
    patience=100,
    device="cpu",
    tune_threshold=False,
    augment=False,
)


class Stop(Exception):
    """Stands in for Ctrl-C at a chosen moment."""


def _interrupted_state(stop_after: int) -> dict:
    """Run until the `stop_after`-th saved state, then stop; return that state."""
    saved: list[dict] = []

    def write(state: dict) -> None:
        saved.append(state)
        if len(saved) == stop_after:
            raise Stop

    with pytest.raises(Stop):
        cross_validate(
            nuclei_slices(), CFG, "cpu", echo=lambda _: None, progress=ProgressSaver(write, every=0)
        )
    return saved[-1]


def test_state_after_each_epoch_then_a_forced_one_after_each_fold():
    # fold 1 runs 5 epochs: states after epochs 1-4 (the last epoch ends the fold), then the fold's own
    state = _interrupted_state(stop_after=5)
    assert state["current"] is None and len(state["folds"]) == 1
    assert state["folds"][0]["fold"] == 0 and len(state["folds"][0]["history"]) == 5
    state = _interrupted_state(stop_after=3)
    assert state["folds"] == [] and state["current"]["epoch"] == 3
    assert [row["epoch"] for row in state["current"]["history"]] == [1, 2, 3]
    assert state["current"]["step"] == 3 * 2  # 8 patches a epoch in batches of 4


def test_resume_file_loads_with_weights_only_and_goes_on_after_the_saved_epoch(tmp_path):
    state = _interrupted_state(stop_after=7)  # fold 1 done, fold 2 after epoch 2
    path = tmp_path / resume_file.RESUME_FILE
    resume_file.save_state(path, "m", {"width": 4}, {"a.tif": "0" * 64}, state)
    payload = torch.load(path, weights_only=True)
    assert payload["name"] == "m" and payload["state"]["current"]["epoch"] == 2
    loaded = resume_file.load_state(path)
    lines: list[str] = []
    result = cross_validate(nuclei_slices(), CFG, "cpu", echo=lines.append, resume=loaded["state"])
    assert len(result.folds) == 2
    assert any("fold 1/2: finished before the interruption" in line for line in lines)
    assert any("going on after epoch 2" in line for line in lines)
    # fold 1 is the saved one, unchanged; fold 2 has all five epochs, three of them run now
    saved = state["folds"][0]["state_dict"]
    assert saved.keys() == result.folds[0].state_dict.keys()
    assert all(torch.equal(saved[k], result.folds[0].state_dict[k]) for k in saved)
    assert [row["epoch"] for row in result.folds[1].history] == [1, 2, 3, 4, 5]
    assert result.folds[1].history[:2] == state["current"]["history"]


def test_check_inputs_names_missing_new_and_changed_files():
    resume_file.check_inputs({"a": "1", "b": "2"}, {"a": "1", "b": "2"})
    with pytest.raises(UsageError) as info:
        resume_file.check_inputs({"a": "1", "b": "2", "c": "3"}, {"a": "9", "b": "2", "d": "4"})
    message = str(info.value)
    assert "missing: c" in message and "new: d" in message and "changed: a" in message
    assert "without --resume" in message


def test_find_state_picks_by_name_and_explains_when_there_is_none(tmp_path):
    with pytest.raises(UsageError, match="no stopped training run"):
        resume_file.find_state(tmp_path, True)
    for name in ("alpha", "beta"):
        (tmp_path / f"{name}_report").mkdir()
        (tmp_path / f"{name}_report" / resume_file.RESUME_FILE).write_bytes(b"x")
    assert resume_file.find_state(tmp_path, "beta").parent.name == "beta_report"
    with pytest.raises(UsageError, match="choose one of"):
        resume_file.find_state(tmp_path, "gamma")


def test_a_file_that_is_not_a_resume_state_is_refused(tmp_path):
    path = tmp_path / resume_file.RESUME_FILE
    path.write_bytes(b"not a torch file")
    with pytest.raises(UsageError, match="cannot read the resume file"):
        resume_file.load_state(path)
    torch.save({"format": "something else"}, path)
    with pytest.raises(UsageError, match="not a PAULow resume file"):
        resume_file.load_state(path)


def test_train_script_stopped_by_ctrl_c_resumes_with_resume(tmp_path):
    from paulow.synthetic import write_dataset
    from paulow.workspace import Workspace

    ws = Workspace(tmp_path)
    ws.setup()
    write_dataset(ws.train_images, ws.train_masks, n=4, size=(64, 64), seed=3)
    args = [sys.executable, "-u", str(REPO / "train_model.py"), "--root", str(tmp_path)]
    proc = subprocess.Popen(
        [*args, "--name", "r", *TINY_TRAIN, "--folds", "2", "--test-fraction", "0", "--epochs", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    for line in proc.stdout:  # fold 1 is finished (and saved) once fold 2 starts
        if line.startswith("fold 2/2"):
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "train_model.py --resume r" in out
    state = ws.models / "r_report" / resume_file.RESUME_FILE
    assert state.is_file() and not (ws.models / "r.pth").exists()

    done = subprocess.run([*args, "--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resuming 'r'" in done.stdout and "fold 1/2: finished before the interruption" in done.stdout
    assert (ws.models / "r.pth").is_file() and not state.exists()
    assert files(ws.train_images) == [] and files(ws.train_masks) == []
    from paulow.checkpoint import load_checkpoint

    meta = load_checkpoint(ws.models / "r.pth").meta
    assert [f["epochs_run"] for f in meta["metrics"]["folds"]] == [3, 3]


def test_resume_refuses_changed_training_files(tmp_path):
    from paulow.synthetic import write_dataset
    from paulow.workspace import Workspace

    ws = Workspace(tmp_path)
    ws.setup()
    write_dataset(ws.train_images, ws.train_masks, n=2, size=(32, 32), seed=1)
    inputs = files(ws.train_images) + files(ws.train_masks)
    from paulow.workspace import fingerprints

    hashes = resume_file.input_hashes(
        fingerprints([*ws.train_images.iterdir(), *ws.train_masks.iterdir()]), ws.root
    )
    hashes[next(iter(hashes))] = "0" * 64  # as if an image had been edited since
    resume_file.save_state(
        ws.models / "old_report" / resume_file.RESUME_FILE,
        "old",
        {"width": 4},
        hashes,
        {"seconds": 1.0, "folds": [], "current": None},
    )
    done = subprocess.run(
        [sys.executable, str(REPO / "train_model.py"), "--root", str(tmp_path), "--resume"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert "changed:" in done.stderr and "Traceback" not in done.stderr
    assert files(ws.train_images) + files(ws.train_masks) == inputs
