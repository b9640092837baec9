"""Training: the time-budget planner (hand-computed plans from fake costs), timing report."""

from __future__ import annotations

import pytest
from _workflow import nuclei_slices

from paulow.planner import MIN_PATCHES_PER_FOLD, plan_budget


def test_floor_is_10000_patches():
    assert MIN_PATCHES_PER_FOLD == 10000


def test_too_many_folds_train_fewer_and_say_how_to_force():
    # 0.1 s/step of 8 patches, 10 s per validation, 600 s. Per fold (T/K), validations = floor(25 % / 10 s):
    # K=5: 120 s, 3 val, 90 s grad -> 900 steps = 7,200 patches; K=4: 150 s, 3 val, 120 s -> 9,600;
    # K=3: 200 s, 5 val, 150 s -> 1,500 steps = 12,000 patches >= 10,000 and 150/200 = 75 % >= 75 %.
    plan = plan_budget(0.1, 8, 10.0, 20, 600.0, 5, False, "cpu")
    assert plan.folds == 3
    assert plan.validations_per_fold == 5
    assert plan.patches_per_fold == 12000
    assert plan.gradient_share == pytest.approx(150 / 200)
    assert plan.val_ratio == pytest.approx(50 / 150)
    assert "--folds 5" in plan.reason and "3 fold(s)" in plan.line()


def test_explicit_folds_are_obeyed():
    plan = plan_budget(0.5, 8, 10.0, 20, 600.0, 5, True, "cpu")
    assert (plan.folds, plan.validations_per_fold, plan.patches_per_fold) == (5, 3, 1440)
    assert plan.gradient_share == pytest.approx(0.75)
    assert "--folds 5 given" in plan.reason


def test_requested_folds_that_fit_are_kept():
    # 0.05 s/step, 2 s per validation: 120 s per fold, 30 s allowed -> 15 validations, capped at 10;
    # 100 s of steps = 2,000 steps = 16,000 patches, 83 % of the time.
    plan = plan_budget(0.05, 8, 2.0, 20, 600.0, 5, False, "cpu")
    assert (plan.folds, plan.validations_per_fold, plan.patches_per_fold) == (5, 10, 16000)
    assert plan.gradient_share == pytest.approx(100 / 120)


def test_expensive_validation_leaves_one_split():
    # 100 s per validation: two folds of 300 s leave 200 s of steps (67 % < 75 %); one split: 500/600.
    plan = plan_budget(0.01, 8, 100.0, 20, 600.0, 5, False, "cpu")
    assert (plan.folds, plan.validations_per_fold) == (1, 1)
    assert plan.gradient_share == pytest.approx(500 / 600)


def test_a_time_limited_run_gets_room_for_twice_the_planned_patches():
    from paulow.planner import epochs_for_time

    assert epochs_for_time(40, 192, 7608) == 80  # ceil(2 x 7,608 / 192) = ceil(79.25)
    assert epochs_for_time(40, 192, 1000) == 40  # never fewer than the preset's
    assert epochs_for_time(40, None, 7608) == 40  # whole-pool epochs: left as they are


def test_slow_machine_falls_back_to_one_split_and_says_so():
    # 2 s/step: one split of 600 s, 10 validations (cap), 500 s -> 250 steps = 2,000 patches < 10,000.
    plan = plan_budget(2.0, 8, 10.0, 20, 600.0, 5, False, "cpu")
    assert (plan.folds, plan.patches_per_fold) == (1, 2000)
    assert "even one split" in plan.reason and "--folds 5" in plan.reason


def test_gpu_needs_half_the_time_in_steps():
    # GPU: 50 % floor. K=5 of 120 s: 6 validations of 10 s, 60 s of steps = 1,200 steps x 16 = 19,200.
    plan = plan_budget(0.05, 16, 10.0, 20, 600.0, 5, False, "cuda")
    assert (plan.folds, plan.validations_per_fold, plan.patches_per_fold) == (5, 6, 19200)


def test_no_time_limit_keeps_the_requested_folds_capped_by_images():
    assert plan_budget(1.0, 8, 10.0, 20, None, 5, False, "cpu").folds == 5
    plan = plan_budget(1.0, 8, 10.0, 3, None, 5, False, "cpu")
    assert plan.folds == 3 and plan.validations_per_fold is None


def test_validation_cost_may_depend_on_the_number_of_folds():
    # 1/K of 20 images held out, 1 s each: K=5 -> 4 s per validation, 7 validations, 92 s of steps.
    plan = plan_budget(0.05, 8, lambda k: 20 / k, 20, 600.0, 5, True, "cpu")
    assert (plan.folds, plan.validations_per_fold, plan.patches_per_fold) == (5, 7, 14720)


def test_timing_json_and_line_after_a_tiny_run(trained):
    from conftest import read_json

    timing = read_json(trained["report"] / "timing.json")
    keys = {"gradient_steps", "validation", "evaluation", "data_loading", "checkpoints", "planning", "other"}
    assert set(timing["seconds"]) == keys and set(timing["percent"]) == keys
    assert timing["seconds"]["gradient_steps"] > 0 and timing["seconds"]["validation"] > 0
    assert sum(timing["seconds"].values()) == pytest.approx(timing["total_seconds"], abs=0.1)
    assert "time (" in trained["stdout"] and "gradient steps" in trained["stdout"]
    assert (trained["report"] / "fold1_final.png").is_file()


