"""The device probe's answers, cached per device name, network (arch and arguments, members) and
overlap in `probe_cache.json` in the user's cache folder (`PAULOW_CACHE_DIR`, else the platform's)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from .probe_search import Choice

CACHE_NAME = "probe_cache.json"


def cache_dir() -> Path:
    """`PAULOW_CACHE_DIR`, else the platform's user cache folder for paulow."""
    if os.environ.get("PAULOW_CACHE_DIR"):
        return Path(os.environ["PAULOW_CACHE_DIR"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("paulow", appauthor=False))


def cache_key(device_name: str, meta: dict, members: int, overlap: float, tta: bool) -> str:
    """The cache entry's name: the device, the network and its members, TTA and the overlap."""
    arch = json.dumps(
        {
            "arch": meta.get("arch"),
            "args": meta.get("arch_args", {}),
            "in": meta.get("in_channels"),
            "members": members,
            "tta": bool(tta),
        },
        sort_keys=True,
    )
    return f"{device_name} | {arch} | overlap {overlap:g}"


def load_cached(key: str) -> Choice | None:
    """The cached choice under `key`, None when there is none (or the cache is unreadable)."""
    try:
        entry = json.loads((cache_dir() / CACHE_NAME).read_text()).get(key)
        return Choice(**entry) if entry else None
    except (OSError, ValueError, TypeError):
        return None  # no cache yet, or an unreadable one: measure again


def store(key: str, choice: Choice) -> None:
    """Add `choice` under `key` (atomic write; a cache that cannot be written is only skipped)."""
    from .io.atomic import atomic_write_path

    path = cache_dir() / CACHE_NAME
    try:
        entries = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        entries = {}
    entries[key] = {
        **asdict(choice),
        "compile": False,
        "reason": choice.reason.split("; ")[0],
        "tried": [list(t) for t in choice.tried],
    }
    try:
        with atomic_write_path(path) as temporary:
            Path(temporary).write_text(json.dumps(entries, indent=1))
    except OSError:
        pass
