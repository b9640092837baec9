"""Cross-validated training: one fold's fit loop, early stopping, time budget, model selection.

Model selection uses whole held-out images and the same sliding-window inference users get
(`paulow.infer.predict_slice`), never patch-level scores.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path
from typing import Any, TypedDict, cast

import numpy as np

from . import distributed
from .config import PRESETS, TrainConfig, resolve_config  # noqa: F401  (re-exported)
from .data import Augment, PatchDataset, Slice, describe_split, kfold, labelled_of, one_hot, split_test
from .device import pick_device  # noqa: F401  (re-exported)
from .intensity import normalisation_spec
from .planner import SLOWDOWN_TO_REPLAN, Plan, plan_budget, replan_folds
from .scoring import (
    THRESHOLD_CANDIDATES,
    class_columns,
    score_probabilities,
    sweep_object_thresholds,
    sweep_thresholds,
)
from .watch import FoldWatch

log = logging.getLogger("paulow")


class _Budget(TypedDict):
    folds: int  # the folds the run now plans to train (a re-plan lowers it)
    step: float | None  # seconds per step the plan assumed; None: the folds are fixed


def masks_of(slices: Sequence[Slice]) -> list[np.ndarray]:
    """The masks of labelled slices (training, validation and test slices always carry one)."""
    return [cast(np.ndarray, s.mask) for s in slices]


# where a run's time goes (seconds, summed with `timed`; see `timing.json` in the report)
TIMING_KEYS = ("gradient_steps", "validation", "evaluation", "data_loading", "checkpoints", "planning")


def new_timing() -> dict[str, float]:
    """An empty timing account (`evaluation`: threshold tuning, test score and panels)."""
    return {k: 0.0 for k in TIMING_KEYS}


@contextmanager
def timed(timing: dict | None, key: str) -> Iterator[None]:
    """Add the wall-clock seconds of the block to `timing[key]` (nothing when `timing` is None)."""
    start = time.monotonic()
    try:
        yield
    finally:
        if timing is not None:
            timing[key] = timing.get(key, 0.0) + time.monotonic() - start


# ---------------------------------------------------------------- results
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


# ---------------------------------------------------------------- evaluation
def predict_slices(models, slices: Sequence[Slice], cfg: TrainConfig, device: str) -> list[np.ndarray]:
    """Probabilities of whole slices with the standard inference (predicted once, then reused)."""
    from .infer import predict_slice, suggest_tile

    return [
        predict_slice(
            models,
            s.image,
            tile=suggest_tile(cfg.patch, device),
            overlap=cfg.infer_overlap,
            batch_size=max(cfg.batch_size, 4),
            device=device,
        )
        for s in slices
    ]


def validation_probabilities(
    model, slices: Sequence[Slice], cfg: TrainConfig, device: str
) -> list[np.ndarray]:
    """`predict_slices` for the between-epoch validations; on the device path (CUDA, see
    `paulow.device_batches`) with the tiles of all slices batched together when they fit."""
    from . import device_batches
    from .device_validation import fits_on_device, predict_batched
    from .infer import suggest_tile

    images = [s.image for s in slices]
    tile = suggest_tile(cfg.patch, device)
    if not (device_batches.use_device_batches(device) and fits_on_device(images, tile, device)):
        return predict_slices(model, slices, cfg, device)
    batch = max(cfg.batch_size, 4)
    return predict_batched(
        model, images, tile=tile, overlap=cfg.infer_overlap, batch_size=batch, device=device
    )


def scores_on_slices(
    models, slices: Sequence[Slice], cfg: TrainConfig, device: str, min_size: int = 0
) -> dict:
    """`score_probabilities` of whole slices at the config's threshold: `dice` (the selection score)
    and `dice_c` (per class for K >= 2)."""
    return score_probabilities(
        predict_slices(models, slices, cfg, device),
        masks_of(slices),
        cfg.threshold,
        min_size,
        objects=bool(cfg.boundary_target),
        valid=labelled_of(slices),
    )


def dice_by_threshold(
    models,
    slices: Sequence[Slice],
    cfg: TrainConfig,
    device: str,
    thresholds: Sequence[float],
    min_size: int = 0,
) -> list[float]:
    """Pooled selection score (binary Dice, or mean foreground-class Dice) at each threshold."""
    probs = predict_slices(models, slices, cfg, device)
    truths, valid = masks_of(slices), labelled_of(slices)
    return [score_probabilities(probs, truths, t, min_size, valid=valid)["dice"] for t in thresholds]


def dice_on_slices(
    models,
    slices: Sequence[Slice],
    cfg: TrainConfig,
    device: str,
    threshold: float | None = None,
    min_size: int = 0,
) -> float:
    """Pooled selection score over whole slices (threshold: the config's unless given; binary masks
    without their objects under `min_size` px, as a model file with that size is used)."""
    return dice_by_threshold(
        models, slices, cfg, device, [cfg.threshold if threshold is None else threshold], min_size
    )[0]


def between_epoch_slices(val: Sequence[Slice], cfg: TrainConfig, device: str) -> list[Slice]:
    """The slices the between-epoch validations score: `val`, or a fixed subset of its inference
    tiles when they are more than `cfg.val_tiles` (see `paulow.validation_subset`)."""
    from .infer import suggest_tile
    from .validation_subset import validation_subset

    return validation_subset(
        val, suggest_tile(cfg.patch, device), cfg.infer_overlap, cfg.val_tiles, cfg.seed, cfg.classes
    )


def tune_threshold(models, slices: Sequence[Slice], cfg: TrainConfig, device: str) -> tuple[float, float]:
    """The probability threshold with the best validation Dice (ties: the one nearest 0.5); a
    boundary model's on its object probability."""
    probs = predict_slices(models, slices, cfg, device)
    return tune_on_probabilities(probs, masks_of(slices), bool(cfg.boundary_target), labelled_of(slices))


