"""The state of a run and of a fold in progress, to go on after an interruption."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import fields

from .epoch import ValidationPacer
from .results import FoldResult


def _cpu_state(state: dict) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}


def fold_state(
    fold: int,
    epoch: int,
    model,
    opt,
    clock: dict,
    pacer: ValidationPacer,
    best: dict,
    history: list[dict],
    since_best: int,
) -> dict:
    """Everything needed to go on with a fold after `epoch` (tensors and plain types only, so the
    file loads with `weights_only=True`)."""
    return {
        "fold": fold,
        "epoch": epoch,
        "model": _cpu_state(model.state_dict()),
        "optimizer": opt.state_dict(),
        "best_dice": best["dice"],
        "best_epoch": best["epoch"],
        "best_state": _cpu_state(best["state"]),
        "history": list(history),
        "since_best": since_best,
        "step": clock["step"],
        "seconds": time.monotonic() - clock["start"],
        "pacer_every": pacer.every,
        "pacer_val_seconds": pacer.val_seconds,
    }


def restore_fold(
    state: dict, model, opt, clock: dict, pacer: ValidationPacer, best: dict, history: list[dict]
) -> tuple[int, int]:
    """Load a `fold_state` into the fold's objects; return (first epoch to run, epochs since best)."""
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    best.update(dice=state["best_dice"], epoch=state["best_epoch"], state=state["best_state"])
    history.extend(state["history"])
    clock["step"] = state["step"]
    clock["start"] -= state["seconds"]  # the learning-rate schedule goes on where it was
    pacer.every, pacer.val_seconds = state["pacer_every"], state["pacer_val_seconds"]
    return state["epoch"] + 1, state["since_best"]


def run_state(seconds: float, done: Sequence[FoldResult], current: dict | None) -> dict:
    """A run's resumable state: time spent, finished folds, the fold in progress (or None)."""
    # shallow (not `asdict`, which deep-copies every finished fold's weights at each save)
    folds = [{f.name: getattr(fold, f.name) for f in fields(FoldResult)} for fold in done]
    return {"seconds": seconds, "folds": folds, "current": current}


def fold_from_state(state: dict) -> FoldResult:
    return FoldResult(**state)


class ProgressSaver:
    """Hands the run's state to `write` at most every `every` seconds (always when forced), so a
    long run can be resumed after Ctrl-C or a crash without slowing short epochs down."""

    def __init__(self, write: Callable[[dict], None], every: float = 10.0) -> None:
        self.write, self.every, self.last = write, every, time.monotonic()

    def __call__(self, make_state: Callable[[], dict], force: bool = False) -> None:
        if force or time.monotonic() - self.last >= self.every:
            self.write(make_state())
            self.last = time.monotonic()
