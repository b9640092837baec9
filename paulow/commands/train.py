"""`train_model.py` / `paulow train`: validate the training folders, train, save, report, clear."""
from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

from ..data import Slice, load_pairs
from ..errors import UsageError
from ..config import TrainConfig, resolve_config
from ..device import pick_device
from ..train import TrainResult, cross_validate, time_steps
from ..workspace import Workspace
from .common import (add_file_log, ask_model_name, check_tensorboard, consume_inputs, remove_log,
                     tensorboard_dir, unique_dir)

log = logging.getLogger("paulow")

CONFIG_KEYS = ("arch", "arch_extra", "width", "depth", "classes", "loss", "loss_args", "optimizer", "epochs",
               "batch_size", "lr", "patch", "overlap", "per_epoch", "augment", "folds",
               "test_fraction", "seed", "time_limit", "patience", "ensemble", "workers", "threshold",
               "random_fraction", "weight_decay", "schedule", "gamma", "encoder_weights")


def arch_extra_from_args(args) -> dict | None:
    """Network options beyond width/depth: `--no-batch-norm`, `--norm`, `--dropout` (None if none)."""
    extra: dict = {}
    if getattr(args, "no_batch_norm", False):
        extra["batch_norm"] = False
    if getattr(args, "batch_norm", False):
        extra["batch_norm"] = True
    if getattr(args, "norm", None) is not None:
        extra["norm"] = args.norm
    if getattr(args, "dropout", None) is not None:
        extra["dropout"] = args.dropout
    return extra or None


def config_from_args(args, device: str) -> TrainConfig:
    """The run's configuration: preset for the device, then every option the user gave."""
    overrides = {k: getattr(args, k, None) for k in CONFIG_KEYS}
    if getattr(args, "no_augment", False):
        overrides["augment"] = False
    if getattr(args, "no_rotate", False):
        overrides["rotate"] = False
    overrides["arch_extra"] = arch_extra_from_args(args)
    if overrides.get("per_epoch") == 0:
        overrides["per_epoch"] = None
    cfg = resolve_config(overrides, getattr(args, "preset", None), device)
    if getattr(args, "time_limit", None) == 0:
        cfg.time_limit = None
    if getattr(args, "per_epoch", None) == 0:
        cfg.per_epoch = None
    cfg.device = device
    return cfg


def count_patches(slices: Sequence[Slice], cfg: TrainConfig) -> int:
    """Grid patches (all kept) per epoch before the random crops and the per-epoch cap."""
    from ..data import grid_starts

    step = cfg.patch - cfg.overlap
    return sum(len(grid_starts(max(s.image.shape[1], cfg.patch), cfg.patch, step))
               * len(grid_starts(max(s.image.shape[2], cfg.patch), cfg.patch, step)) for s in slices)


def print_plan(slices: Sequence[Slice], cfg: TrainConfig, device: str, echo=print,
               step_s: float | None = None) -> None:
    """Device, network, parameter count, images and patches per split, estimated run time
    (`step_s`: seconds per step already measured, else measured here)."""
    from ..models import build_model
    from ..train import plan_splits

    in_ch = int(slices[0].image.shape[0])
    net = build_model(cfg.arch, **cfg.arch_args(in_ch))
    params = sum(p.numel() for p in net.parameters())
    rest, test, folds = plan_splits(slices, cfg)
    import torch

    from ..device import usable_cores

    where = (f"cpu, {torch.get_num_threads()} of {usable_cores()} cores" if device == "cpu" else device)
    echo(f"device: {where}; network: {cfg.arch} width {cfg.width} depth {cfg.depth}, "
         f"{params:,} parameters, {in_ch} input channel(s), {cfg.classes} output(s); loss: {cfg.loss}")
    echo(f"data: {len(slices)} slice(s); test share: {len(test)} slice(s); {len(folds)} fold(s)")
    for k, (train, val) in enumerate(folds):
        grid = count_patches(train, cfg)
        pool = grid + round(cfg.random_fraction * grid)
        per_epoch = min(pool, cfg.per_epoch) if cfg.per_epoch else pool
        echo(f"  fold {k + 1}: train {len(train)} slice(s), {grid} grid patches of {cfg.patch}x{cfg.patch} "
             f"(+{pool - grid} random crops), {per_epoch} patches/epoch; validation {len(val)} slice(s)")
    step_s = time_steps(cfg, in_ch, device) if step_s is None else step_s
    pool_train = count_patches(folds[0][0], cfg) * (1 + cfg.random_fraction)
    per_epoch = min(pool_train, cfg.per_epoch) if cfg.per_epoch else pool_train
    estimate = step_s * per_epoch / cfg.batch_size * cfg.epochs * len(folds)
    limit = cfg.time_limit * 60 if cfg.time_limit else None
    shown = min(estimate, limit) if limit else estimate
    echo(f"estimated training time: {_fmt(shown)} ({step_s:.2f} s per batch of {cfg.batch_size} measured; "
         f"{cfg.epochs} epochs x {len(folds)} folds"
         + (f", capped by --time-limit {cfg.time_limit:g} min" if limit and estimate > limit else "")
         + "; early stopping may end sooner)")


