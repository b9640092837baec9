"""Time-budget planner: how many folds and how often to validate, before the first epoch.

A pure function of measured costs (seconds per training step, seconds per whole validation), the
number of images and the time limit. On a CPU at least `MIN_GRADIENT_SHARE` of each fold's time goes
to gradient steps, and every fold gets at least `MIN_PATCHES_PER_FOLD` training patches; when the
requested K folds cannot both fit, fewer folds are trained (down to one train/validation split) and
the plan says so, with the flag that forces K. An explicit `--folds K` is always obeyed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

MIN_GRADIENT_SHARE = {"cpu": 0.75, "other": 0.5}  # of each fold's time, spent in gradient steps
# From the benchmarks: the method (one split, 10 min on the 2-core CPU, bench/results/quality_b10_all)
# reached its best validation Dice after 5,376 patches on ISBI, 4,608 on the filaments (9,792 without
# early stopping) and 11,328 on NIH3T3; through the user's path with a 3,000 floor, NIH3T3 trained two
# folds of ~3,500 patches and scored test Dice 0.838, against 0.918 for the one split. A fold given
# fewer than 10,000 patches is not worth training as a fold of its own.
MIN_PATCHES_PER_FOLD = 10000
MAX_VALIDATIONS_PER_FOLD = 10  # beyond this, more validations buy little for early stopping


@dataclass
class Plan:
    """The planner's choice for a run."""

    folds: int
    validations_per_fold: int | None  # None: no time limit, validation paced as before
    gradient_share: float | None  # expected share of each fold's time in gradient steps
    patches_per_fold: int | None  # expected training patches per fold
    val_ratio: float  # validation seconds per training second (the `ValidationPacer` share)
    reason: str
    validation: str = ""  # what the folds validate on between epochs (see `validation_subset.describe`)
    split: str = ""  # how the test share and the folds were split (see `splits.describe`)

    def line(self) -> str:
        """One line for the console: folds, rhythm, what is validated and the reason."""
        parts = [f"plan: {self.folds} fold(s)"]
        if self.validations_per_fold is not None:
            parts.append(f"about {self.validations_per_fold} validation(s) per fold")
            parts.append(f"~{self.patches_per_fold:,} patches per fold")
            parts.append(f"{self.gradient_share:.0%} of the time in gradient steps")
        if self.validation:
            parts.append(self.validation)
        if self.split:
            parts.append(self.split)
        return ", ".join(parts) + f" — {self.reason}"


def _fold_plan(
    fold_seconds: float,
    step_seconds: float,
    patches_per_step: int,
    val_seconds: float,
    min_share: float,
    closing: float = 0.0,
) -> tuple[int, float, int]:
    """(validations, gradient share, patches) of one fold given its seconds; `closing`: seconds the
    fold needs after training (threshold, test score)."""
    allowed = (1 - min_share) * fold_seconds - closing
    vals = max(
        1,
        min(
            MAX_VALIDATIONS_PER_FOLD,
            math.floor(allowed / val_seconds) if val_seconds > 0 else MAX_VALIDATIONS_PER_FOLD,
        ),
    )
    grad = max(0.0, fold_seconds - vals * val_seconds - closing)
    patches = int(grad / step_seconds) * patches_per_step if step_seconds > 0 else 0
    return vals, grad / fold_seconds if fold_seconds > 0 else 0.0, patches


def plan_budget(
    step_seconds: float,
    patches_per_step: int,
    val_seconds_per_fold_validation: float | Callable[[int], float],
    n_images: int,
    time_limit_seconds: float | None,
    folds_requested: int,
    folds_explicit: bool,
    device: str,
    closing_seconds: float | Callable[[int], float] = 0.0,
) -> Plan:
    """Choose folds and the validation rhythm for the budget (see the module docstring).

    `n_images`: images (pages) to split into folds (the test share excluded); folds never exceed it.
    `val_seconds_per_fold_validation`: seconds to predict one fold's validation images once, or a
    function of the number of folds giving it (fewer folds hold out more images each).
    `closing_seconds`: seconds each fold needs after training (predicting its validation images and
    the test share once, for the threshold and the test score), or a function of the folds.
    """
    cap = max(1, min(folds_requested, n_images))
    if not time_limit_seconds:
        return Plan(cap, None, None, None, 0.25, "no time limit: the requested folds")
    min_share = MIN_GRADIENT_SHARE["cpu" if device == "cpu" else "other"]

    def make(k: int, reason: str) -> Plan:
        val_s = (
            val_seconds_per_fold_validation(k)
            if callable(val_seconds_per_fold_validation)
            else val_seconds_per_fold_validation
        )
        close_s = closing_seconds(k) if callable(closing_seconds) else closing_seconds
        vals, share, patches = _fold_plan(
            time_limit_seconds / k, step_seconds, patches_per_step, val_s, min_share, close_s
        )
        ratio = vals * val_s / max(share * time_limit_seconds / k, 1e-9)
        return Plan(k, vals, share, patches, max(ratio, 1e-3), reason)

    if folds_explicit:
        return make(cap, f"--folds {folds_requested} given")
    for k in range(cap, 0, -1):
        plan = make(k, "")
        assert plan.gradient_share is not None and plan.patches_per_fold is not None  # make() fills both
        if plan.gradient_share >= min_share and plan.patches_per_fold >= MIN_PATCHES_PER_FOLD:
            plan.reason = (
                f"{k} fold(s) fit the time limit"
                if k == cap
                else f"{folds_requested} folds do not fit the time limit (each needs "
                f"{MIN_PATCHES_PER_FOLD:,} patches and {min_share:.0%} of its time in gradient "
                f"steps); add --folds {folds_requested} to force them"
            )
            return plan
    plan = make(1, "")
    plan.reason = (
        f"even one split gets only ~{plan.patches_per_fold:,} patches (floor "
        f"{MIN_PATCHES_PER_FOLD:,}); a longer --time-limit would help"
        + (f"; add --folds {folds_requested} to force {folds_requested} folds" if cap > 1 else "")
    )
    return plan


EPOCH_HEADROOM = 2.0  # epochs allowed beyond the plan's, for a machine faster than measured


def epochs_for_time(epochs: int, per_epoch: int | None, patches_per_fold: int | None) -> int:
    """The epoch cap of a time-limited run whose epochs were not given: at least the preset's, and
    room for `EPOCH_HEADROOM` times the patches the plan expects per fold, so the time limit (and
    early stopping), not an epoch count chosen for some other machine, ends each fold."""
    if not per_epoch or not patches_per_fold:
        return epochs
    return max(epochs, math.ceil(EPOCH_HEADROOM * patches_per_fold / per_epoch))


SLOWDOWN_TO_REPLAN = 1.5  # measured seconds per step over the planned ones that trigger a re-plan


def replan_folds(
    step_seconds: float,
    patches_per_step: int,
    val_seconds: float,
    seconds_left: float,
    folds_left: int,
    device: str,
    closing_seconds: float = 0.0,
) -> int:
    """How many of the `folds_left` folds (the current one included) to train in `seconds_left`, now
    that a step takes `step_seconds` and one validation `val_seconds` (both measured in this run).

    The same rule as `plan_budget`: fewer folds when each would get too few patches or too small a
    share of gradient steps; never more than `folds_left`, never fewer than one.
    """
    return plan_budget(
        step_seconds,
        patches_per_step,
        val_seconds,
        folds_left,
        seconds_left,
        folds_left,
        False,
        device,
        closing_seconds,
    ).folds