# ---------------------------------------------------------------- one fold
def loss_options(cfg: TrainConfig, train: Sequence[Slice]) -> dict:
    """`cfg.loss_args` with `class_weights: "auto"` resolved to inverse class frequencies of the
    training masks (K >= 2; normalised to mean 1 over the classes present)."""
    args = dict(cfg.loss_args)
    if args.get("class_weights") != "auto":
        return args
    if cfg.classes < 2:
        args.pop("class_weights")
        return args
    counts = sum(
        (
            np.bincount(_labelled_pixels(s).astype(np.int64), minlength=cfg.classes)[: cfg.classes]
            for s in train
        ),
        np.zeros(cfg.classes, dtype=np.int64),
    ).astype(np.float64)
    inverse = np.where(counts > 0, counts.sum() / np.maximum(counts, 1), 0.0)
    args["class_weights"] = (inverse * np.count_nonzero(counts) / max(inverse.sum(), 1e-12)).tolist()
    log.info("class weights (inverse frequency): %s", ", ".join(f"{w:.3f}" for w in args["class_weights"]))
    return args


def _labelled_pixels(s: Slice) -> np.ndarray:
    """A slice's mask values on its labelled pixels (all of them for dense labels), flat."""
    mask = cast(np.ndarray, s.mask)
    return mask.ravel() if s.labelled is None else mask[s.labelled]


def output_activation(cfg: TrainConfig) -> str:
    """ "softmax" over channels for K >= 2 mutually exclusive classes, "sigmoid" for binary."""
    return "softmax" if cfg.classes >= 2 else "sigmoid"


def build_network(cfg: TrainConfig, in_channels: int, device: str, seed: int):
    """A freshly initialised network (seeded), on `device`."""
    import torch

    from .models import build_model

    torch.manual_seed(seed)
    model = build_model(cfg.arch, **cfg.arch_args(in_channels))
    if cfg.encoder_weights:
        from .models import VGG16UNet, load_vgg16_encoder

        if cfg.arch != "vgg16_unet":
            from .errors import UsageError

            raise UsageError("--encoder-weights is for --arch vgg16_unet (a VGG16 state dict)")
        load_vgg16_encoder(cast("VGG16UNet", model), cfg.encoder_weights)
    model = model.to(device)
    model.paulow_activation = output_activation(cfg)  # type: ignore[assignment]  # a str attribute, read by infer.predict_slice
    if device.startswith("cuda"):
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs omit memory_format
    return model


class WarmupCosine:
    """Linear warm-up then cosine decay, driven by progress in [0, 1].

    Progress is the larger of the step fraction and the time-budget fraction, so a time-boxed run
    still anneals its learning rate before the budget ends.
    """

    def __init__(self, opt, warmup: float, floor: float = 0.05) -> None:
        self.opt, self.warmup, self.floor = opt, max(warmup, 1e-6), floor
        self.base = [g["lr"] for g in opt.param_groups]
        self.set(0.0)

    def factor(self, progress: float) -> float:
        progress = min(max(progress, 0.0), 1.0)
        if progress < self.warmup:
            return self.floor + (1 - self.floor) * progress / self.warmup
        rest = (progress - self.warmup) / max(1e-6, 1 - self.warmup)
        return self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * rest))

    def set(self, progress: float) -> None:
        f = self.factor(progress)
        for group, base in zip(self.opt.param_groups, self.base):
            group["lr"] = base * f


