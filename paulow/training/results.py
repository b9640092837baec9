"""What training returns: one fold's result and the whole run's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from ..slices import Slice


def masks_of(slices: Sequence[Slice]) -> list[np.ndarray]:
    """The masks of labelled slices (training, validation and test slices always carry one)."""
    return [cast(np.ndarray, s.mask) for s in slices]


@dataclass
class FoldResult:
    fold: int
    state_dict: dict
    val_dice: float
    best_epoch: int
    history: list[dict]
    train_files: list[str]
    val_files: list[str]
    test_dice: float | None = None
    stopped: str = "epochs"
    threshold: float = 0.5
    test_dice_c: list[float] | None = None  # per class 0..K-1 (K >= 2), the test share's Dice
    min_size: int = 0  # objects under this many px are removed (tuned on validation, `object_size`)
    test_dice_objects: float | None = None  # a boundary model's object masks on the test share


@dataclass
class TrainResult:
    folds: list[FoldResult]
    best_fold: int
    test_keys: list[tuple[str, int]]
    seconds: float

    def state_dicts(self, ensemble: bool) -> list[dict]:
        if ensemble:
            return [f.state_dict for f in self.folds]
        return [self.folds[self.best_fold].state_dict]
