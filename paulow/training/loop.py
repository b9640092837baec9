"""One fold's fit loop: train, validate, keep the best weights, stop on time or patience."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .. import distributed
from ..augmentation import Augment
from ..config import TrainConfig
from ..patches import PatchDataset
from ..scoring import (
    class_columns,
)
from ..slices import Slice
from ..watch import FoldWatch
from .epoch import (
    ValidationPacer,
    batches,
    epoch_row,
    fmt_left,
    panel_index,
    pool_ranks,
    run_epoch,
    stop_reason,
    validate_model,
)
from .evaluation import between_epoch_slices, save_panel
from .network import loss_options
from .results import FoldResult
from .schedules import make_optimizer
from .state import fold_state, restore_fold
from .timing import new_timing, timed

log = logging.getLogger("paulow")


@dataclass
class _Fold:
    """What one fold carries from epoch to epoch."""

    model: Any  # validates on rank 0
    net: Any  # trains (the same parameters, wrapped for DistributedDataParallel under torchrun)
    dataset: PatchDataset
    loader: Any
    loss_fn: Any
    opt: Any
    sched: Any
    clock: dict[str, Any]
    pacer: ValidationPacer
    checks: list[Slice]
    shown: int  # the index of the panels' validation slice
    best: dict
    deadline: float
    history: list[dict] = field(default_factory=list)
    since_best: int = 0


@dataclass
class _Hooks:
    """What the caller of `fit_fold` asked to see or decide along the way."""

    timing: dict
    report_dir: Path | None
    on_epoch: Callable[[dict], None] | None
    snapshot: Callable[[Callable[[], dict]], None] | None
    replan: Callable[[float, float], float | None] | None
    watch: FoldWatch | None
    closing: float


def fit_fold(
    model,
    train: Sequence[Slice],
    val: Sequence[Slice],
    cfg: TrainConfig,
    device: str,
    deadline: float,
    fold: int = 0,
    report_dir: Path | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    resume: dict | None = None,
    snapshot: Callable[[Callable[[], dict]], None] | None = None,
    timing: dict | None = None,
    replan: Callable[[float, float], float | None] | None = None,
    watch: FoldWatch | None = None,
    closing: float = 0.0,
    checks: Sequence[Slice] | None = None,
) -> FoldResult:
    """Train one model; keep the weights with the best validation Dice.

    `resume` is a state `snapshot` was given (see `fold_state`): training goes on after its epoch.
    `snapshot` is called after every epoch that does not end the fold, with a function that makes
    the state (it costs a copy of the weights, so the caller decides whether to make it).
    `timing` (see `new_timing`) receives the seconds of steps, loading, validation, panels, snapshots.
    `closing`: what the caller does after the fold (threshold, test score), in between-epoch
    validations; training stops early enough for the last validation and that to fit before `deadline`.
    `checks`: the slices the between-epoch validations score (default `between_epoch_slices(val)`:
    whole images, or a fixed subset of their tiles when they are many).
    `replan` is called after each epoch with the measured seconds per step and per validation; a
    number it returns is the fold's new deadline.
    `watch` (a `FoldWatch`) sees the history after each epoch and at the end: it
    redraws the curves PNG while the fold trains and writes TensorBoard scalars.
    Under torchrun every rank trains its share of the patches (DistributedDataParallel); rank 0
    alone validates, saves panels and decides when to stop, and every rank follows that decision.
    """
    timing = timing if timing is not None else new_timing()
    run = _start_fold(model, train, val, cfg, device, deadline, fold, timing, checks)
    hooks = _Hooks(timing, report_dir, on_epoch, snapshot, replan, watch, closing)
    stopped, first_epoch = "epochs", 1
    if resume is not None:
        first_epoch, run.since_best = restore_fold(
            resume, model, run.opt, run.clock, run.pacer, run.best, run.history
        )
    for epoch in range(first_epoch, cfg.epochs + 1):
        stop = _fit_epoch(run, hooks, cfg, device, fold, epoch)
        if stop:
            stopped = stop
            break
        if snapshot is not None and epoch < cfg.epochs:
            with timed(timing, "checkpoints"):
                snapshot(_state_maker(run, fold, epoch))
    return _finish_fold(run, hooks, fold, train, val, stopped)


def _state_maker(run: _Fold, fold: int, epoch: int) -> Callable[[], dict]:
    """What makes the fold's state after `epoch` (see `fold_state`), when the caller wants it."""
    return partial(
        fold_state,
        fold,
        epoch,
        run.model,
        run.opt,
        run.clock,
        run.pacer,
        run.best,
        run.history,
        run.since_best,
    )