class StepDecay(WarmupCosine):
    """`lr x gamma^e` after the same linear warm-up, `e` the planned epochs done (progress x epochs;
    exact epochs when no time limit cuts the run): the liver system's per-epoch decay."""

    def __init__(self, opt, warmup: float, gamma: float, epochs: int) -> None:
        self.gamma, self.epochs = gamma, max(1, epochs)
        super().__init__(opt, warmup)

    def factor(self, progress: float) -> float:
        progress = min(max(progress, 0.0), 1.0)
        if progress < self.warmup:
            return self.floor + (1 - self.floor) * progress / self.warmup
        return self.gamma ** math.floor(progress * self.epochs)


class ConstantRate(WarmupCosine):
    """The learning rate as given, after the linear warm-up."""

    def factor(self, progress: float) -> float:
        progress = min(max(progress, 0.0), 1.0)
        return self.floor + (1 - self.floor) * progress / self.warmup if progress < self.warmup else 1.0


SCHEDULES = ("cosine", "step", "constant")


def make_schedule(opt, cfg: TrainConfig) -> WarmupCosine:
    """The learning-rate schedule named by `cfg.schedule` (warm-up + cosine by default)."""
    if cfg.schedule == "step":
        return StepDecay(opt, cfg.warmup_fraction, cfg.gamma, cfg.epochs)
    if cfg.schedule == "constant":
        return ConstantRate(opt, cfg.warmup_fraction)
    if cfg.schedule != "cosine":
        from .errors import UsageError

        raise UsageError(f"unknown schedule {cfg.schedule!r}: choose one of {', '.join(SCHEDULES)}")
    return WarmupCosine(opt, cfg.warmup_fraction)


