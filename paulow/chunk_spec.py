"""A chunked run's spec (everything a task needs, small and picklable) and its done-markers: one
`.npz` per finished task and phase, written atomically, so a run started again skips them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class RunSpec:
    """Everything a task needs about the run (small, picklable)."""

    input: str
    output: str  # the OME-Zarr group
    work: str  # folder of intermediate arrays and markers, removed when the run completes
    height: int
    width: int
    pages: int
    chunk: int
    tile: int
    overlap: float
    batch_size: int
    tta: bool
    device: str
    threshold: float
    min_size: int
    in_channels: int
    mode: str  # "binary", "boundary" (objects by the seeded watershed) or "classes"
    stats: tuple  # per page: per-channel (low, high) or None (scale255)
    halo: int = 0  # px read around a core for the boundary models' watershed

    @property
    def step(self) -> int:
        return max(1, round(self.tile * (1 - self.overlap)))

    def page_key(self, page: int) -> int | None:
        return page if self.pages > 1 else None


def marker(spec: RunSpec, phase: str, page: int, iy: int, ix: int) -> Path:
    return Path(spec.work) / "done" / phase / f"{page}_{iy}_{ix}.npz"


def save_marker(path: Path, arrays: dict) -> None:
    """Write a marker atomically (temporary name, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
