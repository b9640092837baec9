"""Whole-image scores with the standard sliding-window inference (never patch-level scores)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..config import TrainConfig
from ..scoring import (
    score_probabilities,
)
from ..slices import Slice, labelled_of
from .results import masks_of

log = logging.getLogger("paulow")


def predict_slices(models, slices: Sequence[Slice], cfg: TrainConfig, device: str) -> list[np.ndarray]:
    """Probabilities of whole slices with the standard inference (predicted once, then reused)."""
    from ..infer import predict_slice, suggest_tile

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
    from .. import device_batches
    from ..device_validation import fits_on_device, predict_batched
    from ..infer import suggest_tile

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
    from ..infer import suggest_tile
    from ..validation_subset import validation_subset

    return validation_subset(
        val, suggest_tile(cfg.patch, device), cfg.infer_overlap, cfg.val_tiles, cfg.seed, cfg.classes
    )


def save_panel(
    model,
    val: Sequence[Slice],
    cfg: TrainConfig,
    device: str,
    path: Path,
    prob: np.ndarray | None = None,
    threshold: float | None = None,
) -> None:
    """The first validation image, its mask and the prediction (`prob` reused when given)."""
    from ..postprocess import to_mask
    from ..report import sample_panel

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


def echo_classes(scores: dict, cfg: TrainConfig, echo: Callable[[str], None], label: str) -> None:
    """Echo (and log) the per-class Dice with the class names and the mean over foreground classes."""
    line = (
        f"{label}: per-class Dice "
        + ", ".join(f"{name} {dice:.4f}" for name, dice in zip(cfg.names(), scores["dice_c"]))
        + f"; mean over foreground classes {scores['dice']:.4f}"
    )
    log.info(line)
    echo(line)