def _start_fold(
    model,
    train: Sequence[Slice],
    val: Sequence[Slice],
    cfg: TrainConfig,
    device: str,
    deadline: float,
    fold: int,
    timing: dict,
    checks: Sequence[Slice] | None,
) -> _Fold:
    """The fold's patches, optimiser, loss, clock and validation slices, before its first epoch."""
    from ..losses import build_loss

    with timed(timing, "data_loading"):
        dataset = PatchDataset(
            train,
            cfg.patch,
            cfg.overlap,
            cfg.random_fraction,
            Augment(rotations=cfg.rotate) if cfg.augment else None,
            cfg.classes,
            cfg.seed + fold,
            cfg.per_epoch,
            cfg.border_weight,
        )
        loader = batches(dataset, cfg, device)
    net = distributed.wrap(model, device)  # trains; `model` (same parameters) validates on rank 0
    opt, sched = make_optimizer(model, cfg)
    loss_fn = build_loss(cfg.loss, **loss_options(cfg, train)).to(device)
    clock: dict[str, Any] = {
        "start": time.monotonic(),
        "step": 0,
        "total": max(1, len(loader)) * cfg.epochs,
        "stop_at": deadline,
        "timing": timing,
    }
    pacer = ValidationPacer(cfg.val_share)
    checks = list(checks) if checks is not None else between_epoch_slices(val, cfg, device)
    shown = panel_index(checks)
    best = {"dice": -1.0, "epoch": 0, "state": copy.deepcopy(model.state_dict())}
    return _Fold(
        model, net, dataset, loader, loss_fn, opt, sched, clock, pacer, checks, shown, best, deadline
    )


def _fit_epoch(run: _Fold, hooks: _Hooks, cfg: TrainConfig, device: str, fold: int, epoch: int) -> str | None:
    """Train, validate and report one epoch; returns why the fold stops after it, or None."""
    run.dataset.reshuffle(epoch)
    distributed.set_epoch(run.loader, epoch)
    run.clock["stop_at"] = run.deadline - run.pacer.val_seconds * (1 + hooks.closing)  # room for what follows
    epoch_start = time.monotonic()
    losses, regimes, out_of_time = run_epoch(
        run.net,
        run.loader,
        run.loss_fn,
        run.opt,
        run.sched,
        device,
        run.clock,
        f"fold {fold + 1} epoch {epoch}/{cfg.epochs}",
        run.best["dice"],
    )
    train_seconds, steps = time.monotonic() - epoch_start, len(losses)  # this rank's
    if distributed.active():  # the history counts every rank's steps
        losses, regimes = pool_ranks(losses, regimes)
    last = out_of_time or epoch == cfg.epochs or time.monotonic() > run.clock["stop_at"]
    row = epoch_row(fold, epoch, losses, regimes, run.opt, cfg)
    probs = None
    if distributed.is_main() and run.pacer.due(epoch, last):
        probs = _validate_epoch(run, hooks, cfg, device, epoch, row, train_seconds)
    run.history.append(row)
    _report_epoch(run, hooks, cfg, device, fold, epoch, row, regimes, probs)
    if hooks.replan is not None and steps:
        out_of_time = _replan(run, hooks, train_seconds / steps, out_of_time)
    stop = stop_reason(out_of_time or time.monotonic() > run.clock["stop_at"], run.since_best, cfg)
    if distributed.active():
        stop = distributed.broadcast(stop)
    return stop


