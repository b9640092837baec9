"""Pieces the commands share: choosing a saved model, naming a new one, run logs."""

from __future__ import annotations

import contextlib
import logging
import sys
from argparse import Namespace
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..api import MAX_NAME as MAX_NAME  # its home before the API
from ..api import (
    check_model_name,
    describe_model,
    free_folder,
    given_training_options,
    read_input_fingerprints,
    require_tensorboard,
    training_config,
    workspace_lock,
)
from ..errors import ModelError, UsageError
from ..prompts import ask, ask_until
from ..report import format_table
from ..workspace import clear_inputs

log = logging.getLogger("paulow")


def list_models(models_dir: Path) -> list[Path]:
    """Model files in `saved_models`, oldest first."""
    if not models_dir.is_dir():
        return []
    files = [p for p in models_dir.iterdir() if p.suffix.lower() == ".pth" and not p.name.startswith(".")]
    return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))


def model_table(paths: list[Path]) -> str:
    """The numbered table of saved models (name, date, network, channels, classes, test Dice)."""
    rows = []
    for i, path in enumerate(paths, 1):
        try:
            row = describe_model(path)
        except ModelError as exc:
            reason = str(exc).replace(f"model file '{path}': ", "").split(" - ")[0]
            row = {"name": path.stem, "date": "", "network": f"unreadable ({reason[:80]})"}
        rows.append({"#": i, **row})
    columns = ["#", "name", "date", "network", "channels", "classes", "test_dice"]
    return format_table(rows, columns + (["class_dice"] if any("class_dice" in r for r in rows) else []))


def choose_model(models_dir: Path, name: str | None, assume_default: bool = False) -> Path:
    """`--model NAME` (with or without .pth), or a numbered prompt that asks again on a bad answer."""
    paths = list_models(models_dir)
    if name:
        wanted = name if name.lower().endswith(".pth") else f"{name}.pth"
        for path in paths:
            if path.name == wanted:
                return path
        known = ", ".join(p.stem for p in paths) or "none"
        raise ModelError(f"no model '{name}' in '{models_dir}' (available: {known}): check --model")
    if not paths:
        raise ModelError(
            f"no models in '{models_dir}': train one with train_model.py first (or copy a .pth file there)"
        )
    print(model_table(paths))

    def parse(answer: str) -> Path:
        if answer.isdigit() and 1 <= int(answer) <= len(paths):
            return paths[int(answer) - 1]
        raise ValueError(f"please answer a number from 1 to {len(paths)}")

    default = str(len(paths)) if assume_default else None
    return ask_until(f"Which model (1-{len(paths)})", "--model NAME", parse, default, assume_default)


def check_new_name(name: str, models_dir: Path, overwrite: bool) -> str:
    """Validate a new model name; refuse one that exists unless overwriting was asked for."""
    return check_model_name(name, models_dir, overwrite)


def ask_model_name(
    name: str | None, models_dir: Path, overwrite: bool, assume_default: bool, default: str
) -> str:
    """`--name`, or a prompt (refusing names that exist unless --overwrite)."""
    if name:
        try:
            return check_new_name(name, models_dir, overwrite)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return ask_until(
        "Name for the new model",
        "--name NAME",
        lambda a: check_new_name(a, models_dir, overwrite),
        default,
        assume_default,
    )


def add_file_log(path: Path) -> logging.Handler:
    """Also write the run's log to `path`; remove the handler when the run ends."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("paulow").addHandler(handler)
    logging.getLogger("paulow").setLevel(logging.INFO)
    return handler


def remove_log(handler: logging.Handler) -> None:
    logging.getLogger("paulow").removeHandler(handler)
    handler.close()


def unique_dir(path: Path) -> Path:
    """`path`, or `path_2`, `path_3`, ... — never reuse a folder holding earlier results."""
    return free_folder(path)


def file_error(path: Path, message: str) -> None:
    """The one line every script prints for an input file it refuses: `error: FILE: reason - fix`.
    The other files go on; the refused file stays in its folder; the exit code becomes 1."""
    print(f"error: {Path(path).name}: {message}", file=sys.stderr, flush=True)


def report_refused(refused: list, args, where: str, echo=print) -> None:
    """Print the refused files of a training/fine-tuning run and mark the run's exit code as 1."""
    for path, message in refused:
        file_error(path, message)
    args.refused_files = len(refused)
    if refused:
        echo(
            f"{len(refused)} file(s) refused and kept in {where}: "
            + ", ".join(Path(p).name for p, _ in refused[:10])
            + (" ..." if len(refused) > 10 else "")
        )