def test_plan_run_measures_and_plans_fewer_folds_for_a_tiny_budget():
    from paulow.config import TrainConfig
    from paulow.training.planning import plan_run

    cfg = TrainConfig(
        width=4,
        depth=2,
        patch=32,
        overlap=16,
        batch_size=4,
        folds=5,
        test_fraction=0.0,
        time_limit=0.05,
        device="cpu",
    )  # 3 s cannot hold 5 folds of 10,000 patches
    plan, step_s = plan_run(nuclei_slices(6), cfg, "cpu", folds_explicit=False)
    assert step_s > 0 and plan.folds == 1 and "--folds 5" in plan.reason
    plan, _ = plan_run(nuclei_slices(6), cfg, "cpu", folds_explicit=True)
    assert plan.folds == 5 and "given" in plan.reason


def test_cross_validate_reports_where_the_time_went():
    from paulow.config import TrainConfig
    from paulow.training.cross_validation import cross_validate
    from paulow.training.timing import new_timing

    cfg = TrainConfig(
        width=4,
        depth=2,
        patch=32,
        overlap=16,
        batch_size=4,
        per_epoch=8,
        epochs=2,
        folds=1,
        test_fraction=0.2,
        time_limit=None,
        patience=100,
        device="cpu",
        augment=False,
    )
    timing = new_timing()
    result = cross_validate(nuclei_slices(5), cfg, "cpu", echo=lambda _: None, timing=timing)
    assert result.folds[0].test_dice is not None
    assert timing["gradient_steps"] > 0 and timing["validation"] > 0 and timing["evaluation"] > 0


def test_replan_keeps_the_folds_that_still_fit():
    from paulow.planner import replan_folds

    # 4 folds in 600 s: 150 s each, 3 validations of 10 s, 120 s of steps = 1,200 steps × 8 = 9,600
    # patches (< 10,000); 3 folds: 200 s each, 5 validations, 150 s of steps (75 %) = 12,000 patches
    assert replan_folds(0.1, 8, 10.0, 600.0, 4, "cpu") == 3
    assert replan_folds(0.02, 8, 10.0, 600.0, 4, "cpu") == 4  # never more than the folds left
    assert replan_folds(10.0, 8, 10.0, 600.0, 4, "cpu") == 1  # never fewer than one


def test_a_later_deadline_from_replan_lets_the_fold_go_on():
    import time

    from paulow.config import TrainConfig
    from paulow.training.loop import fit_fold
    from paulow.training.network import build_network

    cfg = TrainConfig(
        width=4,
        depth=2,
        patch=32,
        overlap=16,
        batch_size=4,
        per_epoch=8,
        epochs=3,
        patience=100,
        device="cpu",
        augment=False,
    )
    slices = nuclei_slices(3)

    def fold(replan):
        model = build_network(cfg, 1, "cpu", 0)
        return fit_fold(model, slices[:2], slices[2:], cfg, "cpu", time.monotonic(), replan=replan)

    plain = fold(None)
    assert len(plain.history) == 1 and plain.stopped == "time limit"
    calls = []
    extended = fold(lambda step_s, val_s: calls.append((step_s, val_s)) or time.monotonic() + 3600)
    assert len(extended.history) == 3 and extended.stopped == "epochs"
    assert all(step_s > 0 and val_s > 0 for step_s, val_s in calls)


@pytest.fixture
def keep_threads():
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_steps_slower_than_planned_train_fewer_folds_and_say_so(keep_threads, monkeypatch):
    from paulow.config import TrainConfig
    from paulow.training import cross_validation
    from paulow.training.cross_validation import cross_validate

    # How many folds fit is `replan_folds`'s job (tested above); here it says one, so the outcome does
    # not depend on how busy the machine is, and the limit is long enough not to end fold 1 first.
    asked = []
    monkeypatch.setattr(cross_validation, "replan_folds", lambda *a: asked.append(a) or 1)

    cfg = TrainConfig(
        width=4,
        depth=2,
        patch=32,
        overlap=16,
        batch_size=4,
        per_epoch=8,
        epochs=2,
        folds=3,
        test_fraction=0.0,
        time_limit=1.0,
        patience=100,
        device="cpu",
        augment=False,
    )
    said = []
    result = cross_validate(nuclei_slices(6), cfg, "cpu", echo=said.append, planned_step=1e-9)
    assert len(asked) == 1 and asked[0][4] == 3  # asked once, in fold 1, with 3 folds left
    assert len(result.folds) == 1
    assert any(line.startswith("re-planned: a step takes") and "1 of 3 folds" in line for line in said)
    assert "2 fold(s) not trained (re-planned for the time limit)" in said


def test_the_closing_evaluation_is_budgeted_like_validations():
    # one 600 s fold, 10 s validations: without closing, 10 validations (the cap) and 500 s of steps;
    # 60 s of closing (threshold + test score) leaves 0.25 * 600 - 60 = 90 s: 9 validations, 450 s
    plain = plan_budget(0.1, 8, 10.0, 5, 600.0, 1, False, "cpu")
    assert plain.validations_per_fold == 10 and plain.gradient_share == pytest.approx(500 / 600)
    closed = plan_budget(0.1, 8, 10.0, 5, 600.0, 1, False, "cpu", closing_seconds=60.0)
    assert closed.validations_per_fold == 9 and closed.gradient_share == pytest.approx(0.75)
    assert closed.patches_per_fold == 4500 * 8


def test_closing_validations_count_validation_and_test_pixels():
    import numpy as np

    from paulow.slices import Slice
    from paulow.training.tuning import closing_validations

    def page(h, w):
        return Slice(
            image=np.zeros((1, h, w), np.float32), mask=np.zeros((h, w), np.uint8), source=None, page=0
        )

    assert closing_validations([page(10, 10)], [page(10, 20)]) == 3.0
    assert closing_validations([page(10, 10), page(10, 10)], []) == 1.0
