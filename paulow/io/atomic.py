"""Atomic writes (a hidden temporary renamed over the final name) and free output names."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

_BEFORE_REPLACE: list = []  # hooks (temporary, final) run just before a temporary becomes its final file


@contextlib.contextmanager
def before_replace(hook) -> Iterator[None]:
    """Call `hook(temporary, final_path)` for every `atomic_write_path` write in the block, after the
    temporary is complete and before it is renamed (the segment command records each output's
    SHA-256 there, so a kill right after the rename still leaves the output known)."""
    _BEFORE_REPLACE.append(hook)
    try:
        yield
    finally:
        _BEFORE_REPLACE.remove(hook)


@contextlib.contextmanager
def atomic_write_path(final_path: str | Path) -> Iterator[Path]:
    """Yield a hidden temporary path beside `final_path`; on success it replaces `final_path`,
    on an exception it is removed and `final_path` is left untouched."""
    final_path = Path(final_path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"  # the owner's pid: see clean_stale_temporaries
    temporary = final_path.with_name(f".{final_path.name}.{token}.tmp{final_path.suffix}")
    try:
        yield temporary
        for hook in list(_BEFORE_REPLACE):
            hook(temporary, final_path)
        os.replace(temporary, final_path)
    except OSError as exc:  # name the file the user knows (a full disk rarely says where)
        if exc.filename in (None, str(temporary), temporary):
            raise OSError(exc.errno, exc.strerror or str(exc), str(final_path)) from None
        raise
    finally:
        if temporary.exists():
            temporary.unlink()


def _split_name(path: Path) -> tuple[str, str]:
    name = path.name
    for ext in (".ome.tif", ".ome.tiff", ".nii.gz"):
        if name.lower().endswith(ext):
            return name[: -len(ext)], name[-len(ext) :]
    return path.stem, path.suffix


def unique_path(path: str | Path) -> Path:
    """`path` if nothing exists there, else the first free `stem_2.ext`, `stem_3.ext`, ..."""
    path = Path(path)
    if not path.exists():
        return path
    stem, ext = _split_name(path)
    number = 2
    while (candidate := path.with_name(f"{stem}_{number}{ext}")).exists():
        number += 1
    return candidate
