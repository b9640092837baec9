"""The drop-folder workspace: its layout, a run lock, and clearing inputs only after success."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InterruptedRun, UsageError

LOCK_NAME = ".paulow.lock"
log = logging.getLogger("paulow")


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
        return [
            self.train_images,
            self.train_masks,
            self.use_inputs,
            self.use_outputs,
            self.models,
            self.finetune_images,
            self.finetune_masks,
        ]

    def output_folders(self) -> list[Path]:
        """Where runs write (atomically, through hidden temporaries): outputs, run records, models, reports."""
        found = [self.use_outputs, self.use_outputs / "runs", self.models]
        if self.models.is_dir():
            found += sorted(p for p in self.models.iterdir() if p.is_dir())
        return [f for f in found if f.is_dir()]

    def setup(self) -> list[Path]:
        """Create the missing folders (idempotent); return the ones created now."""
        created = [f for f in self.folders() if not f.is_dir()]
        for folder in created:
            folder.mkdir(parents=True, exist_ok=True)
        return created

    def require_writable(self, folder: Path, why: str) -> None:
        """Refuse to start when a folder the run must write to (or delete from) is read-only."""
        if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
            raise UsageError(f"folder '{folder}' is read-only: {why}")

    def require(self, *folders: Path) -> None:
        """Raise a clear error when a folder this command reads is missing."""
        for folder in folders:
            if not folder.is_dir():
                raise UsageError(
                    f"folder '{folder}' does not exist: run `python directory_setup.py --root {self.root}` "
                    "(or `paulow setup`) first"
                )

    @contextlib.contextmanager
    def lock(self) -> Iterator[Path]:
        """Hold the workspace for one run so two runs never consume the same inputs.

        The kernel decides: `flock` on a descriptor of the workspace folder itself, held for the run
        and released by the kernel when the process dies. Deleting or replacing `.paulow.lock`
        cannot admit a second run; that file only holds the holder's pid for messages (opened
        without following links, so a link planted there is refused and its target untouched).
        """
        path = self.root / LOCK_NAME
        self.root.mkdir(parents=True, exist_ok=True)
        held = _take_lock(path)
        try:
            clean_stale_temporaries(self.output_folders())
            yield path
        finally:
            _release_lock(path, held)


# `.NAME.<pid>-<8 hex>.tmp[.ext]`, written by `paulow.io.atomic_write_path`
_TEMPORARY = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}\.tmp(\.[^.]*)?$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def clean_stale_temporaries(folders: Iterable[Path]) -> list[Path]:
    """Delete the hidden temporaries that runs killed mid-write left behind (their owner pid is dead);
    a live process's temporaries are never touched. Returns the files removed."""
    removed = []
    for folder in folders:
        for path in folder.iterdir():
            match = _TEMPORARY.match(path.name)
            if (
                match
                and path.is_file()
                and int(match.group(1)) != os.getpid()
                and not _pid_alive(int(match.group(1)))
            ):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
    if removed:
        log.info("removed %d temporary file(s) left by stopped runs", len(removed))
    return removed


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.lstat(path))
    except FileNotFoundError:
        return False