def _fmt(seconds: float) -> str:
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m" if seconds >= 3600 \
        else f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def source_hashes(slices: Sequence[Slice], hashes: dict[str, str], root: Path) -> dict[str, str]:
    """SHA-256 of each image file for the model's metadata, from the hashes the run already took."""
    from .resume import input_key

    return {str(s.source): hashes[input_key(s.source, root)] for s in slices}


def write_report(report_dir: Path, cfg: TrainConfig, slices: Sequence[Slice], result: TrainResult,
                 meta: dict, timing: dict | None = None) -> None:
    """History, metrics (JSON + CSV), configuration, regime counts, dataset summary, and where the
    time went (`timing.json`, see `timing_summary`). The curves per fold are drawn while training
    (`paulow.watch.FoldWatch`)."""
    from ..report import dataset_summary, write_csv, write_json

    report_dir.mkdir(parents=True, exist_ok=True)
    history = [row for f in result.folds for row in f.history]
    write_csv(report_dir / "history.csv", history)
    write_json(report_dir / "metrics.json", meta["metrics"])
    write_csv(report_dir / "metrics.csv", meta["metrics"]["folds"]
              + [{"fold": "test (selected model)", "test_dice": meta["metrics"]["test_dice"]}])
    write_json(report_dir / "config.json", asdict(cfg))
    write_json(report_dir / "split.json", meta["split"])
    write_json(report_dir / "dataset_summary.json",
               {"summary": dataset_summary([s.info for s in slices]), "slices": [s.info for s in slices]})
    regimes = [{k: row[k] for k in ("fold", "epoch", "regime_empty", "regime_small", "regime_large")}
               for row in history]
    write_csv(report_dir / "loss_regimes.csv", regimes)
    if timing is not None:
        write_json(report_dir / "timing.json", timing)


def timing_summary(timing: dict[str, float], total: float) -> dict:
    """Seconds and percent of the run's wall-clock time per part (the rest under `other`)."""
    parts = {k: round(v, 2) for k, v in timing.items()}
    parts["other"] = round(max(0.0, total - sum(timing.values())), 2)
    return {"total_seconds": round(total, 2), "seconds": parts,
            "percent": {k: round(100 * v / total, 1) if total > 0 else 0.0 for k, v in parts.items()}}


def timing_line(summary: dict) -> str:
    """One line: where the run's time went."""
    names = {"gradient_steps": "gradient steps", "validation": "validation",
             "evaluation": "threshold/test/panels", "data_loading": "data loading", "checkpoints": "checkpoints",
             "planning": "planning", "other": "other"}
    return f"time ({_fmt(summary['total_seconds'])}): " + ", ".join(
        f"{names.get(k, k)} {summary['seconds'][k]:.0f} s ({p:.0f} %)" for k, p in summary["percent"].items())


def run(args, echo=print) -> Path:
    """The whole train command; returns the saved model path."""
    from ..train import ProgressSaver
    from . import resume as resume_file

    check_tensorboard(args)
    ws = Workspace(Path(args.root))
    ws.require(ws.train_images, ws.train_masks)
    ws.models.mkdir(parents=True, exist_ok=True)
    device = pick_device(args.device or "auto")
    resumed = _stopped_run(ws, args, device, echo) if getattr(args, "resume", None) else None
    cfg = resumed["cfg"] if resumed else config_from_args(args, device)
    slices = load_pairs(ws.train_images, ws.train_masks, cfg.classes)
    inputs = sorted({s.source for s in slices} | {ws.train_masks / s.info["mask_file"] for s in slices})
    hashes = resume_file.input_hashes(inputs, ws.root)
    name = _resumed_name(ws, resumed, hashes, args.overwrite) if resumed else _new_name(ws, args, echo)
    with ws.lock():
        report_dir = resumed["report_dir"] if resumed else ws.models / f"{name}_report"
        if not resumed and not args.overwrite:
            report_dir = unique_dir(report_dir)
        state_path = report_dir / resume_file.RESUME_FILE
        progress = ProgressSaver(lambda state: resume_file.save_state(state_path, name, asdict(cfg),
                                                                      hashes, state))
        handler = add_file_log(report_dir / "train.log")
        try:
            path, meta = _train_and_save(ws, slices, cfg, device, name, report_dir, args, echo,
                                         resumed["payload"]["state"] if resumed else None, progress,
                                         source_hashes(slices, hashes, ws.root))
        except BaseException:
            if state_path.exists():
                echo(f"training stopped; nothing was deleted. To go on where it stopped: "
                     f"train_model.py --resume {name}")
            raise
        finally:
            remove_log(handler)
        state_path.unlink(missing_ok=True)
        echo(f"saved model: {path}")
        echo(f"report: {report_dir}")
        td = meta["metrics"]["test_dice"]
        echo(f"selected fold {meta['metrics']['best_fold']}; test Dice "
             + (f"{td:.4f}" if td is not None else "n/a (too few images for a test share)"))
        consume_inputs(inputs, args.keep_inputs, "Train_Model", echo)
    return path


