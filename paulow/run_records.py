"""Reading the run records of `use_model.py` (`OUTPUT_MASKS/runs/segment_<time>.json`) safely.

A run killed after writing some masks leaves its record unfinished; the next run with the same
model and options keeps those masks instead of writing `X_mask_2.tif` duplicates. Because that
lets a record decide which input is cleared, a record is trusted only this far:
- it must be a PAULow record (a JSON object with the expected fields and types), else it is
  skipped with one warning naming it;
- an output it names must be a plain file name inside the output folder (no `..`, no folders,
  no symbolic link) whose SHA-256 is still the one the record wrote;
- an entry that a later finished run settled (it made or kept outputs of the same names or
  for the same input) is never used again.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UsageError

log = logging.getLogger("paulow")
RUNS = "runs"
PATTERN = "segment_*.json"


@dataclass(frozen=True)
class Earlier:
    """Outputs an unfinished run wrote for one input (by the input's SHA-256)."""

    record: Path
    outputs: tuple[Path, ...]
    sha256: tuple[str, ...]


def require_runs_folder(out_dir: Path) -> Path:
    """`OUTPUT_MASKS/runs`, refused before any work when something else has that name."""
    runs = out_dir / RUNS
    if runs.is_symlink() or (runs.exists() and not runs.is_dir()):
        raise UsageError(
            f"'{runs}' is not a folder: move it away (PAULow keeps its run records in a folder of that name)"
        )
    return runs


def output_path(out_dir: Path, name: Any) -> Path | None:
    """The output a record names, if it is a plain file name inside `out_dir`; else None."""
    if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name or "\\" in name:
        return None
    return out_dir / name


def _str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _valid_entry(entry: Any) -> bool:
    if not isinstance(entry, dict) or not isinstance(entry.get("input_sha256"), (str, type(None))):
        return False
    if not _str_list(entry.get("outputs", [])):
        return False
    hashes = entry.get("outputs_sha256")
    return hashes is None or _str_list(hashes)


def read_record(path: Path, warn: bool = True) -> dict | None:
    """A run record's contents, or None (with one warning naming the file) when it is no valid record."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        ok = (
            isinstance(record, dict)
            and isinstance(record.get("files", []), list)
            and isinstance(record.get("model", {}), dict)
            and isinstance(record.get("segment_options", {}), dict)
            and all(_valid_entry(e) for e in record.get("files", []))
        )
        why = "" if ok else "not a PAULow run record"
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        record, why = None, type(exc).__name__
    if why:
        if warn:
            log.warning("skipped '%s' (%s): runs/ holds PAULow's run records; move that file away", path, why)
        return None
    return record


def records(out_dir: Path, warn: bool = True) -> Iterator[tuple[Path, dict]]:
    """Every valid run record in `out_dir/runs`, oldest name first."""
    runs = out_dir / RUNS
    if not runs.is_dir() or runs.is_symlink():
        return
    for path in sorted(runs.glob(PATTERN)):
        record = read_record(path, warn) if path.is_file() else None
        if record is not None:
            yield path, record


def unfinished_outputs(out_dir: Path, model_sha: str, options: dict) -> dict[str, Earlier]:
    """Outputs of runs killed before finishing, with the same model and options, by the SHA-256 of the
    input that made them (entries whose outputs are not plain names in `out_dir` are ignored)."""
    found: dict[str, Earlier] = {}
    for path, record in records(out_dir):
        if (
            record.get("finished")
            or record.get("model", {}).get("sha256") != model_sha
            or record.get("segment_options") != options
        ):
            continue
        for entry in record.get("files", []):
            names, hashes = entry.get("outputs", []), entry.get("outputs_sha256")
            outputs = [output_path(out_dir, n) for n in names]
            if (
                entry.get("settled_by")
                or not entry.get("input_sha256")
                or not outputs
                or hashes is None
                or len(hashes) != len(outputs)
                or None in outputs
            ):
                continue
            found[entry["input_sha256"]] = Earlier(path, tuple(o for o in outputs if o), tuple(hashes))
    return found


def still_there(earlier: Earlier) -> bool:
    """Whether every output is still the regular file, with the content, that the record wrote."""
    from .checkpoint import sha256_file

    for path, expected in zip(earlier.outputs, earlier.sha256):
        try:
            if path.is_symlink() or not path.is_file() or sha256_file(path) != expected:
                return False
        except OSError:
            return False
    return True


def settle(out_dir: Path, finished: Path, inputs: Iterable[str], outputs: Iterable[str]) -> list[Path]:
    """Mark, in older unfinished records, the entries that the finished run `finished` handled (same
    input SHA-256, or an output of the same name), so they are never reused. Returns the records changed."""
    from .report import write_json

    inputs, outputs = set(inputs), set(outputs)
    changed = []
    for path, record in records(out_dir, warn=False):
        if path == finished or record.get("finished"):
            continue
        touched = False
        for entry in record.get("files", []):
            if not entry.get("settled_by") and (
                entry.get("input_sha256") in inputs or outputs & set(entry.get("outputs", []))
            ):
                entry["settled_by"] = finished.name
                touched = True
        if touched:
            write_json(path, record)
            changed.append(path)
    return changed


def output_hashes(result: Any) -> list[str]:
    """SHA-256 of a result's outputs (`written`), hashed once and kept in `written_sha256`."""
    from .checkpoint import sha256_file

    if len(result.written_sha256) != len(result.written):
        result.written_sha256 = [sha256_file(w) for w in result.written]
    return result.written_sha256


@contextlib.contextmanager
def recording(pending: Any, out_dir: Path, note: Any) -> Iterator[None]:
    """While one input is segmented: before each of its outputs is renamed into place, `note(pending)`
    gets its result so far (outputs with their SHA-256) to write into the run record. A SIGKILL just
    after the rename then leaves the output recorded, and the rerun keeps it (no `X_mask_2.tif`).
    `pending` is an empty result for the input; its fingerprint is taken here, before it is read."""
    from .checkpoint import sha256_file
    from .io.atomic import before_replace
    from .workspace import fingerprint

    if note is None:
        yield
        return
    pending.read_as = fingerprint(pending.source)

    def hook(temporary: Path, final: Path) -> None:
        if final.parent == out_dir:
            pending.written.append(final)
            pending.written_sha256.append(sha256_file(temporary))
            note(pending)

    with before_replace(hook):
        yield