def _validate_epoch(
    run: _Fold, hooks: _Hooks, cfg: TrainConfig, device: str, epoch: int, row: dict, train_seconds: float
) -> list[np.ndarray]:
    """Score the epoch on the validation slices (into `row`) and keep the weights when they are the
    best so far; returns the probabilities (for the panel)."""
    with timed(hooks.timing, "validation"):
        scores, row["val_loss"], probs = validate_model(
            run.model, run.checks, cfg, device, run.pacer, train_seconds, run.loss_fn
        )
    row["val_dice"] = scores["dice"]
    if cfg.classes >= 2:
        row.update(class_columns("val_dice", scores["dice_c"], cfg.names()))
    if row["val_dice"] > run.best["dice"]:
        run.best = {"dice": row["val_dice"], "epoch": epoch, "state": copy.deepcopy(run.model.state_dict())}
        run.since_best = 0
    else:
        run.since_best += 1
    return probs


def _report_epoch(
    run: _Fold,
    hooks: _Hooks,
    cfg: TrainConfig,
    device: str,
    fold: int,
    epoch: int,
    row: dict,
    regimes: np.ndarray,
    probs: list[np.ndarray] | None,
) -> None:
    """The epoch's curves, callback, panel and log line."""
    if hooks.watch is not None:
        with timed(hooks.timing, "evaluation"):
            hooks.watch.epoch(run.history)
    if hooks.on_epoch:
        hooks.on_epoch(row)
    if (
        distributed.is_main()
        and hooks.report_dir is not None
        and (epoch % cfg.panel_every == 0 or epoch == 1)
    ):
        with timed(hooks.timing, "evaluation"):
            save_panel(
                run.model,
                run.checks[run.shown :],
                cfg,
                device,
                hooks.report_dir / f"fold{fold + 1}_epoch{epoch:03d}.png",
                probs[run.shown] if probs else None,
            )
    log.info(
        "fold %d epoch %d: loss %.4f, validation Dice %s, regimes %s, %s",
        fold + 1,
        epoch,
        row["train_loss"],
        "-" if row["val_dice"] is None else f"{row['val_dice']:.4f}",
        regimes.tolist(),
        fmt_left(run.deadline),
    )


def _replan(run: _Fold, hooks: _Hooks, step_seconds: float, out_of_time: bool) -> bool:
    """Ask `hooks.replan` for a new deadline after the epoch; returns whether time is still out."""
    assert hooks.replan is not None
    later = hooks.replan(step_seconds, run.pacer.val_seconds)
    if later is not None:  # the machine got slower: fewer folds, this one gets more time
        run.deadline = later
        run.clock["stop_at"] = run.deadline - run.pacer.val_seconds * (1 + hooks.closing)
        out_of_time = out_of_time and time.monotonic() > run.clock["stop_at"]
    return out_of_time


def _finish_fold(
    run: _Fold, hooks: _Hooks, fold: int, train: Sequence[Slice], val: Sequence[Slice], stopped: str
) -> FoldResult:
    """Load the best weights into the model and describe the fold."""
    run.model.load_state_dict(run.best["state"])
    if hooks.watch is not None:
        with timed(hooks.timing, "evaluation"):
            hooks.watch.close(run.history)
    return FoldResult(
        fold=fold,
        state_dict={k: v.detach().cpu() for k, v in run.best["state"].items()},
        val_dice=run.best["dice"],
        best_epoch=run.best["epoch"],
        history=run.history,
        train_files=sorted({f"{s.source.name}#{s.page}" for s in train}),
        val_files=sorted({f"{s.source.name}#{s.page}" for s in val}),
        stopped=stopped,
    )
