"""Cross-validated training: one fresh network per fold, the fold chosen on validation."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from .. import distributed
from ..config import TrainConfig
from ..slices import Slice, describe_split
from ..splits import kfold, split_test
from ..watch import FoldWatch
from .epoch import ranks
from .evaluation import between_epoch_slices
from .loop import fit_fold
from .network import build_network, freeze_encoder
from .planner import SLOWDOWN_TO_REPLAN, replan_folds
from .planning import count_tiles
from .results import FoldResult, TrainResult
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


@dataclass
class _Run:
    """What `cross_validate` carries from fold to fold."""

    cfg: TrainConfig
    device: str
    echo: Callable[[str], None]
    start: float
    deadline: float
    in_channels: int
    folds: list
    test: list[Slice]
    results: list[FoldResult]
    budget: _Budget
    timing: dict
    resume: dict | None
    progress: ProgressSaver | None
    report_dir: Path | None
    tensorboard: Path | None
    initial_state: dict | None
    tell: Callable[[dict], None] | None


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
    fold's model once on the test share (an ensemble is scored by `paulow.training.run.run_training`).

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

    if cfg.boundary_target == AUTO:  # settled by `paulow.training.run.run_training` (it sets the outputs)
        raise ValueError("boundary_target 'auto' is not settled: call paulow.boundaries.choose_target first")
    run = _start_run(
        slices, cfg, device, echo, timing, resume, spent, planned_step, on_epoch, progress, report_dir,
        tensorboard, initial_state,
    )  # fmt: skip
    folds, results, budget = run.folds, run.results, run.budget
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
        results.append(_train_fold(run, k, train, val, planned_step))
        if _after_fold(run, k):
            break
    return _score_selected(run)


def _after_fold(run: _Run, k: int) -> bool:
    """Save the run's state after fold `k`; True when the time limit leaves folds untrained."""
    progress, results, start, folds = run.progress, run.results, run.start, run.folds
    if progress is not None:
        with timed(run.timing, "checkpoints"):
            progress(lambda: run_state(time.monotonic() - start, results, None), force=True)
    if distributed.decide(time.monotonic() > run.deadline) and k + 1 < len(folds):
        run.echo(f"time limit reached: {len(folds) - k - 1} fold(s) not trained")
        return True
    return False


def _start_run(
    slices: Sequence[Slice],
    cfg: TrainConfig,
    device: str,
    echo: Callable[[str], None],
    timing: dict | None,
    resume: dict | None,
    spent: float,
    planned_step: float | None,
    on_epoch: Callable[[dict], None] | None,
    progress: ProgressSaver | None,
    report_dir: Path | None,
    tensorboard: Path | None,
    initial_state: dict | None,
) -> _Run:
    """The split, the clock, the folds finished before an interruption and the fold budget."""
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
    return _Run(
        cfg, device, echo, start, deadline, in_channels, folds, test, results, budget, timing,
        resume, progress, report_dir, tensorboard, initial_state, tell,
    )  # fmt: skip


def _train_fold(
    run: _Run, k: int, train: Sequence[Slice], val: Sequence[Slice], planned_step: float | None
) -> FoldResult:
    """Train fold `k` on a fresh network (or go on with it after a resume) and tune it."""
    cfg, device, echo, folds = run.cfg, run.device, run.echo, run.folds
    fold_start = time.monotonic()
    fold_deadline = fold_start + (run.deadline - fold_start) / (run.budget["folds"] - k)
    model = build_network(cfg, run.in_channels, device, cfg.seed + k)
    if run.initial_state is not None:
        model.load_state_dict(run.initial_state)
    if cfg.freeze_encoder:
        freeze_encoder(model)
    current = run.resume.get("current") if run.resume else None
    current = current if current and current["fold"] == k else None
    echo(
        f"fold {k + 1}/{len(folds)}: {describe_split('train', train)}; {describe_split('validation', val)}"
        + (f"; going on after epoch {current['epoch']}" if current else "")
    )
    snapshot, watch = _snapshot(run), _watch(run, k)
    checks = between_epoch_slices(val, cfg, device)
    scored_after = (
        run.test if k == run.budget["folds"] - 1 else ()
    )  # the test share is scored once, at the end
    closing = closing_validations(val, scored_after, checks, lambda s: count_tiles(s, cfg, device))
    result = fit_fold(
        model,
        train,
        val,
        cfg,
        device,
        fold_deadline,
        k,
        run.report_dir,
        on_epoch=run.tell,
        resume=current,
        snapshot=snapshot,
        timing=run.timing,
        replan=_replanner(run, k, fold_start, closing, planned_step) if distributed.is_main() else None,
        watch=watch,
        closing=closing,
        checks=checks,
    )
    if distributed.is_main():
        with timed(run.timing, "evaluation"):
            evaluate_fold(model, result, val, cfg, device, run.report_dir, echo, train)
    echo(
        f"fold {k + 1}: best validation Dice {result.val_dice:.4f} (epoch {result.best_epoch}, "
        f"stopped by {result.stopped})"
    )
    return result


