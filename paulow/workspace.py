"""The drop-folder workspace: its layout, a run lock, and clearing inputs only after success."""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from .errors import UsageError

LOCK_NAME = ".paulow.lock"


@dataclass(frozen=True)
class Workspace:
    """The three drop folders under one root (several workspaces can live side by side)."""

    root: Path

    @property
    def train_images(self) -> Path:
        return self.root / "Train_Model" / "TRAINING_IMAGES"

    @property
    def train_masks(self) -> Path:
        return self.root / "Train_Model" / "TRAINING_MASKS"

    @property
    def use_inputs(self) -> Path:
        return self.root / "Use_Model" / "INPUT_IMAGES"

    @property
    def use_outputs(self) -> Path:
        return self.root / "Use_Model" / "OUTPUT_MASKS"

    @property
    def models(self) -> Path:
        return self.root / "Use_Model" / "saved_models"

    @property
    def finetune_images(self) -> Path:
        return self.root / "Finetune_Model" / "INPUT_IMAGES"

    @property
    def finetune_masks(self) -> Path:
        return self.root / "Finetune_Model" / "INPUT_MASKS"

    def folders(self) -> list[Path]:
        """The seven drop folders, in the order `directory_setup.py` lists them."""
        return [self.train_images, self.train_masks, self.use_inputs, self.use_outputs,
                self.models, self.finetune_images, self.finetune_masks]

    def setup(self) -> list[Path]:
        """Create the missing folders (idempotent); return the ones created now."""
        created = [f for f in self.folders() if not f.is_dir()]
        for folder in created:
            folder.mkdir(parents=True, exist_ok=True)
        return created

    def require(self, *folders: Path) -> None:
        """Raise a clear error when a folder this command reads is missing."""
        for folder in folders:
            if not folder.is_dir():
                raise UsageError(
                    f"folder '{folder}' does not exist: run `python directory_setup.py --root {self.root}` "
                    "(or `paulow setup`) first")

    @contextlib.contextmanager
    def lock(self) -> Iterator[Path]:
        """Hold the workspace for one run so two runs never consume the same inputs."""
        path = self.root / LOCK_NAME
        self.root.mkdir(parents=True, exist_ok=True)
        _take_lock(path)
        try:
            yield path
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _take_lock(path: Path) -> None:
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(path.read_text().strip() or "0")
            except (OSError, ValueError):
                pid = 0
            if pid and _pid_alive(pid) and pid != os.getpid():
                raise UsageError(
                    f"another PAULow run (pid {pid}) is using this workspace: wait for it to finish, "
                    f"or delete '{path}' if that run crashed") from None
            with contextlib.suppress(FileNotFoundError):
                path.unlink()  # stale lock from a crashed run
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(str(os.getpid()))
        return
    raise UsageError(f"could not lock the workspace: delete '{path}' and try again")


def clear_inputs(files: Iterable[Path]) -> list[Path]:
    """Delete exactly these input files (the ones a finished run read); files added meanwhile stay.

    Call only after every output has been written and verified. Returns the files removed.
    """
    removed = []
    for path in dict.fromkeys(Path(f) for f in files):
        if path.name == ".gitkeep" or not path.is_file():
            continue
        path.unlink()
        removed.append(path)
    return removed


def default_root(script_file: str | None = None) -> Path:
    """The folder holding the scripts (for the top-level scripts), else the current directory."""
    if script_file:
        return Path(script_file).resolve().parent
    return Path.cwd()
