"""Issue 24: the user's config is frozen (a change is a new config) and a run's plan is its own object."""

from __future__ import annotations

import copy
import dataclasses

import pytest
from _workflow import nuclei_slices

from paulow.config import TrainConfig, config_from_options


def test_a_config_is_changed_only_into_a_new_one():
    cfg = config_from_options({"epochs": 3})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.epochs = 4  # type: ignore[misc]
    assert (dataclasses.replace(cfg, epochs=4).epochs, cfg.epochs) == (4, 3)


def test_a_training_run_trains_with_its_plan_and_leaves_the_given_config_as_it_was(monkeypatch):
    from paulow.training import planning
    from paulow.training.run import RunPlan, run_training

    monkeypatch.setattr(planning, "time_steps", lambda *a, **k: 0.01)  # a fixed plan on any machine
    monkeypatch.setattr(planning, "time_inference", lambda *a, **k: 0.01)
    cfg = TrainConfig(
        width=4, depth=2, patch=32, overlap=16, per_epoch=16, batch_size=4, epochs=2, folds=3, time_limit=0.05
    )
    given = copy.deepcopy(cfg)
    run = run_training(nuclei_slices(6), cfg, "cpu", echo=lambda _: None, epochs_explicit=False)
    assert cfg == given
    # 3 s: one fold of 288 steps of 4 patches (2.88 s at 0.01 s) and 0.1 s of validation; the epoch cap
    # leaves twice the planned patches (EPOCH_HEADROOM) to the time limit: 2 x 1152 / 16 per epoch
    assert run.plan == RunPlan(
        folds=1, val_share=pytest.approx(0.1 / 2.88), epochs=144, patches_per_fold=1152, step_s=0.01
    )
    assert run.cfg == dataclasses.replace(
        cfg, folds=run.plan.folds, val_share=run.plan.val_share, epochs=run.plan.epochs
    )
    assert {k: run.meta["config"][k] for k in ("folds", "val_share", "epochs")} == {
        "folds": run.plan.folds,
        "val_share": run.plan.val_share,
        "epochs": run.plan.epochs,
    }
