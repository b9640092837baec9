"""The resume file of a training run: written while it trains, read by `train_model.py --resume`.

`<name>_report/resume_state.pth` holds the run's settings, a SHA-256 of every input file and the
state of `paulow.training.cross_validation.cross_validate` (finished folds, the fold in progress with its optimiser).
It is written atomically every few seconds, loaded with `weights_only=True`, and deleted once the
model file is written and verified.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..errors import UsageError
from ..workspace import Fingerprint

RESUME_FILE = "resume_state.pth"
FORMAT = "paulow-resume"
FORMAT_VERSION = 1


def input_key(path: Path, root: Path) -> str:
    """An input file's key in the resume file: its path relative to the workspace root."""
    return Path(path).resolve().relative_to(root.resolve()).as_posix()


def input_hashes(read_as: Mapping[Path, Fingerprint], root: Path) -> dict[str, str]:
    """SHA-256 of each input file (from its fingerprint taken before reading), keyed by `input_key`."""
    return {input_key(f, root): fp.sha256 for f, fp in read_as.items()}


def save_state(path: Path, name: str, config: dict, inputs: dict[str, str], state: dict) -> None:
    """Write the resume file atomically (a crash mid-write leaves the previous one)."""
    from ..checkpoint import plain, torch_save
    from ..io.atomic import atomic_write_path

    payload = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "name": name,
        "config": plain(config),
        "inputs": inputs,
        "state": state,
    }
    with atomic_write_path(path) as tmp:
        torch_save(payload, tmp, path)


def load_state(path: Path) -> dict:
    """The resume file's payload (`weights_only=True`); a UsageError naming the file if unreadable."""
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
        raise UsageError(
            f"cannot read the resume file '{path}' ({type(exc).__name__}): start a new run without --resume"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UsageError(f"'{path}' is not a PAULow resume file: start a new run without --resume")
    from ..resume_check import check_payload

    check_payload(payload, path)
    return payload


def resumable_runs(models_dir: Path) -> list[Path]:
    """Resume files under the saved-models folder, newest first."""
    files = [p for p in models_dir.glob(f"*_report*/{RESUME_FILE}") if p.is_file()]
    return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)


def find_state(models_dir: Path, name: str | bool) -> Path:
    """The resume file of run `name` (its model name or report folder), or the newest one."""
    runs = resumable_runs(models_dir)
    if not runs:
        raise UsageError(f"no stopped training run to resume in '{models_dir}': start one without --resume")
    if name is True:
        return runs[0]
    for path in runs:
        if name in (path.parent.name, path.parent.name.rsplit("_report", 1)[0]):
            return path
    known = ", ".join(p.parent.name.rsplit("_report", 1)[0] for p in runs)
    raise UsageError(f"no stopped run named '{name}' in '{models_dir}': choose one of {known}")


def check_inputs(saved: dict[str, str], current: dict[str, str]) -> None:
    """Refuse to resume when the training files differ from the ones the run started with."""
    if saved == current:
        return
    missing = sorted(set(saved) - set(current))
    added = sorted(set(current) - set(saved))
    changed = sorted(k for k in set(saved) & set(current) if saved[k] != current[k])
    parts = [
        f"{label}: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"
        for label, names in (("missing", missing), ("new", added), ("changed", changed))
        if names
    ]
    raise UsageError(
        "the training folders are not the ones the stopped run used ("
        + "; ".join(parts)
        + "): put the same files back, or start a new run without --resume"
    )


def settle_finished_runs(models_dir: Path, echo=print) -> list[Path]:
    """Remove the resume state of runs that were killed after their model file was written and
    verified, but before the state was removed: they finished, and `--resume` would only fail.
    A run finished when `NAME.pth` is newer than its state, loads, and carries the run's name."""
    from ..checkpoint import load_checkpoint
    from ..errors import ModelError

    settled = []
    for state in resumable_runs(models_dir):
        try:
            name = load_state(state)["name"]
            model = models_dir / f"{name}.pth"
            if not model.is_file() or model.stat().st_mtime < state.stat().st_mtime:
                continue
            if load_checkpoint(model).meta.get("name") != name:
                continue
        except (UsageError, ModelError, KeyError, TypeError, OSError):
            continue
        state.unlink(missing_ok=True)
        echo(
            f"note: the stopped run '{name}' had finished: its model {model.name} was saved and verifies; "
            "its leftover resume state was removed"
        )
        settled.append(state)
    return settled


def stopped_run_named(models_dir: Path, name: str) -> Path | None:
    """The resume file of a stopped run called `name`, if any."""
    for path in resumable_runs(models_dir):
        if path.parent.name.rsplit("_report", 1)[0] == name:
            return path
    return None