def make_optimizer(model, cfg: TrainConfig):
    """AdamW (or Adam for the paper preset) and its learning-rate schedule (`make_schedule`)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr, foreach=True)
    else:
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    return opt, make_schedule(opt, cfg)


def freeze_encoder(model) -> int:
    """Freeze the encoder blocks (down path and bottleneck); return the number of frozen tensors."""
    frozen = 0
    for block in model.encoder_blocks():
        for param in block.parameters():
            param.requires_grad_(False)
            frozen += 1
    return frozen


def _loader(dataset: PatchDataset, cfg: TrainConfig, device: str):
    """Shuffled batches of the epoch's patches (under torchrun: this rank's share of them)."""
    import torch

    sampler = distributed.sampler(dataset, cfg.seed)
    share = len(sampler) if sampler is not None else len(dataset)
    return torch.utils.data.DataLoader(
        dataset,  # type: ignore[arg-type]  # map-style (__len__, __getitem__), not a torch Dataset subclass
        batch_size=cfg.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=share > cfg.batch_size,
        num_workers=cfg.workers,
        pin_memory=device.startswith("cuda"),
        persistent_workers=cfg.workers > 0,
        generator=torch.Generator().manual_seed(cfg.seed),
    )


def _batches(dataset: PatchDataset, cfg: TrainConfig, device: str):
    """The epoch's batches: cut and augmented on the device on CUDA (`paulow.device_batches`),
    else the `DataLoader` of `_loader`."""
    from . import device_batches

    # sparse labels (a labelled-pixel plane per patch) take the loader: the device path cuts no such plane
    if device_batches.use_device_batches(device) and dataset.labelled is None:
        return device_batches.DeviceBatches(dataset, cfg.batch_size, device)
    return _loader(dataset, cfg, device)


def _train_step(
    model, loss_fn, opt, images, targets, device: str, weight=None, valid=None
) -> tuple[float, list[int]]:
    import torch

    cuda = device.startswith("cuda")
    images = images.to(device, non_blocking=True)
    targets = targets.to(device, non_blocking=True)
    if weight is not None:  # the border weight map of each patch
        weight = weight.to(device, non_blocking=True)
    if valid is not None:  # sparse labels: each patch's labelled pixels
        valid = valid.to(device, non_blocking=True)
    if cuda:
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
        logits = model(images)
    loss = loss_fn(logits.float(), targets, weight, valid)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    regimes = getattr(loss_fn, "last_regimes", None)
    counts = [0, 0, 0]
    if regimes is not None:
        counts = np.bincount(regimes.cpu().numpy().ravel(), minlength=3)[:3].tolist()
    return float(loss.detach()), counts


class ValidationPacer:
    """Decides when to validate, so whole-image validation takes at most `share` of the time.

    Validation on whole images can cost as much as an epoch on a CPU; it then runs every few epochs
    instead of every epoch (always after the first and the last epoch). It also keeps the last
    validation's duration, so training stops early enough for the final one to fit the budget.
    """

    def __init__(self, share: float = 0.25) -> None:
        self.share, self.every, self.since = share, 1, 0
        self.val_seconds = 0.0

    def due(self, epoch: int, last: bool) -> bool:
        self.since += 1
        return epoch == 1 or last or self.since >= self.every

    def record(self, train_seconds: float, val_seconds: float) -> None:
        self.since, self.val_seconds = 0, val_seconds
        if train_seconds > 0:
            self.every = max(1, math.ceil(val_seconds / (self.share * train_seconds)))


def _run_epoch(
    model, loader, loss_fn, opt, sched, device: str, clock: dict, bar_desc: str, best_dice: float
) -> tuple[list[float], np.ndarray, bool]:
    """One pass over the epoch's patches; returns losses, regime counts and whether time ran out
    (under torchrun rank 0's clock decides, after every step, for all ranks)."""
    from tqdm.auto import tqdm

    model.train()
    losses, regimes = [], np.zeros(3, dtype=np.int64)
    bar = tqdm(
        loader, desc=bar_desc, leave=False, disable=None if distributed.is_main() else True, unit="batch"
    )
    timing = clock.setdefault("timing", new_timing())
    fetch_start = time.monotonic()
    for images, targets, *extra in bar:
        now = time.monotonic()
        timing["data_loading"] += now - fetch_start
        sched.set(
            max(
                clock["step"] / clock["total"],
                (now - clock["start"]) / max(clock["stop_at"] - clock["start"], 1e-9),
            )
        )
        weight, valid = loader.dataset.planes(extra)
        loss, counts = _train_step(model, loss_fn, opt, images, targets, device, weight, valid)
        clock["step"] += 1
        losses.append(loss)
        regimes += counts
        bar.set_postfix(
            loss=f"{loss:.3f}", best_dice=f"{max(best_dice, 0):.3f}", time=_fmt_left(clock["stop_at"])
        )
        fetch_start = time.monotonic()
        timing["gradient_steps"] += fetch_start - now
        if distributed.decide(fetch_start > clock["stop_at"]):
            return losses, regimes, True
    return losses, regimes, False


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
    from .losses import build_loss

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
        loader = _batches(dataset, cfg, device)
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
    shown = _panel_index(checks)
    best = {"dice": -1.0, "epoch": 0, "state": copy.deepcopy(model.state_dict())}
    history: list[dict] = []
    stopped, since_best, first_epoch = "epochs", 0, 1
    if resume is not None:
        first_epoch, since_best = _restore_fold(resume, model, opt, clock, pacer, best, history)
    for epoch in range(first_epoch, cfg.epochs + 1):
        dataset.reshuffle(epoch)
        distributed.set_epoch(loader, epoch)
        clock["stop_at"] = deadline - pacer.val_seconds * (1 + closing)  # room for what follows
        epoch_start = time.monotonic()
        losses, regimes, out_of_time = _run_epoch(
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
            losses, regimes = _pool_ranks(losses, regimes)
        last = out_of_time or epoch == cfg.epochs or time.monotonic() > clock["stop_at"]
        row = _epoch_row(fold, epoch, losses, regimes, opt, cfg)
        probs = None
        if main and pacer.due(epoch, last):
            with timed(timing, "validation"):
                scores, row["val_loss"], probs = _validate(
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
                _save_panel(
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
            _fmt_left(deadline),
        )
        if replan is not None and steps:
            later = replan(train_seconds / steps, pacer.val_seconds)
            if later is not None:  # the machine got slower: fewer folds, this one gets more time
                deadline = later
                clock["stop_at"] = deadline - pacer.val_seconds * (1 + closing)
                out_of_time = out_of_time and time.monotonic() > clock["stop_at"]
        stop = _stop_reason(out_of_time or time.monotonic() > clock["stop_at"], since_best, cfg)
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


def _panel_index(checks: Sequence[Slice]) -> int:
    """The validation slice of the epoch panels: the first, or of a tile subset the densest crop."""
    if not checks or "crop" not in checks[0].info:
        return 0
    return max(range(len(checks)), key=lambda j: (checks[j].info["foreground_fraction"], -j))


def _ranks() -> int:
    """Processes training together (each step trains a batch on each): torchrun's, else 1."""
    return distributed.world_size() if distributed.active() else 1


def _pool_ranks(losses: list[float], regimes: np.ndarray) -> tuple[list[float], np.ndarray]:
    """Every rank's step losses and summed regime counts of the epoch (on every rank)."""
    shares = distributed.gather((losses, regimes.tolist()))
    return [x for share, _ in shares for x in share], np.sum([r for _, r in shares], axis=0)


def _stop_reason(out_of_time: bool, since_best: int, cfg: TrainConfig) -> str | None:
    """Why the fold stops after this epoch ("time limit", "early stopping"), or None."""
    if out_of_time:
        return "time limit"
    if since_best >= cfg.patience:
        return "early stopping"
    return None


def _epoch_row(
    fold: int, epoch: int, losses: list[float], regimes: np.ndarray, opt, cfg: TrainConfig
) -> dict:
    """One line of history.csv (validation Dice and loss filled in when the epoch validates)."""
    return {
        "fold": fold + 1,
        "epoch": epoch,
        "train_loss": float(np.mean(losses)) if losses else float("nan"),
        "val_dice": None,
        "val_loss": None,
        "lr": float(opt.param_groups[0]["lr"]),
        "regime_empty": int(regimes[0]),
        "regime_small": int(regimes[1]),
        "regime_large": int(regimes[2]),
        "patches": len(losses) * cfg.batch_size,
    }


def _validate(
    model,
    val: Sequence[Slice],
    cfg: TrainConfig,
    device: str,
    pacer: ValidationPacer,
    train_seconds: float,
    loss_fn,
) -> tuple[dict, float, list[np.ndarray]]:
    """Validation scores (`score_probabilities`: the selection score `dice`, per class
    `dice_c`), the training loss on the same probabilities (see `loss_from_probabilities`) and the
    probabilities (kept for the panel); its duration paces the next validations."""
    from .losses import loss_from_probabilities

    start = time.monotonic()
    model.eval()
    probs = validation_probabilities(model, val, cfg, device)
    valid = labelled_of(val)
    scores = score_probabilities(probs, masks_of(val), cfg.threshold, valid=valid)
    loss = loss_from_probabilities(loss_fn, probs, [one_hot(m, cfg.classes) for m in masks_of(val)], valid)
    pacer.record(train_seconds, time.monotonic() - start)
    return scores, loss, probs


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


def _restore_fold(
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


def _fmt_left(deadline: float) -> str:
    left = deadline - time.monotonic()
    if left > 1e8:
        return "no time limit"
    left = max(0.0, left)
    return f"{int(left // 60)}m{int(left % 60):02d}s left"


def _save_panel(
    model,
    val: Sequence[Slice],
    cfg: TrainConfig,
    device: str,
    path: Path,
    prob: np.ndarray | None = None,
    threshold: float | None = None,
) -> None:
    """The first validation image, its mask and the prediction (`prob` reused when given)."""
    from .postprocess import to_mask
    from .report import sample_panel

    s = val[0]
    if prob is None:
        prob = predict_slices(model, [s], cfg, device)[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    crop = s.info.get("crop")
    sample_panel(
        s.image,
        s.mask,
        to_mask(prob, cfg.threshold if threshold is None else threshold),
        path,
        title=f"{s.source.name} page {s.page}" + (f" crop y{crop[0]} x{crop[1]}" if crop else ""),
    )


# ---------------------------------------------------------------- timing estimate
def time_steps(cfg: TrainConfig, in_channels: int, device: str, steps: int = 2) -> float:
    """Seconds per training step, measured on a throwaway network with the run's settings."""
    import torch

    from .losses import build_loss

    model = build_network(cfg, in_channels, device, cfg.seed)
    model.train()
    args = dict(cfg.loss_args)
    if args.get("class_weights") == "auto":  # resolved from the masks later; the step costs the same
        args["class_weights"] = [1.0] * cfg.classes
    loss_fn = build_loss(cfg.loss, **args).to(device)
    opt, _ = make_optimizer(model, cfg)
    x = torch.rand(cfg.batch_size, in_channels, cfg.patch, cfg.patch)
    y = (torch.rand(cfg.batch_size, cfg.classes, cfg.patch, cfg.patch) > 0.8).float()
    _train_step(model, loss_fn, opt, x, y, device)  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        _train_step(model, loss_fn, opt, x, y, device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def time_inference(cfg: TrainConfig, in_channels: int, device: str) -> float:
    """Seconds per inference tile: one tile batch of `predict_slice` on a throwaway network."""
    from .infer import predict_slice, suggest_tile

    model = build_network(cfg, in_channels, device, cfg.seed)
    tile, batch = suggest_tile(cfg.patch, device), max(cfg.batch_size, 4)
    step = max(1, round(tile * (1 - cfg.infer_overlap)))
    image = np.random.default_rng(0).random((in_channels, tile, tile + step * (batch - 1)), dtype=np.float32)
    options: dict[str, Any] = {
        "tile": tile,
        "overlap": cfg.infer_overlap,
        "batch_size": batch,
        "device": device,
    }
    predict_slice(model, image[:, :, :tile], **options)  # warm-up
    start = time.perf_counter()
    predict_slice(model, image, **options)
    return (time.perf_counter() - start) / batch


def count_tiles(s: Slice, cfg: TrainConfig, device: str) -> int:
    """Inference tiles `predict_slice` runs for one slice."""
    from .infer import suggest_tile
    from .validation_subset import tile_positions

    return len(tile_positions(s.image.shape, suggest_tile(cfg.patch, device), cfg.infer_overlap))


def plan_run(
    slices: Sequence[Slice], cfg: TrainConfig, device: str, folds_explicit: bool
) -> tuple[Plan, float]:
    """Measure the step time and the inference speed, then plan folds and validation rhythm for the
    time limit (see `paulow.planner`). A between-epoch validation costs the tiles it predicts (at
    most `cfg.val_tiles`, see `between_epoch_slices`); the closing steps predict whole images.
    The plan's `validation` names what the folds validate on. Returns (plan, seconds per step)."""
    from .infer import suggest_tile
    from .splits import describe as describe_splits
    from .validation_subset import checked_tiles, describe

    in_channels = int(slices[0].image.shape[0])
    rest, test = split_test(slices, cfg.test_fraction, cfg.seed)
    step_seconds = time_steps(cfg, in_channels, device)
    tile_seconds = time_inference(cfg, in_channels, device)
    image_tiles = float(np.mean([count_tiles(s, cfg, device) for s in rest]))

    def whole_tiles(k: int) -> float:  # held-out images per fold, as `kfold` splits them
        return (len(rest) / k if k > 1 else max(1, round(0.2 * len(rest)))) * image_tiles

    def val_seconds(k: int) -> float:
        return float(checked_tiles(whole_tiles(k), cfg.val_tiles) * tile_seconds)

    limit = cfg.time_limit * 60 if cfg.time_limit else None
    test_seconds = float(len(test) * image_tiles * tile_seconds)
    plan = plan_budget(
        step_seconds,
        cfg.batch_size * _ranks(),
        val_seconds,
        len(rest),
        limit,
        cfg.folds,
        folds_explicit,
        device,
        closing_seconds=lambda k: float(whole_tiles(k) * tile_seconds) + test_seconds / k,
    )
    plan.validation = describe(
        [val for _, val in kfold(rest, plan.folds, cfg.seed)],
        suggest_tile(cfg.patch, device),
        cfg.infer_overlap,
        cfg.val_tiles,
    )
    plan.split = describe_splits(slices, rest, test, plan.folds, cfg.test_fraction)
    return plan, step_seconds


# ---------------------------------------------------------------- cross-validation
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
    from .config import AUTO

    if cfg.boundary_target == AUTO:  # settled by `training_run.run_training` (it sets the outputs)
        raise ValueError("boundary_target 'auto' is not settled: call paulow.boundaries.choose_target first")
    timing = timing if timing is not None else new_timing()
    start = time.monotonic() - (resume["seconds"] if resume else 0.0) - spent
    in_channels = int(slices[0].image.shape[0])
    rest, test, folds = plan_splits(slices, cfg)
    deadline = start + cfg.time_limit * 60 if cfg.time_limit else float("inf")
    if resume:
        from .resume_check import check_against_config

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
                cfg.batch_size * _ranks(),
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
                _evaluate_fold(model, result, val, cfg, device, report_dir, echo, train)
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


def select_fold(results: Sequence[FoldResult]) -> int:
    """The index of the fold with the best validation Dice (the first on a tie): the test share
    plays no part in the choice."""
    return int(np.argmax([r.val_dice for r in results]))


def score_test(
    model,
    result: FoldResult,
    test: Sequence[Slice],
    cfg: TrainConfig,
    device: str,
    echo: Callable[[str], None],
) -> None:
    """Score the selected fold's `model` once on the test share, at its tuned threshold and smallest
    object size, and store the scores on `result` (`test_dice`, per class, object masks)."""
    scores = score_probabilities(
        predict_slices(model, test, cfg, device),
        masks_of(test),
        result.threshold,
        result.min_size,
        objects=bool(cfg.boundary_target),
        valid=labelled_of(test),
    )
    result.test_dice, result.test_dice_objects = scores["dice"], scores.get("dice_objects")
    echo(
        f"selected fold {result.fold + 1} (best validation Dice {result.val_dice:.4f}); test Dice "
        f"{result.test_dice:.4f} on {len(test)} test slice(s), scored once by the selected model"
        + (f" (object masks {result.test_dice_objects:.4f})" if result.test_dice_objects is not None else "")
    )
    if cfg.classes >= 2:
        result.test_dice_c = scores["dice_c"]
        _echo_classes(scores, cfg, echo, f"fold {result.fold + 1} test")


def closing_validations(
    val: Sequence[Slice],
    test: Sequence[Slice],
    checks: Sequence[Slice] | None = None,
    tiles: Callable[[Slice], int] | None = None,
) -> float:
    """The cost of what follows a fold in between-epoch validations: `_evaluate_fold` predicts the
    whole validation images, and after the last fold `score_test` predicts the `test` share once.
    Measured in pixels while the validations score `val` itself; against a tile subset (`checks`,
    see `between_epoch_slices`), in inference `tiles`."""
    if checks is None or tiles is None or "crop" not in (checks[0].info if checks else {}):
        val_pixels = sum(s.image[0].size for s in val)
        return (val_pixels + sum(s.image[0].size for s in test)) / max(val_pixels, 1)
    return sum(tiles(s) for s in (*val, *test)) / max(sum(tiles(s) for s in checks), 1)


def _fewer_threads_when_busy(device: str, echo: Callable[[str], None]) -> None:
    """On a CPU, use only the cores other processes leave free (sampled now)."""
    import torch

    from .device import cpu_threads

    if device != "cpu":
        return
    threads = cpu_threads()
    if threads < torch.get_num_threads():
        echo(f"other processes use the CPU: training goes on with {threads} thread(s)")
        torch.set_num_threads(threads)


def _evaluate_fold(
    model,
    result: FoldResult,
    val: Sequence[Slice],
    cfg: TrainConfig,
    device: str,
    report_dir: Path | None,
    echo: Callable[[str], None],
    train: Sequence[Slice] = (),
) -> None:
    """Threshold, smallest object size and final panel of a trained fold, all on its validation
    images (predicted once; every score reads the stored probabilities). The test share is scored
    later, once, by the selected fold only (`score_test`)."""
    k = result.fold
    result.threshold = cfg.threshold
    boundary = bool(cfg.boundary_target)
    tune = cfg.tune_threshold and (cfg.classes <= 1 or boundary) and bool(val)
    sizes = _tunes_min_size(cfg, [*val, *train]) and bool(val) and bool(train)
    if tune or sizes or report_dir is not None:
        probs = predict_slices(model, val, cfg, device)
        if tune:
            result.threshold, tuned = tune_on_probabilities(probs, masks_of(val), boundary, labelled_of(val))
            echo(
                f"fold {k + 1}: {'object ' if boundary else ''}threshold {result.threshold:.2f} tuned on "
                f"validation ({'object ' if boundary else ''}Dice {tuned:.4f})"
            )
        if sizes:
            result.min_size = _tuned_min_size(probs, val, train, result.threshold, cfg, k, echo)
        if report_dir is not None:
            _save_panel(
                model, val, cfg, device, report_dir / f"fold{k + 1}_final.png", probs[0], result.threshold
            )


def tune_on_probabilities(
    probs: Sequence[np.ndarray],
    truths: Sequence[np.ndarray],
    boundary: bool,
    valid: Sequence[np.ndarray | None] | None = None,
) -> tuple[float, float]:
    """The threshold with the best pooled Dice on stored probabilities (on the `valid` pixels when
    given), and that Dice: a binary model's on its probability, a boundary model's on its object
    probability 1 - P(background)."""
    if boundary:
        return sweep_object_thresholds(probs, truths, THRESHOLD_CANDIDATES, valid)
    return sweep_thresholds(probs, truths, THRESHOLD_CANDIDATES, valid)


def _tunes_min_size(cfg: TrainConfig, slices: Sequence[Slice] = ()) -> bool:
    """Object masks (binary, or learned boundaries) get a tuned smallest object size; not from
    sparse labels (`slices` with labelled pixels), whose painted strokes are not whole objects."""
    return (cfg.classes <= 1 or bool(cfg.boundary_target)) and labelled_of(slices) is None


def predicted_objects(prob: np.ndarray, threshold: float, boundary: bool) -> np.ndarray:
    """Instance labels of one probability map as `use_model.py` makes them: a boundary model's
    seeded watershed, else the mask's 8-connected components."""
    from .boundaries import instances_from_boundaries
    from .postprocess import label_instances, to_mask

    return (
        instances_from_boundaries(prob, threshold=threshold)
        if boundary
        else label_instances(to_mask(prob, threshold))
    )


def _tuned_min_size(
    probs: Sequence[np.ndarray],
    val: Sequence[Slice],
    train: Sequence[Slice],
    threshold: float,
    cfg: TrainConfig,
    k: int,
    echo: Callable[[str], None],
) -> int:
    """The smallest object size with the best validation object F1 (see `paulow.object_size`)."""
    from .object_size import object_areas, size_candidates, tune_min_size

    candidates = size_candidates(object_areas([s.instances() for s in train]))
    if candidates == [0]:
        return 0
    boundary = bool(cfg.boundary_target)
    predicted = [predicted_objects(p, threshold, boundary) for p in probs]
    size, with_size, without = tune_min_size(predicted, [s.instances() for s in val], candidates)
    if size:
        echo(
            f"fold {k + 1}: objects under {size} px removed (validation object F1 {without:.3f} -> "
            f"{with_size:.3f})"
        )
    return size


def _echo_classes(scores: dict, cfg: TrainConfig, echo: Callable[[str], None], label: str) -> None:
    """Echo (and log) the per-class Dice with the class names and the mean over foreground classes."""
    line = (
        f"{label}: per-class Dice "
        + ", ".join(f"{name} {dice:.4f}" for name, dice in zip(cfg.names(), scores["dice_c"]))
        + f"; mean over foreground classes {scores['dice']:.4f}"
    )
    log.info(line)
    echo(line)


# ---------------------------------------------------------------- resumable state
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


def training_meta(
    cfg: TrainConfig,
    slices: Sequence[Slice],
    result: TrainResult,
    in_channels: int,
    file_hashes: dict[str, str],
    ensemble_scores: dict | None = None,
) -> dict:
    """Metadata (plain types only) stored in the model file. `ensemble_scores`: the ensemble's
    `scores_on_slices` on the test share (used instead of the best fold's with `cfg.ensemble`).

    For K >= 2, `test_dice` is the mean Dice over the foreground classes and `test_dice_per_class`
    maps each class name (background first) to its test Dice."""
    from .object_size import largest_object

    best = result.folds[result.best_fold]
    files: dict[str, dict[str, Any]] = {}
    for s in slices:
        entry = files.setdefault(
            s.source.name,
            {
                "name": s.source.name,
                "pages": 0,
                "shape": list(s.image.shape[1:]),
                "sha256": file_hashes.get(str(s.source), ""),
            },
        )
        entry["pages"] += 1
    test_dice, per_class, objects = best.test_dice, best.test_dice_c, best.test_dice_objects
    if cfg.ensemble:
        test_dice = ensemble_scores["dice"] if ensemble_scores else None
        objects = ensemble_scores.get("dice_objects") if ensemble_scores else None
        per_class = ensemble_scores["dice_c"] if ensemble_scores and cfg.classes >= 2 else None
    names = cfg.names()
    return {
        "arch": cfg.arch,
        "arch_args": cfg.arch_args(in_channels),
        "in_channels": in_channels,
        "classes": cfg.classes,
        "class_names": cfg.names(),
        "palette": cfg.palette,
        "activation": output_activation(cfg),
        "normalisation": normalisation_spec(cfg),
        "context": cfg.context,
        "patch": cfg.patch,
        "overlap": cfg.infer_overlap,
        "threshold": cfg.threshold if cfg.ensemble else best.threshold,
        "min_object_px": best.min_size,
        **(
            {"largest_object_px": largest_object(s.instances() for s in slices)}
            if _tunes_min_size(cfg)
            else {}
        ),
        "seed": cfg.seed,
        "training_files": list(files.values()),
        "split": {
            "test": [f"{Path(k[0]).name}#{k[1]}" for k in result.test_keys],
            "folds": [{"fold": f.fold + 1, "val": f.val_files} for f in result.folds],
        },
        "metrics": {
            "test_dice": test_dice,
            "best_fold": best.fold + 1,
            **({"test_dice_per_class": dict(zip(names, per_class))} if per_class else {}),
            **({"test_dice_objects": objects} if objects is not None else {}),
            "folds": [
                {
                    "fold": f.fold + 1,
                    "val_dice": f.val_dice,
                    "test_dice": f.test_dice,
                    **({"test_dice_objects": f.test_dice_objects} if f.test_dice_objects is not None else {}),
                    **class_columns("test_dice", f.test_dice_c or [], names),
                    "threshold": f.threshold,
                    "min_object_px": f.min_size,
                    "best_epoch": f.best_epoch,
                    "epochs_run": len(f.history),
                    "stopped": f.stopped,
                }
                for f in result.folds
            ],
        },
        "ensemble": bool(cfg.ensemble),
        "config": asdict(cfg),
        "boundary_target": cfg.boundary_target,
        "train_seconds": round(result.seconds, 1),
    }
