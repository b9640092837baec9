"""Learning-rate schedules: warm-up + cosine (default), per-epoch step decay, constant."""

from __future__ import annotations

import pytest
import torch

from paulow.config import TrainConfig
from paulow.errors import UsageError
from paulow.training.schedules import ConstantRate, StepDecay, WarmupCosine, make_optimizer


def _lr(cfg: TrainConfig, progress: float) -> float:
    opt, sched = make_optimizer(torch.nn.Linear(2, 1), cfg)
    sched.set(progress)
    return opt.param_groups[0]["lr"]


def test_step_schedule_multiplies_by_gamma_per_epoch():
    cfg = TrainConfig(lr=1.0, schedule="step", gamma=0.5, epochs=10, warmup_fraction=0.05)
    assert isinstance(make_optimizer(torch.nn.Linear(2, 1), cfg)[1], StepDecay)
    assert _lr(cfg, 0.1) == pytest.approx(0.5)  # epoch 1 done
    assert _lr(cfg, 0.35) == pytest.approx(0.125)  # 3 epochs
    assert _lr(cfg, 0.0) == pytest.approx(0.05)  # warm-up starts at the floor


def test_constant_and_cosine_schedules():
    cfg = TrainConfig(lr=1.0, schedule="constant", warmup_fraction=0.1)
    assert isinstance(make_optimizer(torch.nn.Linear(2, 1), cfg)[1], ConstantRate)
    assert _lr(cfg, 0.05) == pytest.approx(0.05 + 0.95 * 0.5)
    assert _lr(cfg, 0.5) == _lr(cfg, 1.0) == 1.0
    cosine = TrainConfig(lr=1.0, warmup_fraction=0.0)
    assert type(make_optimizer(torch.nn.Linear(2, 1), cosine)[1]) is WarmupCosine
    assert _lr(cosine, 1.0) == pytest.approx(0.05)


def test_unknown_schedule_is_refused():
    with pytest.raises(UsageError, match="unknown schedule 'linear'"):
        make_optimizer(torch.nn.Linear(2, 1), TrainConfig(schedule="linear"))
