"""One epoch: batches, the gradient steps, validation pacing and stop rules."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

from .. import distributed
from ..config import TrainConfig
from ..patches import PatchDataset, one_hot
from ..scoring import (
    score_probabilities,
)
from ..slices import Slice, labelled_of
from .evaluation import validation_probabilities
from .results import masks_of
from .timing import new_timing


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


def batches(dataset: PatchDataset, cfg: TrainConfig, device: str):
    """The epoch's batches: cut and augmented on the device on CUDA (`paulow.device_batches`),
    else the `DataLoader` of `_loader`."""
    from .. import device_batches

    # sparse labels (a labelled-pixel plane per patch) take the loader: the device path cuts no such plane
    if device_batches.use_device_batches(device) and dataset.labelled is None:
        return device_batches.DeviceBatches(dataset, cfg.batch_size, device)
    return _loader(dataset, cfg, device)


def train_step(
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


def run_epoch(
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
        loss, counts = train_step(model, loss_fn, opt, images, targets, device, weight, valid)
        clock["step"] += 1
        losses.append(loss)
        regimes += counts
        bar.set_postfix(
            loss=f"{loss:.3f}", best_dice=f"{max(best_dice, 0):.3f}", time=fmt_left(clock["stop_at"])
        )
        fetch_start = time.monotonic()
        timing["gradient_steps"] += fetch_start - now
        if distributed.decide(fetch_start > clock["stop_at"]):
            return losses, regimes, True
    return losses, regimes, False


def panel_index(checks: Sequence[Slice]) -> int:
    """The validation slice of the epoch panels: the first, or of a tile subset the densest crop."""
    if not checks or "crop" not in checks[0].info:
        return 0
    return max(range(len(checks)), key=lambda j: (checks[j].info["foreground_fraction"], -j))


def ranks() -> int:
    """Processes training together (each step trains a batch on each): torchrun's, else 1."""
    return distributed.world_size() if distributed.active() else 1


def pool_ranks(losses: list[float], regimes: np.ndarray) -> tuple[list[float], np.ndarray]:
    """Every rank's step losses and summed regime counts of the epoch (on every rank)."""
    shares = distributed.gather((losses, regimes.tolist()))
    return [x for share, _ in shares for x in share], np.sum([r for _, r in shares], axis=0)


def stop_reason(out_of_time: bool, since_best: int, cfg: TrainConfig) -> str | None:
    """Why the fold stops after this epoch ("time limit", "early stopping"), or None."""
    if out_of_time:
        return "time limit"
    if since_best >= cfg.patience:
        return "early stopping"
    return None


def epoch_row(fold: int, epoch: int, losses: list[float], regimes: np.ndarray, opt, cfg: TrainConfig) -> dict:
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


def validate_model(
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
    from ..losses import loss_from_probabilities

    start = time.monotonic()
    model.eval()
    probs = validation_probabilities(model, val, cfg, device)
    valid = labelled_of(val)
    scores = score_probabilities(probs, masks_of(val), cfg.threshold, valid=valid)
    loss = loss_from_probabilities(loss_fn, probs, [one_hot(m, cfg.classes) for m in masks_of(val)], valid)
    pacer.record(train_seconds, time.monotonic() - start)
    return scores, loss, probs


def fmt_left(deadline: float) -> str:
    left = deadline - time.monotonic()
    if left > 1e8:
        return "no time limit"
    left = max(0.0, left)
    return f"{int(left // 60)}m{int(left % 60):02d}s left"