def _snapshot(run: _Run) -> Callable[[Callable[[], dict]], None] | None:
    """What `fit_fold` calls after an epoch: the run's state with the folds finished so far."""
    progress = run.progress
    if progress is None:
        return None
    done, start = tuple(run.results), run.start

    def snapshot(make_fold_state: Callable[[], dict]) -> None:
        progress(lambda: run_state(time.monotonic() - start, done, make_fold_state()))

    return snapshot


def _watch(run: _Run, k: int) -> FoldWatch:
    """Fold `k`'s curves PNG and TensorBoard scalars."""
    return FoldWatch(
        run.report_dir / f"curves_fold{k + 1}.png" if run.report_dir is not None else None,
        f"fold {k + 1} ({run.cfg.arch}, {run.cfg.loss} loss)",
        run.tensorboard / f"fold{k + 1}" if run.tensorboard is not None else None,
    )


def _replanner(
    run: _Run, k: int, fold_start: float, closing: float, planned_step: float | None
) -> Callable[[float, float], float | None] | None:
    """Fold `k`'s re-planning after each epoch (None when the folds are fixed or time is unlimited):
    when steps are `SLOWDOWN_TO_REPLAN` times slower than planned, fewer folds get more time each."""
    budget, deadline = run.budget, run.deadline
    if budget["step"] is None or deadline == float("inf"):
        return None
    cfg, echo = run.cfg, run.echo

    def replan(step_seconds: float, val_seconds: float) -> float | None:
        step_before = budget["step"]
        assert step_before is not None  # replanner() gives no replan without a planned step
        if step_seconds < SLOWDOWN_TO_REPLAN * step_before:
            return None
        _fewer_threads_when_busy(run.device, echo)
        if budget["folds"] - k <= 1:
            return None
        left = deadline - fold_start
        keep = replan_folds(
            step_seconds,
            cfg.batch_size * ranks(),
            val_seconds,
            left,
            budget["folds"] - k,
            run.device,
            closing * val_seconds,
        )
        budget["step"] = step_seconds  # re-plan again only if it gets slower still
        if keep >= budget["folds"] - k:
            return None
        echo(
            f"re-planned: a step takes {step_seconds:.2f} s, not the {planned_step:.2f} s measured "
            f"before training (a busy machine?): {k + keep} of {len(run.folds)} folds will be trained"
        )
        budget["folds"] = k + keep
        return fold_start + left / keep

    return replan


def _score_selected(run: _Run) -> TrainResult:
    """Choose the fold on validation and score its model once on the test share."""
    cfg, results, test = run.cfg, run.results, run.test
    best = select_fold(results)
    if test and not cfg.ensemble and distributed.is_main():  # an ensemble is scored as one model, by the run
        with timed(run.timing, "evaluation"):
            model = build_network(cfg, run.in_channels, run.device, cfg.seed)
            model.load_state_dict(results[best].state_dict)
            score_test(model.eval(), results[best], test, cfg, run.device, run.echo)
    return TrainResult(
        folds=results, best_fold=best, test_keys=[s.key for s in test], seconds=time.monotonic() - run.start
    )


def _fewer_threads_when_busy(device: str, echo: Callable[[str], None]) -> None:
    """On a CPU, the run itself goes on with only the cores other processes leave free (sampled now)."""
    import torch

    from ..device import fewer_threads

    threads = fewer_threads(device)
    if threads is not None:  # the running loop's own choice, applied here and said
        echo(f"other processes use the CPU: training goes on with {threads} thread(s)")
        torch.set_num_threads(threads)
