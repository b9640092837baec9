"""One fold's fit loop: train, validate, keep the best weights, stop on time or patience."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from .. import distributed
from ..config import TrainConfig
from ..data import Augment, PatchDataset, Slice
from ..scoring import (
    class_columns,
)
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
    from ..losses import build_loss

    main = distributed.is_main()
    timing = timing if timing is not None else new_timing()
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
    history: list[dict] = []
    stopped, since_best, first_epoch = "epochs", 0, 1
    if resume is not None:
        first_epoch, since_best = restore_fold(resume, model, opt, clock, pacer, best, history)
    for epoch in range(first_epoch, cfg.epochs + 1):
        dataset.reshuffle(epoch)
        distributed.set_epoch(loader, epoch)
        clock["stop_at"] = deadline - pacer.val_seconds * (1 + closing)  # room for what follows
        epoch_start = time.monotonic()
        losses, regimes, out_of_time = run_epoch(
            net,
            loader,
            loss_fn,
            opt,
            sched,
            device,
            clock,
            f"fold {fold + 1} epoch {epoch}/{cfg.epochs}",
            best["dice"],
        )
        train_seconds, steps = time.monotonic() - epoch_start, len(losses)  # this rank's
        if distributed.active():  # the history counts every rank's steps
            losses, regimes = pool_ranks(losses, regimes)
        last = out_of_time or epoch == cfg.epochs or time.monotonic() > clock["stop_at"]
        row = epoch_row(fold, epoch, losses, regimes, opt, cfg)
        probs = None
        if main and pacer.due(epoch, last):
            with timed(timing, "validation"):
                scores, row["val_loss"], probs = validate_model(
                    model, checks, cfg, device, pacer, train_seconds, loss_fn
                )
            row["val_dice"] = scores["dice"]
            if cfg.classes >= 2:
                row.update(class_columns("val_dice", scores["dice_c"], cfg.names()))
            if row["val_dice"] > best["dice"]:
                best = {"dice": row["val_dice"], "epoch": epoch, "state": copy.deepcopy(model.state_dict())}
                since_best = 0
            else:
                since_best += 1
        history.append(row)
        if watch is not None:
            with timed(timing, "evaluation"):
                watch.epoch(history)
        if on_epoch:
            on_epoch(row)
        if main and report_dir is not None and (epoch % cfg.panel_every == 0 or epoch == 1):
            with timed(timing, "evaluation"):
                save_panel(
                    model,
                    checks[shown:],
                    cfg,
                    device,
                    report_dir / f"fold{fold + 1}_epoch{epoch:03d}.png",
                    probs[shown] if probs else None,
                )
        log.info(
            "fold %d epoch %d: loss %.4f, validation Dice %s, regimes %s, %s",
            fold + 1,
            epoch,
            row["train_loss"],
            "-" if row["val_dice"] is None else f"{row['val_dice']:.4f}",
            regimes.tolist(),
            fmt_left(deadline),
        )
        if replan is not None and steps:
            later = replan(train_seconds / steps, pacer.val_seconds)
            if later is not None:  # the machine got slower: fewer folds, this one gets more time
                deadline = later
                clock["stop_at"] = deadline - pacer.val_seconds * (1 + closing)
                out_of_time = out_of_time and time.monotonic() > clock["stop_at"]
        stop = stop_reason(out_of_time or time.monotonic() > clock["stop_at"], since_best, cfg)
        if distributed.active():
            stop = distributed.broadcast(stop)
        if stop:
            stopped = stop
            break
        if snapshot is not None and epoch < cfg.epochs:
            with timed(timing, "checkpoints"):
                snapshot(
                    partial(fold_state, fold, epoch, model, opt, clock, pacer, best, history, since_best)
                )
    model.load_state_dict(best["state"])
    if watch is not None:
        with timed(timing, "evaluation"):
            watch.close(history)
    return FoldResult(
        fold=fold,
        state_dict={k: v.detach().cpu() for k, v in best["state"].items()},
        val_dice=best["dice"],
        best_epoch=best["epoch"],
        history=history,
        train_files=sorted({f"{s.source.name}#{s.page}" for s in train}),
        val_files=sorted({f"{s.source.name}#{s.page}" for s in val}),
        stopped=stopped,
    )
