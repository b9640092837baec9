"""Issue 14 hardening: one lock holder, clearing only unchanged inputs, honest interrupt messages,
stale temporaries, consistent resume states, huge declared images, full disks, malformed models."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path

import pytest

from paulow.errors import UsageError
from paulow.workspace import LOCK_NAME, Workspace


def untrained_model(path: Path, **meta) -> Path:
    """A real, loadable model file of an untrained width-8 network (no training: fast)."""
    from paulow.checkpoint import save_checkpoint
    from paulow.models import build_model
    from paulow.normalisation import NORMALISATION

    args = {"in_channels": 1, "classes": 1, "width": 8, "depth": 2}
    net = build_model("paulow_attention_unet", **args)
    base = {
        "arch": "paulow_attention_unet",
        "arch_args": args,
        "in_channels": 1,
        "classes": 1,
        "normalisation": dict(NORMALISATION),
        "threshold": 0.5,
        "patch": 32,
        "overlap": 0.5,
        "name": path.stem,
    }
    return save_checkpoint(path, [net.state_dict()], {**base, **meta})


@pytest.fixture
def quick_ws(tmp_path) -> Workspace:
    """A workspace with the untrained model `t.pth`."""
    ws = Workspace(tmp_path)
    ws.setup()
    untrained_model(ws.models / "t.pth")
    return ws


def _contend(root: str, holders, most, stop_at: float) -> None:
    """Take the workspace lock as often as possible until `stop_at`, counting simultaneous holders."""
    ws = Workspace(Path(root))
    while time.time() < stop_at:
        try:
            with ws.lock():
                with holders.get_lock():
                    holders.value += 1
                    most.value = max(most.value, holders.value)
                time.sleep(0.002)
                with holders.get_lock():
                    holders.value -= 1
        except UsageError:
            pass


@pytest.mark.parametrize("stale", ["", "0", "999999999"])
def test_racing_processes_never_hold_the_lock_together(tmp_path, stale):
    (tmp_path / LOCK_NAME).write_text(stale)  # an empty, zero or dead-pid file is harmless
    ctx = mp.get_context("fork")
    holders, most = ctx.Value("i", 0), ctx.Value("i", 0)
    stop_at = time.time() + 1.5
    procs = [ctx.Process(target=_contend, args=(str(tmp_path), holders, most, stop_at)) for _ in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0] * 6
    assert most.value == 1  # some process held it, never two at once


def test_a_live_holder_is_named_and_release_keeps_its_lock(tmp_path):
    ws = Workspace(tmp_path)
    ctx = mp.get_context("fork")
    taken, done = ctx.Event(), ctx.Event()

    def hold() -> None:
        with ws.lock():
            taken.set()
            done.wait(30)

    holder = ctx.Process(target=hold)
    holder.start()
    try:
        assert taken.wait(30)
        with pytest.raises(UsageError, match=f"pid {holder.pid}"):
            with ws.lock():
                pass
        assert (tmp_path / LOCK_NAME).read_text() == str(holder.pid)  # the refused run deleted nothing
    finally:
        done.set()
        holder.join(30)
    with ws.lock() as path:  # the holder is gone: the lock is free again
        assert path.read_text() == str(os.getpid())
    assert not (tmp_path / LOCK_NAME).exists()


# ---------------------------------------------------------------- item 1: replaced inputs are kept
def _replace_atomically(path: Path, array) -> None:
    import tifffile

    tmp = path.with_name("incoming.part")
    tifffile.imwrite(tmp, array)
    os.replace(tmp, path)


def test_use_model_keeps_an_input_replaced_after_it_was_read(quick_ws, monkeypatch, capsys):
    import numpy as np
    import tifffile
    from _workflow import files

    from paulow import cli
    from paulow.api import segment_run as segment  # segment_file's home, where the run finds it
    from paulow.synthetic import nuclei_image

    ws = quick_ws
    for i in range(3):
        tifffile.imwrite(ws.use_inputs / f"in{i:03d}.tif", nuclei_image((40, 40), seed=i)[0])
    real = segment.segment_file

    def then_replace(loaded, path, out_dir, opts, read=None):
        result = real(loaded, path, out_dir, opts, read)
        if path.name == "in000.tif":  # new pixels arrive after this file's mask was written
            _replace_atomically(path, np.full((40, 40), 7, np.uint8))
        return result

    monkeypatch.setattr(segment, "segment_file", then_replace)
    code = cli.main(["predict", "--root", str(ws.root), "--model", "t", "--yes"])
    out = capsys.readouterr().out
    assert code == 0
    assert files(ws.use_inputs) == ["in000.tif"]  # the new file was not deleted unread
    assert tifffile.imread(ws.use_inputs / "in000.tif").max() == 7
    assert (
        "cleared 2 input file(s)" in out and "kept 1 that changed after this run read them (in000.tif)" in out
    )


def test_training_keeps_an_image_replaced_after_it_was_read(tmp_path, monkeypatch, capsys):
    import numpy as np
    import tifffile
    from _workflow import TINY_TRAIN, files

    from paulow import cli, pair_loading
    from paulow.checkpoint import load_checkpoint, sha256_file
    from paulow.synthetic import write_dataset

    ws = Workspace(tmp_path)
    ws.setup()
    write_dataset(ws.train_images, ws.train_masks, kind="nuclei", n=3, size=(48, 48), seed=1)
    image1 = sorted(ws.train_images.iterdir())[0]
    old_sha = sha256_file(image1)
    real = pair_loading.load_pairs

    def then_replace(*args, **kwargs):
        slices = real(*args, **kwargs)
        _replace_atomically(image1, np.full((48, 48), 9, np.uint8))  # replaced once the run has read it
        return slices

    monkeypatch.setattr(pair_loading, "load_pairs", then_replace)  # the train run reads its pairs with it
    code = cli.main(
        ["train", "--root", str(tmp_path), "--name", "m", "--epochs", "1", "--seed", "0", *TINY_TRAIN]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert files(ws.train_images) == [image1.name] and files(ws.train_masks) == []
    assert tifffile.imread(image1).max() == 9
    assert f"kept 1 that changed after this run read them ({image1.name})" in out
    meta = load_checkpoint(ws.models / "m.pth").meta
    recorded = {f["name"]: f["sha256"] for f in meta["training_files"]}
    assert recorded[image1.name] == old_sha  # the model records what it trained on


# ---------------------------------------------------------------- item 3: Ctrl-C while clearing
def test_ctrl_c_while_clearing_says_exactly_what_was_deleted(tmp_path, monkeypatch, capsys):
    from paulow import cli
    from paulow.commands import common
    from paulow.workspace import clear_inputs, fingerprints

    inputs = [tmp_path / f"f{i}.tif" for i in range(4)]
    for p in inputs:
        p.write_bytes(b"data")
    seen = fingerprints(inputs)
    real_unlink, calls = Path.unlink, []

    def unlink_then_interrupt(self, *args, **kwargs):
        calls.append(self)
        real_unlink(self, *args, **kwargs)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C right after the second file went

    monkeypatch.setattr(Path, "unlink", unlink_then_interrupt)
    monkeypatch.setattr(
        cli, "_dispatch", lambda args: common.consume_inputs(seen, False, "INPUT_IMAGES") or 0
    )
    code = cli.main(["predict", "--root", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 130
    assert "2 of 4 input file(s) were deleted (f0.tif, f1.tif); the other 2 are kept" in err
    assert "nothing was deleted" not in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f2.tif", "f3.tif"]
    monkeypatch.setattr(Path, "unlink", real_unlink)
    assert clear_inputs(fingerprints(inputs[2:])).removed == inputs[2:]


# ---------------------------------------------------------------- item 7: a full disk
def _no_space(*args, **kwargs):
    import errno

    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_while_locking_leaves_no_lock_file(tmp_path, monkeypatch, capsys):
    from paulow import cli

    Workspace(tmp_path).setup()
    (tmp_path / "Use_Model" / "INPUT_IMAGES" / "a.tif").write_bytes(b"x")
    (tmp_path / "m.pth").write_bytes(b"stand-in")  # never loaded: load_checkpoint is replaced below
    monkeypatch.setattr("paulow.commands.segment.choose_model", lambda *a: tmp_path / "m.pth")
    monkeypatch.setattr("paulow.checkpoint.load_checkpoint", lambda *a: _Loaded())
    monkeypatch.setattr(os, "write", _no_space)
    code = cli.main(["predict", "--root", str(tmp_path), "--yes"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [
        f"error: {tmp_path / LOCK_NAME}: disk full - free some space and rerun (the inputs were kept)"
    ]
    assert not (tmp_path / LOCK_NAME).exists()
    assert (tmp_path / "Use_Model" / "INPUT_IMAGES" / "a.tif").exists()


class _Loaded:
    meta = {"arch": "x"}
    models: list = []


def test_disk_full_while_writing_a_mask_keeps_inputs_and_leaves_no_partial_file(
    quick_ws, monkeypatch, capsys
):
    import tifffile
    from _workflow import files

    from paulow import cli
    from paulow.synthetic import nuclei_image

    ws = quick_ws
    for i in range(2):
        tifffile.imwrite(ws.use_inputs / f"in{i}.tif", nuclei_image((40, 40), seed=i)[0])
    real = tifffile.imwrite

    def half_then_full(path, *args, **kwargs):
        Path(path).write_bytes(b"II*\x00partial")  # some bytes reached the disk, then it was full
        _no_space()

    monkeypatch.setattr("paulow.io.tifffile.imwrite", half_then_full)
    code = cli.main(["predict", "--root", str(ws.root), "--model", "t", "--yes"])
    err = capsys.readouterr().err
    monkeypatch.setattr("paulow.io.tifffile.imwrite", real)
    assert code == 2 and "Traceback" not in err
    assert f"error: {ws.use_outputs / 'in0_mask.tif'}: disk full - free some space and rerun" in err
    assert files(ws.use_inputs) == ["in0.tif", "in1.tif"]  # nothing cleared
    leftovers = [p.name for p in ws.use_outputs.rglob("*") if p.is_file() and not p.suffix == ".json"]
    assert leftovers == []  # no partial mask, no hidden temporary
    assert not (ws.root / LOCK_NAME).exists()


def test_disk_full_while_saving_the_model_keeps_training_inputs(tmp_path, monkeypatch, capsys):
    import torch
    from _workflow import TINY_TRAIN, files

    from paulow import cli
    from paulow.synthetic import write_dataset

    ws = Workspace(tmp_path)
    ws.setup()
    write_dataset(ws.train_images, ws.train_masks, kind="nuclei", n=2, size=(40, 40), seed=1)
    real_save = torch.save

    def full_for_models(obj, f, *args, **kwargs):
        if str(f).endswith(".pth") and "resume" not in str(f):
            Path(f).write_bytes(b"PK partial")
            _no_space()
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_for_models)
    code = cli.main(["train", "--root", str(tmp_path), "--name", "m", "--epochs", "1", *TINY_TRAIN])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"error: {ws.models / 'm.pth'}: disk full - free some space and rerun" in err
    assert len(files(ws.train_images)) == 2 and len(files(ws.train_masks)) == 2
    assert not any(p.name.startswith(".m.pth") for p in ws.models.iterdir())
    assert not (ws.models / "m.pth").exists()


# ---------------------------------------------------------------- item 4: after a SIGKILL
def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_of_dead_runs_go_and_a_live_runs_stay(tmp_path):
    import subprocess
    import sys

    ws = Workspace(tmp_path)
    ws.setup()
    report = ws.models / "m_report"
    report.mkdir()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead = [
            ws.use_outputs / f".a_mask.tif.{_dead_pid()}-0123abcd.tmp.tif",
            ws.models / f".m.pth.{_dead_pid()}-89abcdef.tmp.pth",
            report / f".resume_state.pth.{_dead_pid()}-00000000.tmp.pth",
        ]
        kept = [
            ws.use_outputs / f".b_mask.tif.{live.pid}-0123abcd.tmp.tif",  # a live process's: untouched
            ws.use_outputs / ".notes.tmp",
            ws.use_outputs / "a_mask.tif",
        ]
        for p in dead + kept:
            p.write_bytes(b"x")
        with ws.lock():
            pass
        assert [p.exists() for p in dead] == [False] * 3
        assert [p.exists() for p in kept] == [True] * 3
    finally:
        live.kill()
        live.wait()


def test_a_killed_use_run_is_recorded_so_the_rerun_makes_no_second_mask(quick_ws, monkeypatch, capsys):
    import json

    import tifffile
    from _workflow import files

    from paulow import cli
    from paulow.api import segment_run as segment  # segment_file's home, where the run finds it
    from paulow.synthetic import nuclei_image

    ws = quick_ws
    for i in range(2):
        tifffile.imwrite(ws.use_inputs / f"in{i}.tif", nuclei_image((40, 40), seed=i)[0])
    real = segment.segment_file

    class Killed(BaseException):
        pass

    def killed_on_second(loaded, path, out_dir, opts, read=None):
        if path.name == "in1.tif":
            (out_dir / f".in1_mask.tif.{_dead_pid()}-0123abcd.tmp.tif").write_bytes(b"half")
            raise Killed  # as if SIGKILLed while writing in1's mask
        return real(loaded, path, out_dir, opts, read)

    monkeypatch.setattr(segment, "segment_file", killed_on_second)
    with pytest.raises(Killed):
        cli.main(["predict", "--root", str(ws.root), "--model", "t", "--yes"])
    (record,) = (ws.use_outputs / "runs").iterdir()
    data = json.loads(record.read_text())
    assert data["finished"] is None and [f["outputs"] for f in data["files"]] == [["in0_mask.tif"]]
    monkeypatch.setattr(segment, "segment_file", real)
    assert cli.main(["predict", "--root", str(ws.root), "--model", "t", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "in0.tif: kept in0_mask.tif from an interrupted run" in out
    assert files(ws.use_outputs) == ["in0_mask.tif", "in1_mask.tif", "runs"]  # no in0_mask_2.tif
    assert sorted(p.name for p in ws.use_outputs.iterdir()) == ["in0_mask.tif", "in1_mask.tif", "runs"]
    assert files(ws.use_inputs) == []


# ---------------------------------------------------------------- item 5: killed between model and state
def _stopped_state(ws: Workspace, name: str) -> Path:
    from paulow import resume as resume_file

    state = ws.models / f"{name}_report" / resume_file.RESUME_FILE
    resume_file.save_state(state, name, {"width": 8}, {}, {"seconds": 1.0, "folds": [], "current": None})
    return state


def test_a_run_killed_after_saving_its_model_is_settled_not_advertised(quick_ws, capsys):
    from paulow import cli

    ws = quick_ws
    state = _stopped_state(ws, "m")
    untrained_model(ws.models / "m.pth")  # written after the last state: the run had finished
    code = cli.main(["train", "--root", str(ws.root), "--name", "x", "--yes"])
    captured = capsys.readouterr()
    assert code == 2 and "no images in" in captured.err  # the training folders are empty
    assert (
        "run 'm' had finished: its model m.pth was saved and verifies; its leftover resume state was removed"
    ) in captured.out
    assert "--resume" not in captured.out + captured.err and not state.exists()
    assert (ws.models / "m.pth").is_file()
    code = cli.main(["train", "--root", str(ws.root), "--resume", "m"])
    assert code == 2 and "exists already" not in capsys.readouterr().err


def test_a_new_run_may_not_take_the_name_of_a_stopped_run(quick_ws, capsys):
    from paulow import cli
    from paulow.synthetic import write_dataset

    ws = quick_ws
    write_dataset(ws.train_images, ws.train_masks, kind="nuclei", n=2, size=(32, 32), seed=1)
    state = _stopped_state(ws, "s")  # stopped, no s.pth yet: resumable
    code = cli.main(["train", "--root", str(ws.root), "--name", "s", "--yes"])
    err = capsys.readouterr().err
    assert code == 2
    assert "a stopped run named 's' can be continued with --resume s" in err
    assert state.exists()


# ---------------------------------------------------------------- items 6 and 11: bad files, one convention
def huge_tiff(path: Path) -> Path:
    """A 32 KB TIFF whose header declares 200000 x 200000 float64 pixels (320 GB decoded)."""
    import struct

    import numpy as np
    import tifffile

    tifffile.imwrite(path, np.zeros((64, 64), np.float64))
    with tifffile.TiffFile(path) as tif:
        offsets = [tif.pages[0].tags[t].valueoffset for t in ("ImageWidth", "ImageLength")]
    with open(path, "r+b") as handle:
        for offset in offsets:
            handle.seek(offset)
            handle.write(struct.pack("<I", 200000))
    return path


def test_use_model_refuses_bad_entries_one_line_each_and_goes_on(quick_ws, capsys):
    import tifffile
    from _workflow import files

    from paulow import cli
    from paulow.synthetic import nuclei_image

    ws = quick_ws
    tifffile.imwrite(ws.use_inputs / "good.tif", nuclei_image((40, 40), seed=1)[0])
    huge_tiff(ws.use_inputs / "huge.tif")
    (ws.use_inputs / "gone.tif").symlink_to(ws.root / "nowhere.tif")
    (ws.use_inputs / "dir.tif").mkdir()
    code = cli.main(["predict", "--root", str(ws.root), "--model", "t", "--yes"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and "ERROR" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("error: ") for line in lines)
    assert lines[0] == "error: dir.tif: a folder, not an image: move the images inside it into this folder"
    assert lines[1] == "error: gone.tif: a link whose target is missing: fix or remove the link"
    assert (
        lines[2].startswith("error: huge.tif: cannot read") and "declares 200000 x 200000 pixels" in lines[2]
    )
    assert files(ws.use_outputs) == ["good_mask.tif", "runs"]
    assert sorted(p.name for p in ws.use_inputs.iterdir()) == ["dir.tif", "gone.tif", "huge.tif"]


def test_training_and_finetuning_refuse_a_huge_tiff_and_go_on(quick_ws, capsys):
    from _workflow import TINY_TRAIN, files

    from paulow import cli
    from paulow.synthetic import write_dataset

    ws = quick_ws
    for images, masks, cmd in (
        (ws.train_images, ws.train_masks, ["train", "--name", "m", *TINY_TRAIN]),
        (
            ws.finetune_images,
            ws.finetune_masks,
            ["finetune", "--model", "t", "--yes", "--time-limit", "0", "--width", "8"],
        ),
    ):
        write_dataset(images, masks, kind="nuclei", n=3, size=(40, 40), seed=2)
        huge_tiff(images / "huge.tif")
        write_dataset(
            masks.parent / "tmp_i", masks.parent / "tmp_m", kind="nuclei", n=1, size=(64, 64), seed=3
        )
        (masks.parent / "tmp_m" / next(iter(files(masks.parent / "tmp_m")))).rename(masks / "huge.tif")
        code = cli.main([cmd[0], "--root", str(ws.root), "--epochs", "1", *cmd[1:]])
        err = capsys.readouterr().err
        assert code == 1, err
        assert "Traceback" not in err and "MemoryError" not in err
        (line,) = [x for x in err.splitlines() if x.startswith("error:")]
        assert line.startswith("error: huge.tif: cannot read") and "declares 200000 x 200000" in line
        assert files(images) == ["huge.tif"] and files(masks) == [
            "huge.tif"
        ]  # the others were used and cleared
    assert (ws.models / "m.pth").is_file() and (ws.models / "t_finetuned.pth").is_file()


# ---------------------------------------------------------------- item 8: malformed model files
def _malformed_payloads(scratch: Path) -> dict:
    good = torch_load_plain(untrained_model(scratch / "g.pth"))
    meta, sds = good["meta"], good["state_dicts"]
    drop = lambda key: {k: v for k, v in meta.items() if k != key}  # noqa: E731
    return {
        "no_meta": ({"format": "paulow", "state_dicts": sds}, "no 'meta'"),
        "no_in_channels": (
            {"format": "paulow", "meta": drop("in_channels"), "state_dicts": sds},
            "in_channels",
        ),
        "normalisation_str": (
            {"format": "paulow", "meta": {**meta, "normalisation": "abc"}, "state_dicts": sds},
            "normalisation",
        ),
        "threshold_abc": (
            {"format": "paulow", "meta": {**meta, "threshold": "abc"}, "state_dicts": sds},
            "threshold",
        ),
        "no_networks": ({"format": "paulow", "meta": meta, "state_dicts": []}, "state_dicts"),
        "pickled_object": (
            {"format": "paulow", "meta": meta, "state_dicts": sds, "x": Path("/")},
            "refused for safety",
        ),
    }


def torch_load_plain(path: Path) -> dict:
    import torch

    return torch.load(path, weights_only=True)


@pytest.mark.parametrize(
    "case",
    ["no_meta", "no_in_channels", "normalisation_str", "threshold_abc", "no_networks", "pickled_object"],
)
def test_malformed_model_files_give_one_error_line_naming_the_file(quick_ws, tmp_path_factory, capsys, case):
    import tifffile
    import torch

    from paulow import cli
    from paulow.synthetic import nuclei_image

    ws = quick_ws
    payload, words = _malformed_payloads(tmp_path_factory.mktemp("good"))[case]
    bad = ws.models / "bad.pth"
    torch.save(payload, bad)
    tifffile.imwrite(ws.use_inputs / "a.tif", nuclei_image((32, 32), seed=1)[0])
    for argv in (["predict", "--model", "bad"], ["predict"]):  # --model, and the numbered table
        code = cli.main([argv[0], "--root", str(ws.root), "--yes", *argv[1:]])
        captured = capsys.readouterr()
        if len(argv) == 1:
            assert "bad" in captured.out  # listed in the table (as unreadable) without a traceback
            continue
        assert code == 2, captured.err
        (line,) = captured.err.strip().splitlines()
        assert line.startswith(f"error: cannot load model file '{bad}'") or line.startswith(
            f"error: model file '{bad}'"
        ), line
        assert words in line and "weights_only" not in line and "Traceback" not in captured.err


# ---------------------------------------------------------------- item 9: read-only folders
# The suite may run as root, for whom chmod does not make a folder read-only: os.access (what a
# non-root user's kernel would answer) and the write itself are patched instead.
def _read_only(monkeypatch, *folders: Path) -> None:
    real = os.access
    monkeypatch.setattr(
        os,
        "access",
        lambda p, mode, **kw: False if Path(p) in folders and mode & os.W_OK else real(p, mode, **kw),
    )


def _one_image(ws: Workspace) -> None:
    import tifffile

    from paulow.synthetic import nuclei_image

    tifffile.imwrite(ws.use_inputs / "a.tif", nuclei_image((32, 32), seed=1)[0])


def test_read_only_output_or_input_folder_is_one_error_line_before_any_work(quick_ws, monkeypatch, capsys):
    from _workflow import files

    from paulow import cli

    ws = quick_ws
    _one_image(ws)
    for folder, fix in ((ws.use_outputs, "make it writable"), (ws.use_inputs, "or pass --keep-inputs")):
        monkeypatch.undo()
        _read_only(monkeypatch, folder)
        code = cli.main(["predict", "--root", str(ws.root), "--model", "t", "--yes"])
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err
        (line,) = err.strip().splitlines()
        assert line.startswith(f"error: folder '{folder}' is read-only") and fix in line
        assert files(ws.use_outputs) == [] and files(ws.use_inputs) == ["a.tif"]
    assert cli.main(["predict", "--root", str(ws.root), "--model", "t", "--yes", "--keep-inputs"]) == 0


def test_permission_denied_while_writing_or_clearing_is_one_line(quick_ws, monkeypatch, capsys):
    import errno

    from _workflow import files

    from paulow import cli

    ws = quick_ws
    _one_image(ws)

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("paulow.io.tifffile.imwrite", denied)
    code = cli.main(["predict", "--root", str(ws.root), "--model", "t", "--yes"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [
        f"error: permission denied at '{ws.use_outputs / 'a_mask.tif'}': make that "
        "folder writable (or run with --keep-inputs if only the input folder is "
        "read-only); the inputs were kept"
    ]
    monkeypatch.undo()
    real_unlink = Path.unlink
    monkeypatch.setattr(
        Path,
        "unlink",
        lambda self, *a, **k: denied() if self.parent == ws.use_inputs else real_unlink(self, *a, **k),
    )
    code = cli.main(["predict", "--root", str(ws.root), "--model", "t", "--yes"])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert "could not delete 1 (a.tif: Permission denied): delete them yourself" in out
    assert files(ws.use_inputs) == ["a.tif"]