def _holder(path: Path) -> str:
    """The pid written in the lock file (for the message only), without following links or blocking."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return "unknown"
    try:
        return os.read(fd, 32).decode(errors="replace").strip() or "unknown"
    except OSError:
        return "unknown"
    finally:
        os.close(fd)


def _take_lock(path: Path) -> tuple[int, int]:
    """`flock` the workspace folder, then write our pid into the lock file; return both descriptors."""
    folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(folder)
        raise UsageError(
            f"another PAULow run (pid {_holder(path)}) is using this workspace: wait for it to finish"
        ) from None
    try:
        return folder, _write_pid(path)
    except BaseException:
        os.close(folder)
        raise


def _write_pid(path: Path) -> int:
    """Open the lock file (never through a link, never a shared or special file) and write our pid."""
    import errno
    import stat

    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise UsageError(
            f"'{path}' is a symbolic link: delete that link (PAULow writes its lock file "
            "there and never follows links)"
        ) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        raise UsageError(
            f"'{path}' is not PAULow's lock file (a special file or a hard link to another file): delete it"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
    except OSError as exc:  # a full disk: no lock file stays behind, and the message says where
        _release_lock(path, (-1, fd))
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        _release_lock(path, (-1, fd))
        raise
    return fd


def _release_lock(path: Path, held: tuple[int, int]) -> None:
    """Remove the lock file (only if it is still ours), then unlock the folder."""
    folder, fd = held
    try:
        if _same_file(fd, path):
            path.unlink(missing_ok=True)  # someone may delete it at the same moment
    finally:
        os.close(fd)
        if folder >= 0:
            os.close(folder)


@dataclass(frozen=True)
class Fingerprint:
    """What an input file was when the run read it: size, modification time and SHA-256."""

    size: int
    mtime_ns: int
    sha256: str


def fingerprint(path: Path) -> Fingerprint:
    """Fingerprint a file; take it *before* reading the file, so a later change is always noticed."""
    from .checkpoint import sha256_file

    if Path(path).is_dir():  # a DICOM series: its files' hashes (it is never cleared, see clear_inputs)
        from .volumes import folder_fingerprint

        return Fingerprint(*folder_fingerprint(Path(path)))
    st = os.stat(path)
    return Fingerprint(st.st_size, st.st_mtime_ns, sha256_file(path))


def fingerprints(files: Iterable[Path]) -> dict[Path, Fingerprint]:
    """Fingerprints of several files, keyed by path."""
    return {Path(f): fingerprint(Path(f)) for f in files}


def is_unchanged(path: Path, expected: Fingerprint) -> bool:
    """Whether `path` still holds the content that was fingerprinted (size, mtime, then SHA-256)."""
    from .checkpoint import sha256_file

    try:
        st = os.stat(path)
        return (st.st_size, st.st_mtime_ns) == (expected.size, expected.mtime_ns) and sha256_file(
            path
        ) == expected.sha256
    except OSError:
        return False


@dataclass
class Cleared:
    """The outcome of `clear_inputs`: files deleted, and files kept because they changed."""

    removed: list[Path]
    changed: list[Path]
    failed: list[tuple[Path, str]] = field(default_factory=list)


def clear_inputs(expected: Mapping[Path, Fingerprint]) -> Cleared:
    """Delete exactly these input files (the ones a finished run read), each only if its content is
    still what was read; a file replaced or edited meanwhile is kept, as are files added meanwhile.

    Call only after every output has been written and verified. Ctrl-C while deleting raises
    `InterruptedRun` saying exactly which files were deleted.
    """
    done = Cleared([], [])
    todo = [(Path(p), fp) for p, fp in expected.items() if Path(p).name != ".gitkeep"]
    try:
        for path, fp in todo:
            if not path.is_file():
                continue
            if not is_unchanged(path, fp):
                done.changed.append(path)
                continue
            try:
                path.unlink()
            except OSError as exc:  # a read-only folder: the file stays, and the summary says so
                done.failed.append((path, exc.strerror or type(exc).__name__))
                continue
            done.removed.append(path)
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM or SIGHUP (see paulow.stopping)
        from .stopping import exit_code, how

        gone = [p for p, _ in todo if p in done.removed or (p not in done.changed and not p.exists())]
        shown = ", ".join(p.name for p in gone[:10]) + (" ..." if len(gone) > 10 else "")
        stop = InterruptedRun(
            f"stopped ({how(exc)}) while clearing the inputs: {len(gone)} of {len(todo)} input file(s) were "
            "deleted"
            + (f" ({shown})" if gone else "")
            + f"; the other {len(todo) - len(gone)} are kept"
            + (" in '" + str(todo[0][0].parent) + "'" if todo else "")
        )
        stop.exit_code = exit_code(exc)
        raise stop from None
    return done


def default_root(script_file: str | None = None) -> Path:
    """The folder holding the scripts (for the top-level scripts), else the current directory."""
    if script_file:
        return Path(script_file).resolve().parent
    return Path.cwd()
