"""Measure the step and inference times, then plan folds and validation for the time limit."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..config import TrainConfig
from ..slices import Slice
from ..splits import kfold, split_test
from .epoch import ranks, train_step
from .network import build_network
from .planner import Plan, plan_budget
from .schedules import make_optimizer


def time_steps(cfg: TrainConfig, in_channels: int, device: str, steps: int = 2) -> float:
    """Seconds per training step, measured on a throwaway network with the run's settings."""
    import torch

    from ..losses import build_loss

    model = build_network(cfg, in_channels, device, cfg.seed)
    model.train()
    args = dict(cfg.loss_args)
    if args.get("class_weights") == "auto":  # resolved from the masks later; the step costs the same
        args["class_weights"] = [1.0] * cfg.classes
    loss_fn = build_loss(cfg.loss, **args).to(device)
    opt, _ = make_optimizer(model, cfg)
    x = torch.rand(cfg.batch_size, in_channels, cfg.patch, cfg.patch)
    y = (torch.rand(cfg.batch_size, cfg.classes, cfg.patch, cfg.patch) > 0.8).float()
    train_step(model, loss_fn, opt, x, y, device)  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        train_step(model, loss_fn, opt, x, y, device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def time_inference(cfg: TrainConfig, in_channels: int, device: str) -> float:
    """Seconds per inference tile: one tile batch of `predict_slice` on a throwaway network."""
    from ..infer import predict_slice, suggest_tile

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
    from ..infer import suggest_tile
    from ..validation_subset import tile_positions

    return len(tile_positions(s.image.shape, suggest_tile(cfg.patch, device), cfg.infer_overlap))


def plan_run(
    slices: Sequence[Slice], cfg: TrainConfig, device: str, folds_explicit: bool
) -> tuple[Plan, float]:
    """Measure the step time and the inference speed, then plan folds and validation rhythm for the
    time limit (see `paulow.training.planner`). A between-epoch validation costs the tiles it predicts (at
    most `cfg.val_tiles`, see `between_epoch_slices`); the closing steps predict whole images.
    The plan's `validation` names what the folds validate on. Returns (plan, seconds per step)."""
    from ..infer import suggest_tile
    from ..splits import describe as describe_splits
    from ..validation_subset import checked_tiles, describe

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
        cfg.batch_size * ranks(),
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
