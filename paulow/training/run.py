"""A whole training run on `Slice` records, shared by `paulow.train` and `train_model.py`: plan the
folds and validation rhythm for the time limit, cross-validate, score an ensemble, build the model
file's metadata, and write the report with where the time went. No files are read, no prompts."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import cast

from .. import distributed
from ..config import TrainConfig
from ..slices import Slice
from .cross_validation import cross_validate
from .planning import time_steps
from .results import TrainResult
from .state import ProgressSaver

Echo = Callable[[str], None]


@dataclass(frozen=True)
class RunPlan:
    """What the planner settled for a run before its first epoch; the user's config stays as given,
    the folds train with `trained(cfg)`."""

    folds: int
    val_share: float  # validation seconds per training second
    epochs: int  # the epoch cap (the given one, or one the time limit reaches first)
    patches_per_fold: int | None  # expected training patches per fold (None: no time limit)
    step_s: float  # seconds per training step, measured while planning

    def trained(self, cfg: TrainConfig) -> TrainConfig:
        """The config the folds train with: `cfg` with the planned folds, validation share and epochs."""
        return replace(cfg, folds=self.folds, val_share=self.val_share, epochs=self.epochs)


@dataclass
class TrainingRun:
    """What a run produced: the config it trained with, the folds, the model file's metadata, and
    the seconds per part."""

    cfg: TrainConfig  # as trained: the user's settings with the plan (`RunPlan.trained`)
    slices: Sequence[Slice]
    result: TrainResult
    meta: dict
    timing: dict[str, float]
    started: float  # time.monotonic() at the start
    plan: RunPlan | None = None  # None for a resumed run: it keeps its saved plan

    def state_dicts(self) -> list[dict]:
        """The weights to save: the selected fold, or every fold of an ensemble."""
        return self.result.state_dicts(self.cfg.ensemble)

    def finish(self, report_dir: Path | None, echo: Echo) -> dict:
        """Write the report (when a folder is given) and say where the time went; return that summary."""
        summary = timing_summary(self.timing, time.monotonic() - self.started)
        if report_dir is not None:
            write_report(report_dir, self.cfg, self.slices, self.result, self.meta, summary)
        echo(timing_line(summary))
        return summary


def run_training(
    slices: Sequence[Slice],
    cfg: TrainConfig,
    device: str,
    report_dir: Path | None = None,
    echo: Echo = print,
    *,
    folds_explicit: bool = False,
    epochs_explicit: bool = True,
    resume: dict | None = None,
    save_state: Callable[[TrainConfig, dict], None] | None = None,
    file_hashes: dict[str, str] | None = None,
    tensorboard: Path | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> TrainingRun:
    """Plan (unless resuming: a resumed run keeps its saved plan), print the plan, cross-validate,
    score an ensemble on the test share. `cfg` is never changed: the folds train with a copy holding
    the settled boundary target and the plan's folds, validation share and epochs (`RunPlan`).

    A planned run re-plans its folds when the machine gets slower (unless `folds_explicit`); unless
    `epochs_explicit`, a time-limited run's epoch cap leaves the time limit to end each fold.
    `save_state(cfg, state)` keeps the resume state (`cross_validate`'s `progress`) with the config
    the folds train with; `tensorboard`: a folder for TensorBoard event files; `on_epoch`: see
    `cross_validate`. Under torchrun every rank calls this: rank 0 plans (its plan is broadcast),
    prints, and scores the ensemble; the others train their share."""
    from .metadata import training_meta
    from .timing import new_timing, timed

    start, timing = time.monotonic(), new_timing()
    slices, cfg, planned = _settled(
        slices, cfg, device, echo, timing, resume, folds_explicit, epochs_explicit
    )
    step_s = planned.step_s if planned else None
    if distributed.is_main():
        print_plan(slices, cfg, device, echo, step_s)
    result = cross_validate(
        slices,
        cfg,
        device,
        report_dir,
        echo,
        resume=resume,
        progress=ProgressSaver(partial(save_state, cfg)) if save_state is not None else None,
        timing=timing,
        spent=time.monotonic() - start,
        planned_step=None if folds_explicit else step_s,
        tensorboard=tensorboard,
        on_epoch=on_epoch,
    )
    in_ch = int(slices[0].image.shape[0])
    ens_scores = None
    if cfg.ensemble and result.test_keys and distributed.is_main():
        with timed(timing, "evaluation"):
            ens_scores = _ensemble_scores(slices, cfg, device, result, in_ch)
    meta = training_meta(cfg, slices, result, in_ch, file_hashes or {}, ens_scores)
    return TrainingRun(cfg, slices, result, meta, timing, start, planned)


def _settled(
    slices: Sequence[Slice],
    cfg: TrainConfig,
    device: str,
    echo: Echo,
    timing: dict[str, float],
    resume: dict | None,
    folds_explicit: bool,
    epochs_explicit: bool,
) -> tuple[Sequence[Slice], TrainConfig, RunPlan | None]:
    """The slices and the config the folds train with, and the plan (None when resuming: a resumed
    config holds its plan): the boundary target settled from the masks (before the plan: it has 3
    outputs), then the plan's folds, validation share and epochs. `cfg` itself is not changed."""
    from ..boundaries import choose_target, with_boundary_targets
    from .timing import timed

    cfg = choose_target(slices, cfg, echo)
    if cfg.boundary_target:
        slices = with_boundary_targets(slices, cast(int, cfg.boundary_target))  # an int once settled
    if resume is not None:
        return slices, cfg, None
    with timed(timing, "planning"):  # rank 0 plans; every rank gets its plan
        planned = distributed.on_main(
            lambda: plan(slices, cfg, device, folds_explicit, echo, epochs_explicit)
        )
    return slices, planned.trained(cfg), planned


def _ensemble_scores(
    slices: Sequence[Slice], cfg: TrainConfig, device: str, result: TrainResult, in_ch: int
) -> dict:
    """The ensemble of all folds scored on the test share (see `scores_on_slices`)."""
    from .evaluation import scores_on_slices

    models = [_rebuild(cfg, in_ch, f.state_dict, device) for f in result.folds]
    test = [s for s in slices if s.key in set(result.test_keys)]
    return scores_on_slices(models, test, cfg, device, result.folds[result.best_fold].min_size)


def plan(
    slices: Sequence[Slice],
    cfg: TrainConfig,
    device: str,
    folds_explicit: bool,
    echo: Echo = print,
    epochs_explicit: bool = True,
) -> RunPlan:
    """Plan folds and validation rhythm for `cfg`'s time limit (explicit folds are obeyed) and,
    unless `epochs_explicit`, an epoch cap the time limit reaches first (see
    `planner.epochs_for_time`); print the plan and return it (`cfg` is not changed)."""
    from .planner import epochs_for_time
    from .planning import plan_run

    planned, step_s = plan_run(slices, cfg, device, folds_explicit=folds_explicit)
    epochs = cfg.epochs
    if cfg.time_limit and not epochs_explicit:
        epochs = epochs_for_time(cfg.epochs, cfg.per_epoch, planned.patches_per_fold)
    echo(planned.line())
    return RunPlan(planned.folds, planned.val_ratio, epochs, planned.patches_per_fold, step_s)


def count_patches(slices: Sequence[Slice], cfg: TrainConfig) -> int:
    """Grid patches (all kept) per epoch before the random crops and the per-epoch cap."""
    from ..patches import grid_starts

    step = cfg.patch - cfg.overlap
    return sum(
        len(grid_starts(max(s.image.shape[1], cfg.patch), cfg.patch, step))
        * len(grid_starts(max(s.image.shape[2], cfg.patch), cfg.patch, step))
        for s in slices
    )


def print_plan(
    slices: Sequence[Slice], cfg: TrainConfig, device: str, echo=print, step_s: float | None = None
) -> None:
    """Device, network, parameter count, images and patches per split, estimated run time
    (`step_s`: seconds per step already measured, else measured here)."""
    from ..models import build_model
    from .cross_validation import plan_splits

    in_ch = int(slices[0].image.shape[0])
    net = build_model(cfg.arch, **cfg.arch_args(in_ch))
    params = sum(p.numel() for p in net.parameters())
    rest, test, folds = plan_splits(slices, cfg)
    import torch

    from ..device import usable_cores

    where = f"cpu, {torch.get_num_threads()} of {usable_cores()} cores" if device == "cpu" else device
    echo(
        f"device: {where}; network: {cfg.arch} width {cfg.width} depth {cfg.depth}, "
        f"{params:,} parameters, {in_ch} input channel(s), {cfg.classes} output(s); loss: {cfg.loss}"
    )
    echo(f"data: {len(slices)} slice(s); test share: {len(test)} slice(s); {len(folds)} fold(s)")
    for k, (train, val) in enumerate(folds):
        grid = count_patches(train, cfg)
        pool = grid + round(cfg.random_fraction * grid)
        per_epoch = min(pool, cfg.per_epoch) if cfg.per_epoch else pool
        echo(
            f"  fold {k + 1}: train {len(train)} slice(s), {grid} grid patches of {cfg.patch}x{cfg.patch} "
            f"(+{pool - grid} random crops), {per_epoch} patches/epoch; validation {len(val)} slice(s)"
        )
    step_s = time_steps(cfg, in_ch, device) if step_s is None else step_s
    pool_train = count_patches(folds[0][0], cfg) * (1 + cfg.random_fraction)
    train_per_epoch = min(pool_train, cfg.per_epoch) if cfg.per_epoch else pool_train
    estimate = step_s * train_per_epoch / cfg.batch_size * cfg.epochs * len(folds)
    limit = cfg.time_limit * 60 if cfg.time_limit else None
    shown = min(estimate, limit) if limit else estimate
    echo(
        f"estimated training time: {_fmt(shown)} ({step_s:.2f} s per batch of {cfg.batch_size} measured; "
        f"{cfg.epochs} epochs x {len(folds)} folds"
        + (f", capped by --time-limit {cfg.time_limit:g} min" if limit and estimate > limit else "")
        + "; early stopping may end sooner)"
    )


def _fmt(seconds: float) -> str:
    return (
        f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
        if seconds >= 3600
        else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    )


def write_report(
    report_dir: Path,
    cfg: TrainConfig,
    slices: Sequence[Slice],
    result: TrainResult,
    meta: dict,
    timing: dict | None = None,
) -> None:
    """History, metrics (JSON + CSV), configuration, regime counts, dataset summary, and where the
    time went (`timing.json`, see `timing_summary`). The curves per fold are drawn while training
    (`paulow.watch.FoldWatch`)."""
    from ..report import dataset_summary, write_csv, write_json
    from ..scoring import class_columns

    report_dir.mkdir(parents=True, exist_ok=True)
    history = [row for f in result.folds for row in f.history]
    write_csv(report_dir / "history.csv", history)
    write_json(report_dir / "metrics.json", meta["metrics"])
    per_class = meta["metrics"].get("test_dice_per_class") or {}
    write_csv(
        report_dir / "metrics.csv",
        meta["metrics"]["folds"]
        + [
            {
                "fold": "test (selected model)",
                "test_dice": meta["metrics"]["test_dice"],
                **class_columns("test_dice", list(per_class.values()), list(per_class)),
            }
        ],
    )
    write_json(report_dir / "config.json", asdict(cfg))
    write_json(report_dir / "split.json", meta["split"])
    write_json(
        report_dir / "dataset_summary.json",
        {"summary": dataset_summary([s.info for s in slices]), "slices": [s.info for s in slices]},
    )
    regimes = [
        {k: row[k] for k in ("fold", "epoch", "regime_empty", "regime_small", "regime_large")}
        for row in history
    ]
    write_csv(report_dir / "loss_regimes.csv", regimes)
    if timing is not None:
        write_json(report_dir / "timing.json", timing)


def test_line(meta: dict) -> str:
    """The closing summary: selected fold and test Dice (K >= 2: the mean over the foreground
    classes, then each class by name; a boundary model: its object masks' Dice, then each class)."""
    metrics = meta["metrics"]
    td, per_class = metrics["test_dice"], metrics.get("test_dice_per_class")
    if td is None:
        return f"selected fold {metrics['best_fold']}; test Dice n/a (too few images for a test share)"
    if not per_class:
        return f"selected fold {metrics['best_fold']}; test Dice {td:.4f}"
    if metrics.get("test_dice_objects") is not None:  # a boundary model: its product is the object mask
        return (
            f"selected fold {metrics['best_fold']}; test Dice {metrics['test_dice_objects']:.4f} (object "
            f"masks, as use_model.py writes them; per class: "
            + ", ".join(f"{name} {dice:.4f}" for name, dice in list(per_class.items())[1:])
            + ")"
        )
    return (
        f"selected fold {metrics['best_fold']}; test Dice {td:.4f} (mean over foreground classes; "
        + ", ".join(f"{name} {dice:.4f}" for name, dice in list(per_class.items())[1:])
        + ")"
    )


def timing_summary(timing: dict[str, float], total: float) -> dict:
    """Seconds and percent of the run's wall-clock time per part (the rest under `other`)."""
    parts = {k: round(v, 2) for k, v in timing.items()}
    parts["other"] = round(max(0.0, total - sum(timing.values())), 2)
    return {
        "total_seconds": round(total, 2),
        "seconds": parts,
        "percent": {k: round(100 * v / total, 1) if total > 0 else 0.0 for k, v in parts.items()},
    }


def timing_line(summary: dict) -> str:
    """One line: where the run's time went."""
    names = {
        "gradient_steps": "gradient steps",
        "validation": "validation",
        "evaluation": "threshold/test/panels",
        "data_loading": "data loading",
        "checkpoints": "checkpoints",
        "planning": "planning",
        "other": "other",
    }
    return f"time ({_fmt(summary['total_seconds'])}): " + ", ".join(
        f"{names.get(k, k)} {summary['seconds'][k]:.0f} s ({p:.0f} %)" for k, p in summary["percent"].items()
    )


def _rebuild(cfg: TrainConfig, in_ch: int, state: dict, device: str):
    from .network import build_network

    model = build_network(cfg, in_ch, device, 0)
    model.load_state_dict(state)
    return model.eval()