def _train_and_save(ws: Workspace, slices: Sequence[Slice], cfg: TrainConfig, device: str, name: str,
                    report_dir: Path, args, echo, resume: dict | None, progress,
                    file_hashes: dict[str, str]) -> tuple[Path, dict]:
    """Plan, cross-validate, save the verified model file and the report; return (path, metadata)."""
    import time

    from ..checkpoint import save_checkpoint
    from ..train import dice_on_slices, new_timing, timed, training_meta

    start, timing = time.monotonic(), new_timing()
    step_s = None
    if resume is None:  # a resumed run keeps its planned folds and rhythm (saved in its config)
        with timed(timing, "planning"):
            step_s = _plan(slices, cfg, device, args, echo)
    print_plan(slices, cfg, device, echo, step_s)
    explicit_folds = getattr(args, "folds", None) is not None
    result = cross_validate(slices, cfg, device, report_dir, echo, resume=resume, progress=progress,
                            timing=timing, spent=time.monotonic() - start,
                            planned_step=None if explicit_folds else step_s,
                            tensorboard=tensorboard_dir(args, name))
    in_ch = int(slices[0].image.shape[0])
    ens_dice = None
    if cfg.ensemble and result.test_keys:
        with timed(timing, "evaluation"):
            models = [_rebuild(cfg, in_ch, f.state_dict, device) for f in result.folds]
            test = [s for s in slices if s.key in set(result.test_keys)]
            ens_dice = dice_on_slices(models, test, cfg, device)
    meta = training_meta(cfg, slices, result, in_ch, file_hashes, ens_dice)
    meta["name"] = name
    with timed(timing, "checkpoints"):
        path = save_checkpoint(ws.models / f"{name}.pth", result.state_dicts(cfg.ensemble), meta)
    summary = timing_summary(timing, time.monotonic() - start)
    write_report(report_dir, cfg, slices, result, meta, summary)
    _write_options(report_dir, args)
    echo(timing_line(summary))
    return path, meta


def _plan(slices: Sequence[Slice], cfg: TrainConfig, device: str, args, echo=print) -> float:
    """Plan folds and validation rhythm for the time limit (an explicit --folds is obeyed), set them
    in `cfg`, print the plan; return the measured seconds per training step."""
    from ..train import plan_run

    plan, step_s = plan_run(slices, cfg, device, folds_explicit=getattr(args, "folds", None) is not None)
    cfg.folds, cfg.val_share = plan.folds, plan.val_ratio
    echo(plan.line())
    return step_s


def _new_name(ws: Workspace, args, echo=print) -> str:
    """The new model's name (`--name` or asked), after pointing out runs that could be resumed."""
    _mention_stopped_runs(ws, echo)
    default_name = f"model_{_dt.datetime.now():%Y%m%d_%H%M}"
    return ask_model_name(args.name, ws.models, args.overwrite, args.yes, default_name)


def _resumed_name(ws: Workspace, resumed: dict, hashes: dict[str, str], overwrite: bool) -> str:
    """The stopped run's name, once its inputs are checked and its model file name is still free."""
    from . import resume as resume_file

    resume_file.check_inputs(resumed["payload"]["inputs"], hashes)
    name = resumed["payload"]["name"]
    if (ws.models / f"{name}.pth").exists() and not overwrite:
        raise UsageError(f"a model '{name}.pth' exists already in '{ws.models}': move it away, or "
                         "add --overwrite to replace it")
    return name


def _stopped_run(ws: Workspace, args, device: str, echo=print) -> dict:
    """The stopped run `--resume [NAME]` names: its resume file's payload, settings and report folder."""
    from . import resume as resume_file

    path = resume_file.find_state(ws.models, args.resume)
    payload = resume_file.load_state(path)
    known = set(TrainConfig.__dataclass_fields__)
    cfg = TrainConfig(**{k: v for k, v in payload["config"].items() if k in known})
    cfg.device = device
    state = payload["state"]
    echo(f"resuming '{payload['name']}' with its own settings: {len(state['folds'])} fold(s) finished, "
         f"{state['seconds'] / 60:.1f} min spent"
         + (f", fold {state['current']['fold'] + 1} after epoch {state['current']['epoch']}"
            if state.get("current") else ""))
    return {"payload": payload, "cfg": cfg, "report_dir": path.parent}


def _mention_stopped_runs(ws: Workspace, echo=print) -> None:
    from . import resume as resume_file

    runs = resume_file.resumable_runs(ws.models)
    if runs:
        names = ", ".join(p.parent.name.rsplit("_report", 1)[0] for p in runs)
        echo(f"note: stopped run(s) {names} can be continued with --resume NAME; starting a new run")


def _write_options(report_dir: Path, args) -> None:
    """The effective command-line/config-file options of the run, beside the training config."""
    from ..cli import effective_options
    from ..report import write_json

    write_json(report_dir / "options.json", effective_options(args))


def _rebuild(cfg: TrainConfig, in_ch: int, state: dict, device: str):
    from ..train import build_network

    model = build_network(cfg, in_ch, device, 0)
    model.load_state_dict(state)
    return model.eval()


__all__ = ["run", "config_from_args", "print_plan"]
