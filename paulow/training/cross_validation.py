"""Cross-validated training: one fresh network per fold, the fold chosen on validation."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypedDict

from .. import distributed
from ..config import TrainConfig
from ..data import Slice, describe_split, kfold, split_test
from ..watch import FoldWatch
from .epoch import ranks
from .evaluation import between_epoch_slices
from .loop import fit_fold
from .network import build_network, freeze_encoder
from .planner import SLOWDOWN_TO_REPLAN, replan_folds
from .planning import count_tiles
from .results import TrainResult
from .state import ProgressSaver, fold_from_state, run_state
from .timing import new_timing, timed
from .tuning import closing_validations, evaluate_fold, score_test, select_fold


class _Budget(TypedDict):
    folds: int  # the folds the run now plans to train (a re-plan lowers it)
    step: float | None  # seconds per step the plan assumed; None: the folds are fixed


def plan_splits(slices: Sequence[Slice], cfg: TrainConfig):
    """(rest, test) then K (train, val) folds over `rest`: by file, or in contiguous page blocks when
    there are too few files (see `paulow.splits`), never by patch."""
    rest, test = split_test(slices, cfg.test_fraction, cfg.seed)
    return rest, test, kfold(rest, cfg.folds, cfg.seed)


def cross_validate(
    slices: Sequence[Slice],
    cfg: TrainConfig,
    device: str,
    report_dir: Path | None = None,
    echo: Callable[[str], None] = print,
    initial_state: dict | None = None,
    resume: dict | None = None,
    progress: ProgressSaver | None = None,
    timing: dict | None = None,
    spent: float = 0.0,
    planned_step: float | None = None,
    tensorboard: Path | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train one fresh network per fold, pick the fold with the best validation Dice, and score that
    fold's model once on the test share (an ensemble is scored by `training_run.run_training`).

    `progress` receives the run's state (see `run_state`) after each epoch and each fold; giving
    that state back as `resume` goes on from there: finished folds are kept, the fold in progress
    continues after its last saved epoch, and the time limit counts the time already spent.
    `timing` (see `new_timing`) receives where the seconds went; `spent`: seconds the run already
    used before (planning), counted in the time limit. `planned_step`: the seconds per step the
    plan assumed; when the steps turn out `SLOWDOWN_TO_REPLAN` times slower (a busy machine), the
    remaining folds are re-planned (fewer folds, each given more time). None: the folds are fixed.
    Each fold's curves are drawn while it trains (`report_dir/curves_fold<k>.png`) and, with
    `tensorboard` (a folder), its scalars written to `tensorboard/fold<k>` (see `FoldWatch`).
    `on_epoch` is called after every epoch with its history row plus `folds` (the folds the run now
    plans to train) and `epochs` (each fold's epoch cap).
    Under torchrun every rank calls this with the same split (same seed); rank 0 re-plans and its
    results are the run's (the others hold their shares).
    """
    from ..config import AUTO

    if cfg.boundary_target == AUTO:  # settled by `training_run.run_training` (it sets the outputs)
        raise ValueError("boundary_target 'auto' is not settled: call paulow.boundaries.choose_target first")
    timing = timing if timing is not None else new_timing()
    start = time.monotonic() - (resume["seconds"] if resume else 0.0) - spent
    in_channels = int(slices[0].image.shape[0])
    rest, test, folds = plan_splits(slices, cfg)
    deadline = start + cfg.time_limit * 60 if cfg.time_limit else float("inf")
    if resume:
        from ..resume_check import check_against_config

        check_against_config(resume, cfg, in_channels)  # a damaged state is one line, not a crash
    results = [fold_from_state(f) for f in resume["folds"]] if resume else []
    budget: _Budget = {"folds": len(folds), "step": planned_step}
    tell = (
        (lambda row: on_epoch({**row, "folds": budget["folds"], "epochs": cfg.epochs})) if on_epoch else None
    )

    def replanner(k: int, fold_start: float, closing: float) -> Callable[[float, float], float | None] | None:
        if budget["step"] is None or deadline == float("inf"):
            return None

        def replan(step_seconds: float, val_seconds: float) -> float | None:
            step_before = budget["step"]
            assert step_before is not None  # replanner() gives no replan without a planned step
            if step_seconds < SLOWDOWN_TO_REPLAN * step_before:
                return None
            _fewer_threads_when_busy(device, echo)
            if budget["folds"] - k <= 1:
                return None
            left = deadline - fold_start
            keep = replan_folds(
                step_seconds,
                cfg.batch_size * ranks(),
                val_seconds,
                left,
                budget["folds"] - k,
                device,
                closing * val_seconds,
            )
            budget["step"] = step_seconds  # re-plan again only if it gets slower still
            if keep >= budget["folds"] - k:
                return None
            echo(
                f"re-planned: a step takes {step_seconds:.2f} s, not the {planned_step:.2f} s measured "
                f"before training (a busy machine?): {k + keep} of {len(folds)} folds will be trained"
            )
            budget["folds"] = k + keep
            return fold_start + left / keep

        return replan

    for k, (train, val) in enumerate(folds):
        if distributed.active():  # rank 0's re-plan holds for every rank
            budget["folds"] = distributed.broadcast(budget["folds"])
        if k >= budget["folds"]:
            echo(f"{len(folds) - k} fold(s) not trained (re-planned for the time limit)")
            break
        if k < len(results):
            echo(
                f"fold {k + 1}/{len(folds)}: finished before the interruption (validation Dice "
                f"{results[k].val_dice:.4f})"
            )
            continue
        fold_start = time.monotonic()
        fold_deadline = fold_start + (deadline - fold_start) / (budget["folds"] - k)
        model = build_network(cfg, in_channels, device, cfg.seed + k)
        if initial_state is not None:
            model.load_state_dict(initial_state)
        if cfg.freeze_encoder:
            freeze_encoder(model)
        current = resume.get("current") if resume else None
        current = current if current and current["fold"] == k else None
        echo(
            f"fold {k + 1}/{len(folds)}: {describe_split('train', train)}; {describe_split('validation', val)}"
            + (f"; going on after epoch {current['epoch']}" if current else "")
        )
        snapshot = None
        if progress is not None:

            def snapshot(make_fold_state, done=tuple(results)):
                progress(lambda: run_state(time.monotonic() - start, done, make_fold_state()))

        watch = FoldWatch(
            report_dir / f"curves_fold{k + 1}.png" if report_dir is not None else None,
            f"fold {k + 1} ({cfg.arch}, {cfg.loss} loss)",
            tensorboard / f"fold{k + 1}" if tensorboard is not None else None,
        )
        checks = between_epoch_slices(val, cfg, device)
        scored_after = test if k == budget["folds"] - 1 else ()  # the test share is scored once, at the end
        closing = closing_validations(val, scored_after, checks, lambda s: count_tiles(s, cfg, device))
        result = fit_fold(
            model,
            train,
            val,
            cfg,
            device,
            fold_deadline,
            k,
            report_dir,
            on_epoch=tell,
            resume=current,
            snapshot=snapshot,
            timing=timing,
            replan=replanner(k, fold_start, closing) if distributed.is_main() else None,
            watch=watch,
            closing=closing,
            checks=checks,
        )
        if distributed.is_main():
            with timed(timing, "evaluation"):
                evaluate_fold(model, result, val, cfg, device, report_dir, echo, train)
        echo(
            f"fold {k + 1}: best validation Dice {result.val_dice:.4f} (epoch {result.best_epoch}, "
            f"stopped by {result.stopped})"
        )
        results.append(result)
        if progress is not None:
            with timed(timing, "checkpoints"):
                progress(lambda: run_state(time.monotonic() - start, results, None), force=True)
        if distributed.decide(time.monotonic() > deadline) and k + 1 < len(folds):
            echo(f"time limit reached: {len(folds) - k - 1} fold(s) not trained")
            break
    best = select_fold(results)
    if test and not cfg.ensemble and distributed.is_main():  # an ensemble is scored as one model, by the run
        with timed(timing, "evaluation"):
            model = build_network(cfg, in_channels, device, cfg.seed)
            model.load_state_dict(results[best].state_dict)
            score_test(model.eval(), results[best], test, cfg, device, echo)
    return TrainResult(
        folds=results, best_fold=best, test_keys=[s.key for s in test], seconds=time.monotonic() - start
    )


def _fewer_threads_when_busy(device: str, echo: Callable[[str], None]) -> None:
    """On a CPU, use only the cores other processes leave free (sampled now)."""
    import torch

    from ..device import cpu_threads

    if device != "cpu":
        return
    threads = cpu_threads()
    if threads < torch.get_num_threads():
        echo(f"other processes use the CPU: training goes on with {threads} thread(s)")
        torch.set_num_threads(threads)
