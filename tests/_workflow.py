"""Helpers for the end-to-end tests: synthetic workspaces and running the real scripts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Tiny but real: width 8, 64-pixel patches, one fold. Enough to learn synthetic nuclei.
TINY_TRAIN = [
    "--yes",
    "--folds",
    "1",
    "--width",
    "8",
    "--patch",
    "64",
    "--overlap",
    "32",
    "--batch-size",
    "8",
    "--per-epoch",
    "0",
    "--time-limit",
    "0",
    "--patience",
    "100",
]


def default_sigint() -> None:
    """`preexec_fn` for child processes: Ctrl-C back to its default. A shell that starts the suite in
    the background (`nohup make test &`, `cmd &` in a script) ignores SIGINT, and children inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_script(
    script: str, *args: str, stdin: str | None = None, timeout: float = 600, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Run a top-level script the way a user does (from another directory, no terminal)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    return subprocess.run(
        [sys.executable, str(REPO / script), *args],
        input=stdin,
        text=True,
        capture_output=True,
        timeout=timeout,
        cwd=cwd or REPO.parent,
        env=env,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        preexec_fn=default_sigint,
    )


def files(folder: Path) -> list[str]:
    """Names of the visible files in a folder, sorted."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def nuclei_slices(n: int = 4, size: int = 48) -> list:
    """`n` synthetic nuclei pages as normalised training `Slice`s (binary masks), seeded 0..n-1."""
    import numpy as np

    from paulow.normalisation import normalise
    from paulow.slices import Slice
    from paulow.synthetic import nuclei_image

    out = []
    for i in range(n):
        image, mask = nuclei_image((size, size), seed=i)
        out.append(
            Slice(
                normalise(image[None].astype(np.float32)), (mask > 0).astype(np.uint8), Path(f"img{i}.tif"), 0
            )
        )
    return out