def read_fingerprints(*folders: Path) -> dict:
    """Fingerprints of the images in these folders, taken before a run reads them."""
    return read_input_fingerprints(folders)


def consume_inputs(expected, keep: bool, where: str, echo=print) -> None:
    """Clear the input files a successful run read (unless --keep-inputs) and say so; `expected`
    maps each file to its `Fingerprint` taken before it was read (a changed file is kept)."""
    if keep:
        echo("inputs kept (--keep-inputs)")
        return
    done = clear_inputs(expected)
    line = f"cleared {len(done.removed)} input file(s) from {where} (the files this run read)"
    if done.changed:
        names = ", ".join(p.name for p in done.changed[:10]) + (" ..." if len(done.changed) > 10 else "")
        line += (
            f"; kept {len(done.changed)} that changed after this run read them ({names}): "
            "run again to process their new content"
        )
    if done.failed:
        names = ", ".join(f"{p.name}: {why}" for p, why in done.failed[:5]) + (
            " ..." if len(done.failed) > 5 else ""
        )
        line += f"; could not delete {len(done.failed)} ({names}): delete them yourself"
    echo(line)


def require_writable(ws, outputs: Path, inputs: list[Path], keep_inputs: bool) -> None:
    """Before any work: the output folder must be writable, and so must the input folders unless
    --keep-inputs (they are cleared after a successful run)."""
    ws.require_writable(outputs, "make it writable (this run writes its results there)")
    if not keep_inputs:
        for folder in inputs:
            ws.require_writable(
                folder,
                "make it writable, or pass --keep-inputs (inputs are deleted "
                "from there after a successful run)",
            )


def confirm(question: str, flag: str, assume_yes: bool) -> bool:
    """Yes/no prompt."""
    answer = ask(question + " (y/n)", flag, "y", assume_yes)
    return answer.lower().startswith("y")


def training_options(args: Namespace) -> dict[str, Any]:
    """The training options the user gave on the command line or in `--config` (flags left off and
    options not given are dropped, so the preset decides them)."""
    return given_training_options(vars(args))


def config_from_args(args: Namespace, device: str):
    """The run's `TrainConfig`: preset for the device, then every option the user gave."""
    return training_config(training_options(args), getattr(args, "preset", None), device)


def effective_options(args: Namespace) -> dict[str, Any]:
    """Every option of this run (command line, config file and defaults) as JSON types, for reports."""
    return {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in vars(args).items()
        if k not in ("config_file_values", "busy_cores")  # busy_cores: the load at start, not an option
    }


def check_tensorboard(args) -> None:
    """With `--tensorboard`, fail before any work when the tensorboard package is missing."""
    if getattr(args, "tensorboard", None):
        require_tensorboard()


def tensorboard_dir(args, name: str) -> Path | None:
    """The run's TensorBoard folder, `--tensorboard DIR/<name>` (None without the option)."""
    folder = getattr(args, "tensorboard", None)
    return Path(folder) / name if folder else None


def quiet(_: str) -> None:
    """The console of torchrun's ranks other than 0 (rank 0 speaks for the run)."""


@contextlib.contextmanager
def main_lock(ws) -> Iterator[None]:
    """The workspace lock, held by rank 0 alone under torchrun (every rank learns whether it was
    taken, so all exit alike when another run holds it); the plain lock without torchrun."""
    with workspace_lock(ws):
        yield
