"""The optimiser and its learning-rate schedules."""

from __future__ import annotations

import math

from ..config import TrainConfig


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
        from ..errors import UsageError

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
