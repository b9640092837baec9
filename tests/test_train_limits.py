"""`paulow.train` limits: the wall-clock time limit holds (within a stated tolerance), and mask values
outside the classes are a user error, not a bare ValueError."""

from __future__ import annotations

import time

import numpy as np
import pytest

import paulow
from paulow.errors import PaulowError, ShapeMismatchError
from paulow.synthetic import nuclei_image

TINY = {"width": 4, "depth": 2, "patch": 32, "overlap": 16, "per_epoch": 8, "batch_size": 4}
LIMIT_MIN = 0.2  # 12 s
# What may run past the limit: the step that crosses it, then the closing validation, threshold and
# smallest-object tuning, and the test share's one scoring (each well under a second here on an idle
# 2-core CPU; the rest is room for a busy machine).
TOLERANCE_S = 6.0


def _data(n: int, size: int = 64) -> tuple[list[np.ndarray], list[np.ndarray]]:
    pairs = [nuclei_image(size=(size, size), seed=i) for i in range(n)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


@pytest.mark.slow
def test_a_time_limited_run_ends_within_the_limit():
    images, masks = _data(5)
    paulow.train(images[:2], masks[:2], time_limit=0, epochs=1, folds=1, test_fraction=0, **TINY)  # imports
    said: list[str] = []
    start = time.monotonic()
    model = paulow.train(
        images,
        masks,
        time_limit=LIMIT_MIN,
        epochs=100_000,
        patience=100_000,
        folds=1,
        test_fraction=0.2,
        echo=said.append,
        **TINY,
    )
    seconds = time.monotonic() - start
    fold = model.meta["metrics"]["folds"][0]
    assert fold["stopped"] == "time limit", said  # neither the epochs nor early stopping ended it
    assert model.meta["metrics"]["test_dice"] is not None  # the test share was scored, inside the limit
    assert LIMIT_MIN * 60 - TOLERANCE_S < seconds <= LIMIT_MIN * 60 + TOLERANCE_S, (seconds, said)


def test_class_values_outside_the_classes_are_a_paulow_error():
    images, masks = _data(2, 32)
    masks[1] = masks[1].astype(np.int64)
    masks[1][0, 0] = 3  # classes 0..2 allowed
    with pytest.raises(ShapeMismatchError) as err:
        paulow.train(images, masks, classes=3, time_limit=0, epochs=1, folds=1, test_fraction=0, **TINY)
    assert isinstance(err.value, PaulowError) and not isinstance(err.value, ValueError)
    assert str(err.value) == (
        "mask 'array2' page 0 has values outside 0..2 for a 3-class task — fix the mask or --classes"
    )
