# ruff: noqa: F811 (the quick_ws fixture is imported)
"""Issue 29 part A: run records that cannot clear the wrong input, one bad entry refused alone, the
rerun after SIGKILL, a lock that survives tampering, --resume names (signals: test_safety_signals.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from _workflow import files
from test_hardening import quick_ws, untrained_model  # noqa: F401 (quick_ws: a fixture)

from paulow import cli
from paulow.workspace import Workspace


class Killed(BaseException):
    """As if the run were SIGKILLed at this point."""


def _image(path: Path, size: int, seed: int = 0) -> Path:
    from paulow.synthetic import nuclei_image

    tifffile.imwrite(path, nuclei_image((size, size), seed=seed)[0])
    return path


def _predict(ws: Workspace, *extra: str) -> int:
    return cli.main(["predict", "--root", str(ws.root), "--model", "t", "--yes", *extra])


def _records(ws: Workspace) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((ws.use_outputs / "runs").iterdir())]


# ---------------------------------------------------------------- run records
def test_a_stale_record_never_keeps_another_images_mask(quick_ws, monkeypatch, capsys):
    """Finding 1: X segmented and killed before finishing; rerun; Y under the same name; X again."""
    from paulow.commands import segment

    ws = quick_ws
    x = _image(ws.use_inputs / "image_001.tif", 40).read_bytes()
    real_finish = segment._finish

    def killed(*args, **kwargs):
        raise Killed

    monkeypatch.setattr(segment, "_finish", killed)
    with pytest.raises(Killed):
        _predict(ws)
    x_mask = (ws.use_outputs / "image_001_mask.tif").read_bytes()
    monkeypatch.setattr(segment, "_finish", real_finish)
    assert _predict(ws) == 0  # keeps X's mask, clears X, settles the killed run's record
    assert "image_001.tif: kept image_001_mask.tif from an interrupted run" in capsys.readouterr().out
    killed_record, finished_record = sorted((ws.use_outputs / "runs").iterdir())
    assert json.loads(killed_record.read_text())["files"][0]["settled_by"] == finished_record.name
    (ws.use_outputs / "image_001_mask.tif").unlink()  # the user moves the masks away
    _image(ws.use_inputs / "image_001.tif", 48)  # Y, another image of the same name
    assert _predict(ws) == 0
    y_mask = (ws.use_outputs / "image_001_mask.tif").read_bytes()
    (ws.use_inputs / "image_001.tif").write_bytes(x)  # X again
    assert _predict(ws) == 0
    out = capsys.readouterr().out
    assert "from an interrupted run" not in out
    assert (ws.use_outputs / "image_001_mask.tif").read_bytes() == y_mask  # Y's mask untouched
    assert (ws.use_outputs / "image_001_mask_2.tif").read_bytes() == x_mask  # X segmented again
    assert [r["finished"] is not None for r in _records(ws)] == [False, True, True, True]


def test_a_forged_record_naming_a_file_outside_the_outputs_keeps_nothing(quick_ws, capsys):
    """Finding 2: an unfinished record whose output is `../../outside.txt` with its real hash."""
    from paulow.checkpoint import sha256_file

    ws = quick_ws
    _image(ws.use_inputs / "a.tif", 40)
    assert _predict(ws, "--keep-inputs") == 0
    (record,) = (ws.use_outputs / "runs").iterdir()
    outside = ws.root / "outside.txt"
    outside.write_text("someone else's file")
    data = json.loads(record.read_text())
    data["finished"] = None
    data["files"][0]["outputs"] = ["../../outside.txt"]
    data["files"][0]["outputs_sha256"] = [sha256_file(outside)]
    record.write_text(json.dumps(data))
    (ws.use_outputs / "a_mask.tif").unlink()
    assert _predict(ws) == 0
    assert "from an interrupted run" not in capsys.readouterr().out
    assert files(ws.use_outputs) == ["a_mask.tif", "runs"]  # segmented again
    assert files(ws.use_inputs) == [] and outside.read_text() == "someone else's file"


def test_a_record_whose_output_changed_is_not_reused(quick_ws, capsys):
    ws = quick_ws
    _image(ws.use_inputs / "a.tif", 40)
    assert _predict(ws, "--keep-inputs") == 0
    (record,) = (ws.use_outputs / "runs").iterdir()
    data = json.loads(record.read_text())
    data["finished"] = None
    record.write_text(json.dumps(data))
    mask = ws.use_outputs / "a_mask.tif"
    tifffile.imwrite(mask, np.full((40, 40), 255, np.uint8))  # another mask under the recorded name
    assert _predict(ws) == 0
    assert "from an interrupted run" not in capsys.readouterr().out
    assert files(ws.use_outputs) == ["a_mask.tif", "a_mask_2.tif", "runs"]
    assert tifffile.imread(mask).min() == 255


@pytest.mark.parametrize(
    "text",
    [
        "null",
        "[]",
        '"x"',
        '{"files": 5}',
        '{"files": [5]}',
        '{"files": [{"outputs": 3}]}',
        '{"model": "m"}',
        "{not json",
        "\xff\xfe",
    ],
)
def test_foreign_json_in_runs_is_skipped_with_one_warning(quick_ws, capsys, text):
    ws = quick_ws
    (ws.use_outputs / "runs").mkdir()
    bad = ws.use_outputs / "runs" / "segment_foreign.json"
    bad.write_bytes(text.encode("latin-1"))
    _image(ws.use_inputs / "a.tif", 40)
    assert _predict(ws) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    why = {"{not json": "JSONDecodeError", "\xff\xfe": "UnicodeDecodeError"}.get(
        text, "not a PAULow run record"
    )
    assert [line for line in err.splitlines() if "segment_foreign.json" in line] == [
        f"WARNING: skipped '{bad}' ({why}): runs/ holds PAULow's run records; move that file away"
    ]
    assert files(ws.use_outputs) == ["a_mask.tif", "runs"] and files(ws.use_inputs) == []
    assert bad.read_bytes() == text.encode("latin-1")  # not ours: left as it was


def test_runs_being_a_file_is_one_line_before_any_work(quick_ws, capsys):
    ws = quick_ws
    (ws.use_outputs / "runs").write_text("notes")
    _image(ws.use_inputs / "a.tif", 40)
    assert _predict(ws) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        (
            f"error: '{ws.use_outputs / 'runs'}' is not a folder: move it away "
            "(PAULow keeps its run records in a folder of that name)"
        )
    ]
    assert files(ws.use_inputs) == ["a.tif"] and files(ws.use_outputs) == ["runs"]


def test_a_run_killed_while_clearing_is_resumed_without_duplicates(quick_ws, monkeypatch, capsys):
    ws = quick_ws
    for i in range(3):
        _image(ws.use_inputs / f"in{i}.tif", 40, seed=i)
    real_unlink, calls = Path.unlink, []

    def unlink_then_killed(self, *args, **kwargs):
        if self.parent == ws.use_inputs:
            calls.append(self)
            if len(calls) == 2:
                raise Killed  # SIGKILL after the first input was deleted
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", unlink_then_killed)
    with pytest.raises(Killed):
        _predict(ws)
    monkeypatch.setattr(Path, "unlink", real_unlink)
    assert files(ws.use_inputs) == ["in1.tif", "in2.tif"]
    assert _records(ws)[0]["finished"] is None  # not finished before the inputs were cleared
    assert _predict(ws) == 0
    out = capsys.readouterr().out
    assert "in1.tif: kept in1_mask.tif from an interrupted run" in out
    assert files(ws.use_outputs) == ["in0_mask.tif", "in1_mask.tif", "in2_mask.tif", "runs"]
    assert files(ws.use_inputs) == []


# ---------------------------------------------------------------- one bad entry refused alone
def test_a_240_byte_input_name_is_refused_alone(quick_ws, capsys):
    ws = quick_ws
    long_name = "n" * 236 + ".tif"
    _image(ws.use_inputs / long_name, 40)
    _image(ws.use_inputs / "a.tif", 40, seed=1)
    assert _predict(ws) == 1
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        f"error: {long_name}: the name is too long for its output names (240 bytes; file names may have 255) "
        "- rename it shorter"
    ]
    assert files(ws.use_inputs) == [long_name]  # kept; a.tif segmented and cleared
    assert files(ws.use_outputs) == ["a_mask.tif", "runs"]
    assert not [p for p in ws.use_outputs.iterdir() if p.name.startswith(".")]


def test_an_input_removed_mid_run_is_refused_alone(quick_ws, monkeypatch, capsys):
    from paulow.api import segment_run  # fingerprint's home, where reading the inputs finds it

    ws = quick_ws
    for name in ("a.tif", "b.tif", "c.tif"):
        _image(ws.use_inputs / name, 40)
    real = segment_run.fingerprint

    def removed_first(path):
        if path.name == "b.tif":
            path.unlink()  # the user moves it away while a.tif is being segmented
        return real(path)

    monkeypatch.setattr(segment_run, "fingerprint", removed_first)
    assert _predict(ws) == 1
    out, err = capsys.readouterr()
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        "error: b.tif: it was removed while the run went on - put it back and rerun to segment it"
    ]
    assert files(ws.use_outputs) == ["a_mask.tif", "c_mask.tif", "runs"] and files(ws.use_inputs) == []
    assert "1 file(s) failed and were kept in INPUT_IMAGES:" in out


def test_a_closed_stdout_does_not_abort_the_run(quick_ws):
    """`use_model.py ... | head -1`: the reader goes away, the run finishes and clears its inputs."""
    import subprocess
    import sys

    from _workflow import REPO

    ws = quick_ws
    for i in range(2):
        _image(ws.use_inputs / f"in{i}.tif", 40, seed=i)
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "use_model.py"), "--root", str(ws.root), "--model", "t", "--yes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    proc.stdout.close()  # as `head -1` does after its line (here before any: every write hits a broken pipe)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert files(ws.use_outputs) == ["in0_mask.tif", "in1_mask.tif", "runs"] and files(ws.use_inputs) == []


def test_a_training_pair_added_while_inputs_are_fingerprinted_is_refused_alone(tmp_path, monkeypatch, capsys):
    from _workflow import TINY_TRAIN

    from paulow.api import training_run
    from paulow.synthetic import write_dataset

    ws = Workspace(tmp_path)
    ws.setup()
    write_dataset(ws.train_images, ws.train_masks, kind="nuclei", n=3, size=(40, 40), seed=1)
    late = sorted(ws.train_images.iterdir())[-1]
    real = training_run.read_input_fingerprints

    def without_the_last(folders):
        return {p: fp for p, fp in real(folders).items() if p != late}  # it arrived just after this

    monkeypatch.setattr(training_run, "read_input_fingerprints", without_the_last)
    code = cli.main(["train", "--root", str(tmp_path), "--name", "m", "--epochs", "1", *TINY_TRAIN])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        f"error: {late.name}: it was added while the run was starting - it is kept for the next run"
    ]
    assert (ws.models / "m.pth").is_file()
    assert files(ws.train_images) == [late.name] and len(files(ws.train_masks)) == 1  # its pair kept


# ---------------------------------------------------------------- the rerun after SIGKILL
def test_a_rerun_after_sigkill_mid_segmentation_finishes_without_duplicates(quick_ws):
    import signal
    import subprocess
    import sys
    import time

    from _workflow import REPO

    ws = quick_ws
    for i in range(6):
        _image(ws.use_inputs / f"in{i}.tif", 256, seed=i)
    cmd = [sys.executable, str(REPO / "use_model.py"), "--root", str(ws.root), "--model", "t", "--yes"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while (
        not (ws.use_outputs / "in0_mask.tif").exists() and proc.poll() is None and time.monotonic() < deadline
    ):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # mid-way: the first mask is written, the others are not
    proc.wait(timeout=30)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert files(ws.use_outputs) == [f"in{i}_mask.tif" for i in range(6)] + ["runs"]  # no *_mask_2.tif
    assert files(ws.use_inputs) == [] and not (ws.root / ".paulow.lock").exists()


def test_a_kill_right_after_a_mask_is_renamed_into_place_leaves_it_recorded(quick_ws, monkeypatch, capsys):
    import os

    ws = quick_ws
    for i in range(2):
        _image(ws.use_inputs / f"in{i}.tif", 40, seed=i)
    real = os.replace

    def replace_then_killed(src, dst, *args, **kwargs):
        real(src, dst, *args, **kwargs)
        if Path(dst).name == "in0_mask.tif":
            raise Killed  # SIGKILL between the rename and anything after it

    monkeypatch.setattr(os, "replace", replace_then_killed)
    with pytest.raises(Killed):
        _predict(ws)
    monkeypatch.setattr(os, "replace", real)
    assert files(ws.use_outputs) == ["in0_mask.tif", "runs"]
    assert _predict(ws) == 0
    assert "in0.tif: kept in0_mask.tif from an interrupted run" in capsys.readouterr().out
    assert files(ws.use_outputs) == ["in0_mask.tif", "in1_mask.tif", "runs"] and files(ws.use_inputs) == []


# ---------------------------------------------------------------- the lock
def test_a_lock_file_that_is_a_symlink_is_refused_and_its_target_untouched(quick_ws, capsys):
    from paulow.workspace import LOCK_NAME

    ws = quick_ws
    victim = ws.root / "notes.txt"
    victim.write_text("x" * 2048)
    (ws.root / LOCK_NAME).symlink_to(victim)
    _image(ws.use_inputs / "a.tif", 40)
    assert _predict(ws) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        (
            f"error: '{ws.root / LOCK_NAME}' is a symbolic link: delete that link "
            "(PAULow writes its lock file there and never follows links)"
        )
    ]
    assert victim.read_text() == "x" * 2048 and files(ws.use_inputs) == ["a.tif"]


def test_a_lock_file_hard_linked_to_another_file_is_refused(tmp_path):
    from paulow.errors import UsageError
    from paulow.workspace import LOCK_NAME

    victim = tmp_path / "notes.txt"
    victim.write_text("keep me")
    (tmp_path / LOCK_NAME).hardlink_to(victim)
    with pytest.raises(UsageError, match="is not PAULow's lock file"), Workspace(tmp_path).lock():
        pass
    assert victim.read_text() == "keep me"
    (tmp_path / LOCK_NAME).unlink()
    with Workspace(tmp_path).lock():  # the folder lock was released on the refusal
        with pytest.raises(UsageError, match="another PAULow run"), Workspace(tmp_path).lock():
            pass


def _tamper(root: str, stop_at: float) -> None:
    """Delete or replace `.paulow.lock` over and over, as a careless user or a sync tool might."""
    import os
    import time

    from paulow.workspace import LOCK_NAME

    path, n = Path(root) / LOCK_NAME, 0
    while time.time() < stop_at:
        n += 1
        try:
            if n % 2:
                path.unlink()
            else:
                tmp = Path(root) / f"other{n}"
                tmp.write_text("999999999")
                os.replace(tmp, path)
        except OSError:
            pass
        time.sleep(0.0005)


def test_deleting_or_replacing_the_lock_file_never_admits_a_second_holder(tmp_path):
    import multiprocessing as mp
    import time

    from test_hardening import _contend

    ctx = mp.get_context("fork")
    holders, most = ctx.Value("i", 0), ctx.Value("i", 0)
    stop_at = time.time() + 2.0
    procs = [ctx.Process(target=_contend, args=(str(tmp_path), holders, most, stop_at)) for _ in range(8)]
    procs.append(ctx.Process(target=_tamper, args=(str(tmp_path), stop_at)))
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0] * 9
    assert most.value == 1  # held, and never by two at once


# ---------------------------------------------------------------- --resume names
@pytest.mark.parametrize("name", ["../../../escaped", "sub/dir/m", "..", 5])
def test_resume_refuses_a_model_name_with_folders_or_dots(tmp_path, capsys, name):
    from paulow import resume as resume_file
    from paulow.synthetic import write_dataset
    from paulow.workspace import fingerprints

    ws = Workspace(tmp_path / "ws")
    ws.setup()
    write_dataset(ws.train_images, ws.train_masks, n=2, size=(32, 32), seed=1)
    hashes = resume_file.input_hashes(
        fingerprints([*ws.train_images.iterdir(), *ws.train_masks.iterdir()]), ws.root
    )
    state = ws.models / "old_report" / resume_file.RESUME_FILE
    resume_file.save_state(state, name, {"width": 4}, hashes, {"seconds": 1.0, "folds": [], "current": None})
    code = cli.main(["train", "--root", str(ws.root), "--resume", "old", "--yes"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    if isinstance(name, str):
        assert last.startswith(f"error: the resume file '{state}' names no valid model (")
        assert last.endswith("): start a new run without --resume")
    else:  # not even text: the resume file's schema check refuses it first
        assert last == (
            f"error: resume file '{state}': field 'name': is not a model name - start a new run "
            "without --resume (or delete that resume_state.pth)"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ws"]  # nothing written beside the workspace
    assert sorted(p.name for p in ws.models.iterdir()) == ["old_report"]
    assert len(files(ws.train_images)) == 2
