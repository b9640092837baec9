"""Slices: one 2-D page of a file with its target and provenance, and summaries of a list of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np

from .errors import ShapeMismatchError


@dataclass
class Slice:
    """One 2-D slice (a page of a file) ready for the network."""

    image: np.ndarray  # float32 (C, H, W), normalised
    mask: np.ndarray | None  # (H, W) uint8: 0/1, or class index
    source: Path
    page: int
    info: dict = field(default_factory=dict)
    labels: np.ndarray | None = None  # (H, W) instance labels when the mask file holds them
    # (H, W) bool, sparse labels: the labelled pixels (the others are ignored by the loss, the patch
    # sampling and the scores); None: every pixel is labelled (dense labels)
    labelled: np.ndarray | None = None

    def instances(self) -> np.ndarray:
        """Instance labels: the mask file's own, else 8-connected components of the foreground."""
        from .weights import instance_labels

        return self.labels if self.labels is not None else instance_labels(cast(np.ndarray, self.mask) != 0)

    @property
    def key(self) -> tuple[str, int]:
        return (str(self.source), self.page)


def labelled_of(slices: Sequence[Slice]) -> list[np.ndarray | None] | None:
    """Each slice's labelled pixels (None for a dense one), or None when every slice is dense (the
    scores and losses then run exactly as without sparse labels)."""
    if all(s.labelled is None for s in slices):
        return None
    return [s.labelled for s in slices]


def foreground_fraction(mask: np.ndarray) -> float:
    """Share of non-zero pixels."""
    return float(np.count_nonzero(mask)) / max(mask.size, 1)


def snr(raw: np.ndarray, mask: np.ndarray) -> float:
    """Signal-to-noise: (mean foreground - mean background) / std background, on the first channel."""
    fg, bg = raw[mask > 0], raw[mask == 0]
    if fg.size == 0 or bg.size == 0:
        return float("nan")
    std = float(bg.std())
    return float((fg.mean() - bg.mean()) / std) if std > 0 else float("inf")


def describe_split(name: str, slices: Sequence[Slice]) -> str:
    """`train: 8 slices from 8 files` — for the run plan."""
    files = {s.source for s in slices}
    return f"{name}: {len(slices)} slice(s) from {len(files)} file(s)"


def check_channels(slices: Sequence[Slice], expected: int, where: str) -> None:
    """Raise when slices do not have the channel count a model expects."""
    for s in slices:
        if s.image.shape[0] != expected:
            raise ShapeMismatchError(
                f"'{s.source.name}' has {s.image.shape[0]} channel(s) but the model expects {expected} "
                f"({where}) — convert the images or choose a model trained on {s.image.shape[0]}-channel "
                "images"
            )
