# ruff: noqa: F811 (the quick_ws fixture is imported)
"""Issue 29 part A, continued: SIGTERM/SIGHUP like Ctrl-C in every phase, leftover torchrun
variables, a full disk while saving (helpers in tests/test_safety.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _workflow import files
from test_hardening import quick_ws, untrained_model  # noqa: F401 (quick_ws: a fixture)
from test_safety import _image, _predict

from paulow import cli
from paulow.workspace import Workspace


# ---------------------------------------------------------------- SIGTERM like Ctrl-C
def _sigterm() -> None:
    import os
    import signal

    os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_while_reading_stops_and_keeps_every_input(quick_ws, monkeypatch, capsys):
    from paulow import io

    ws = quick_ws
    _image(ws.use_inputs / "a.tif", 40)
    real = io.read_image

    def read_then_term(path, *args, **kwargs):
        _sigterm()
        return real(path, *args, **kwargs)

    monkeypatch.setattr(io.read, "read_image", read_then_term)  # the reader's home, where segment finds it
    assert _predict(ws) == 143
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        "interrupted (SIGTERM): nothing was deleted; the input folders are as they were"
    )
    assert files(ws.use_inputs) == ["a.tif"] and files(ws.use_outputs) == []
    assert not (ws.root / ".paulow.lock").exists()
    import signal

    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handler is the caller's again


def test_sigterm_while_writing_masks_keeps_inputs_and_no_partial_file(quick_ws, monkeypatch, capsys):
    from paulow import io

    ws = quick_ws
    for i in range(2):
        _image(ws.use_inputs / f"in{i}.tif", 40, seed=i)
    real = io.tifffile.imwrite

    def write_then_term(path, *args, **kwargs):
        real(path, *args, **kwargs)
        if "in1_mask" in str(path):
            _sigterm()  # the mask's temporary is written, not yet renamed

    monkeypatch.setattr(io.tifffile, "imwrite", write_then_term)
    assert _predict(ws) == 143
    monkeypatch.setattr(io.tifffile, "imwrite", real)
    assert files(ws.use_inputs) == ["in0.tif", "in1.tif"]
    assert sorted(p.name for p in ws.use_outputs.iterdir()) == ["in0_mask.tif", "runs"]  # no temporary
    assert _predict(ws) == 0  # the rerun keeps in0's mask and writes in1's
    assert "in0.tif: kept in0_mask.tif from an interrupted run" in capsys.readouterr().out
    assert files(ws.use_outputs) == ["in0_mask.tif", "in1_mask.tif", "runs"] and files(ws.use_inputs) == []


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_sigterm_or_sighup_while_clearing_says_what_was_deleted_and_kept(
    quick_ws, monkeypatch, capsys, signame, request
):
    import os
    import signal

    # under `nohup make test` SIGHUP is ignored, and a run rightly leaves an ignored signal ignored:
    # restore the default for this test so the run installs its handler as in a terminal
    before = signal.signal(getattr(signal, signame), signal.SIG_DFL)
    request.addfinalizer(lambda: signal.signal(getattr(signal, signame), before))
    ws = quick_ws
    for i in range(4):
        _image(ws.use_inputs / f"in{i}.tif", 40, seed=i)
    real_unlink, calls = Path.unlink, []

    def unlink_then_signal(self, *args, **kwargs):
        real_unlink(self, *args, **kwargs)
        if self.parent == ws.use_inputs:
            calls.append(self)
            if len(calls) == 2:
                os.kill(os.getpid(), getattr(signal, signame))

    monkeypatch.setattr(Path, "unlink", unlink_then_signal)
    code = _predict(ws)
    monkeypatch.setattr(Path, "unlink", real_unlink)
    err = capsys.readouterr().err
    assert code == 128 + getattr(signal, signame)
    assert err.strip().splitlines()[-1] == (
        f"interrupted: stopped ({signame}) while clearing the inputs: 2 of 4 input file(s) were deleted "
        f"(in0.tif, in1.tif); the other 2 are kept in '{ws.use_inputs}'"
    )
    assert files(ws.use_inputs) == ["in2.tif", "in3.tif"]
    assert _predict(ws) == 0  # the rerun keeps the masks of the two kept inputs: no *_mask_2.tif
    assert files(ws.use_outputs) == [f"in{i}_mask.tif" for i in range(4)] + ["runs"]


def test_sigterm_during_an_epoch_keeps_inputs_and_the_resume_state(tmp_path, monkeypatch, capsys):
    import importlib

    import torch
    from _workflow import TINY_TRAIN

    from paulow.synthetic import write_dataset

    train = importlib.import_module("paulow.training.state")  # ProgressSaver
    ws = Workspace(tmp_path)
    ws.setup()
    write_dataset(ws.train_images, ws.train_masks, kind="nuclei", n=2, size=(64, 64), seed=1)
    state = ws.models / "m_report" / "resume_state.pth"
    real_init, real_step = train.ProgressSaver.__init__, torch.optim.AdamW.step

    def every_epoch(self, write, every=10.0):
        real_init(self, write, 0.0)

    def step_then_term(self, *args, **kwargs):
        if state.exists():  # an epoch is saved: stop in the next one
            _sigterm()
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(train.ProgressSaver, "__init__", every_epoch)
    monkeypatch.setattr(torch.optim.AdamW, "step", step_then_term)
    code = cli.main(
        [
            "train",
            "--root",
            str(tmp_path),
            "--name",
            "m",
            "--epochs",
            "3",
            "--optimizer",
            "adamw",
            *TINY_TRAIN,
        ]
    )
    out, err = capsys.readouterr()
    assert code == 143, err
    assert (
        "training stopped; nothing was deleted. To go on where it stopped: train_model.py --resume m" in out
    )
    assert "interrupted (SIGTERM)" in err and "Traceback" not in err
    assert state.is_file() and not (ws.models / "m.pth").exists()
    assert len(files(ws.train_images)) == 2 and len(files(ws.train_masks)) == 2


def test_a_background_run_with_sigint_ignored_stops_on_sigterm(quick_ws):
    """A job started with SIGINT ignored (`cmd &` in a script): SIGTERM stops it, exit 143."""
    import signal
    import subprocess
    import sys

    from _workflow import REPO

    ws = quick_ws
    untrained_model(ws.models / "u.pth")  # two models: the run asks which one, and waits there
    _image(ws.use_inputs / "a.tif", 40)
    proc = subprocess.Popen(
        [sys.executable, "-u", str(REPO / "use_model.py"), "--root", str(ws.root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    seen = ""
    while "Which model" not in seen:  # the prompt has no newline: read it character by character
        char = proc.stdout.read(1)
        assert char, proc.stderr.read()
        seen += char
    proc.send_signal(signal.SIGINT)  # ignored, as in a background job
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "interrupted (SIGTERM): nothing was deleted" in err and "Traceback" not in err
    assert files(ws.use_inputs) == ["a.tif"]


# ---------------------------------------------------------------- leftover torchrun variables
_UNSET = "unset WORLD_SIZE RANK LOCAL_RANK MASTER_ADDR MASTER_PORT (left over from an earlier torchrun?)"


@pytest.mark.parametrize(
    ("env", "says"),
    [
        (
            {"WORLD_SIZE": "abc", "RANK": "0"},
            "the environment sets WORLD_SIZE='abc' RANK='0', which are not whole numbers",
        ),
        ({"RANK": "1"}, "the environment sets RANK='1' without WORLD_SIZE"),
        ({"WORLD_SIZE": "2"}, "the environment sets WORLD_SIZE='2' without RANK"),
        (
            {"WORLD_SIZE": "2", "RANK": "2"},
            "the environment sets WORLD_SIZE='2' RANK='2' (RANK must be 0 to WORLD_SIZE - 1)",
        ),
    ],
)
@pytest.mark.parametrize("command", ["train", "predict"])
def test_leftover_torchrun_variables_are_one_line_naming_them(
    tmp_path, monkeypatch, capsys, env, says, command
):
    Workspace(tmp_path).setup()
    for key in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    extra = ["--name", "m"] if command == "train" else []
    assert cli.main([command, "--root", str(tmp_path), "--yes", *extra]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"error: {says}: {_UNSET}, or start the run with torchrun"]
    assert not list((tmp_path / "Use_Model" / "saved_models").iterdir())


def test_world_size_without_peers_gives_up_after_the_rendezvous_timeout(tmp_path, monkeypatch, capsys):
    import socket
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    Workspace(tmp_path).setup()
    for key, value in {
        "WORLD_SIZE": "2",
        "RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "PAULOW_DDP_RENDEZVOUS_TIMEOUT": "2",
    }.items():
        monkeypatch.setenv(key, value)
    start = time.monotonic()
    assert cli.main(["train", "--root", str(tmp_path), "--yes", "--name", "m"]) == 2
    assert time.monotonic() - start < 30
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(
        f"error: the other torchrun process(es) did not join at 127.0.0.1:{port} within 2 s "
        "(PAULOW_DDP_RENDEZVOUS_TIMEOUT; WORLD_SIZE=2, RANK=0; "
    )
    assert line.endswith(f"): start all of them with torchrun, or {_UNSET}")


# ---------------------------------------------------------------- a full disk
def test_disk_full_while_saving_the_resume_state_is_one_line(tmp_path, monkeypatch, capsys):
    import importlib
    import shutil
    from collections import namedtuple

    import torch
    from _workflow import TINY_TRAIN

    from paulow.synthetic import write_dataset

    train = importlib.import_module("paulow.training.state")  # ProgressSaver
    ws = Workspace(tmp_path)
    ws.setup()
    write_dataset(ws.train_images, ws.train_masks, kind="nuclei", n=2, size=(40, 40), seed=1)
    real_save, real_init = torch.save, train.ProgressSaver.__init__

    def full_for_states(obj, f, *args, **kwargs):
        if "resume_state" in str(f):
            raise RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 4736 vs 4632")
        return real_save(obj, f, *args, **kwargs)

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(torch, "save", full_for_states)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10 << 30, 10 << 30, 0))
    monkeypatch.setattr(
        train.ProgressSaver, "__init__", lambda self, write, every=10.0: real_init(self, write, 0.0)
    )
    code = cli.main(["train", "--root", str(tmp_path), "--name", "m", "--epochs", "2", *TINY_TRAIN])
    err = capsys.readouterr().err
    state = ws.models / "m_report" / "resume_state.pth"
    assert code == 2 and "Traceback" not in err
    assert (
        err.strip().splitlines()[-1]
        == f"error: {state}: disk full - free some space and rerun (the inputs were kept)"
    )
    assert len(files(ws.train_images)) == 2 and not (ws.models / "m.pth").exists()


def test_a_short_tiff_write_is_a_full_disk(quick_ws, monkeypatch, capsys):
    from paulow import io

    ws = quick_ws
    _image(ws.use_inputs / "a.tif", 40)

    def short(*args, **kwargs):
        raise OSError("16384 requested and 7856 written")

    monkeypatch.setattr(io.tifffile, "imwrite", short)
    assert _predict(ws) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        f"error: {ws.use_outputs / 'a_mask.tif'}: disk full - free some space "
        "and rerun (the inputs were kept)"
    )
    assert files(ws.use_inputs) == ["a.tif"]
