"""Losses against values computed by hand from their formulas."""

from __future__ import annotations

import math

import pytest
import torch

from paulow.dynamic_loss import DynamicLoss
from paulow.errors import UsageError
from paulow.loss_components import LOSS_NAMES
from paulow.losses import build_loss

S = 1e-6  # the smooth term
LN3 = math.log(3.0)  # sigmoid(ln 3) = 0.75, sigmoid(-ln 3) = 0.25


def tversky(tp: float, fp: float, fn: float, alpha: float = 0.7, beta: float = 0.3) -> float:
    return (tp + S) / (tp + alpha * fp + beta * fn + S)


def image(values: list[list[float]]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)[None, None]


# probabilities [[0.5, 0.75], [0.25, 0.5]] against target [[1, 0], [0, 0]]
LOGITS_2X2 = image([[0.0, LN3], [-LN3, 0.0]])
TARGET_2X2 = image([[1.0, 0.0], [0.0, 0.0]])
TP, FP, FN = 0.5, 0.75 + 0.25 + 0.5, 0.5


def test_bce_by_hand():
    # -ln(0.5), -ln(1 - 0.75), -ln(1 - 0.25), -ln(1 - 0.5)
    expected = (math.log(2) + math.log(4) + math.log(4 / 3) + math.log(2)) / 4
    assert build_loss("bce")(LOGITS_2X2, TARGET_2X2).item() == pytest.approx(expected, abs=1e-6)


def test_dice_by_hand():
    expected = 1 - (2 * TP + S) / (2 * TP + FP + FN + S)  # 1 - 1/3
    assert build_loss("dice")(LOGITS_2X2, TARGET_2X2).item() == pytest.approx(expected, abs=1e-6)


def test_tversky_weighs_false_positives_by_alpha():
    expected = 1 - tversky(TP, FP, FN)  # 1 - 0.5 / 1.7
    assert build_loss("tversky")(LOGITS_2X2, TARGET_2X2).item() == pytest.approx(expected, abs=1e-6)
    swapped = 1 - tversky(TP, FP, FN, alpha=0.3, beta=0.7)
    loss = build_loss("tversky", alpha=0.3, beta=0.7)(LOGITS_2X2, TARGET_2X2).item()
    assert loss == pytest.approx(swapped, abs=1e-6)
    assert swapped < expected


def test_focal_tversky_by_hand():
    expected = (1 - tversky(TP, FP, FN)) ** 0.75
    loss = build_loss("focal_tversky")(LOGITS_2X2, TARGET_2X2).item()
    assert loss == pytest.approx(expected, abs=1e-6)


def test_focal_by_hand():
    # p_t = probability given to the true class: 0.5, 0.25, 0.75, 0.5
    p_true = [0.5, 0.25, 0.75, 0.5]
    expected = sum(-((1 - p) ** 2) * math.log(p) for p in p_true) / 4
    assert build_loss("focal")(LOGITS_2X2, TARGET_2X2).item() == pytest.approx(expected, abs=1e-6)


def test_single_losses_have_a_per_sample_form():
    logits = torch.cat([LOGITS_2X2, LOGITS_2X2 + 1])
    target = torch.cat([TARGET_2X2, TARGET_2X2])
    for name in LOSS_NAMES:
        loss = build_loss(name)
        per_sample = loss.per_sample(logits, target)
        assert per_sample.shape == (2,)
        assert loss(logits, target).item() == pytest.approx(per_sample.mean().item(), abs=1e-7)
        assert per_sample[0].item() != pytest.approx(per_sample[1].item(), abs=1e-4)


def sample(foreground: list[int], targets: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """A 4x5 sample: logit ln 3 (p = 0.75) at `foreground` pixels, -ln 3 (p = 0.25) elsewhere."""
    logits = torch.full((20,), -LN3)
    logits[foreground] = LN3
    target = torch.zeros(20)
    target[targets] = 1.0
    return logits.view(1, 1, 4, 5), target.view(1, 1, 4, 5)


# One sample per regime (20 pixels each), with their losses by hand.
EMPTY = sample([], [0])  # p = 0
SMALL = sample([0], [0])  # p = 1/20 = 0.05 < 0.0625
LARGE = sample([0, 1, 2, 3], list(range(6)))  # p = 4/20 = 0.2
BCE_EMPTY = (math.log(4) + 19 * math.log(4 / 3)) / 20
BCE_SMALL = math.log(4 / 3)  # every pixel has p_t = 0.75
TI_SMALL = tversky(0.75, 19 * 0.25, 0.25)
TI_LARGE = tversky(4 * 0.75 + 2 * 0.25, 14 * 0.25, 4 * 0.25 + 2 * 0.75)
REGIME_LOSSES = [BCE_EMPTY, BCE_SMALL + 1 - TI_SMALL, (1 - TI_LARGE) + (1 - TI_LARGE) ** 0.75]


@pytest.mark.parametrize("regime", [0, 1, 2])
def test_each_dynamic_regime_by_hand(regime):
    logits, target = (EMPTY, SMALL, LARGE)[regime]
    loss = DynamicLoss()
    assert loss(logits, target).item() == pytest.approx(REGIME_LOSSES[regime], abs=1e-6)
    assert loss.last_regimes.tolist() == [regime]


def test_dynamic_regime_is_chosen_per_sample():
    logits = torch.cat([EMPTY[0], SMALL[0], LARGE[0]])
    target = torch.cat([EMPTY[1], SMALL[1], LARGE[1]])
    loss = build_loss("dynamic")
    value = loss(logits, target).item()
    assert value == pytest.approx(sum(REGIME_LOSSES) / 3, abs=1e-6)
    assert loss.last_regimes.dtype == torch.long
    assert loss.last_regimes.tolist() == [0, 1, 2]


def test_max1_halves_each_pair_but_not_a_single_term():
    logits = torch.cat([EMPTY[0], SMALL[0], LARGE[0]])
    target = torch.cat([EMPTY[1], SMALL[1], LARGE[1]])
    expected = (REGIME_LOSSES[0] + REGIME_LOSSES[1] / 2 + REGIME_LOSSES[2] / 2) / 3
    assert build_loss("dynamic_max1")(logits, target).item() == pytest.approx(expected, abs=1e-6)


def test_high_threshold_is_inclusive():
    logits = torch.full((1, 1, 4, 4), -5.0)
    logits[0, 0, 0, 0] = 5.0  # exactly 1/16 = 0.0625 predicted foreground
    loss = DynamicLoss()
    loss(logits, torch.zeros_like(logits))
    assert loss.last_regimes.tolist() == [2]


def test_thresholds_and_components_are_configurable():
    logits, target = SMALL
    loss = DynamicLoss(small=("dice",), high=0.04)  # p = 0.05 is now "large"
    loss(logits, target)
    assert loss.last_regimes.tolist() == [2]
    loss = DynamicLoss(small="dice")
    expected = 1 - (2 * 0.75 + S) / (2 * 0.75 + 19 * 0.25 + 0.25 + S)
    assert loss(logits, target).item() == pytest.approx(expected, abs=1e-6)


def test_large_regime_never_exceeds_max_loss():
    generator = torch.Generator().manual_seed(0)
    logits = 30 * torch.randn(16, 1, 8, 8, generator=generator) + 20
    target = (torch.rand(16, 1, 8, 8, generator=generator) > 0.5).float()
    worst = torch.full((1, 1, 8, 8), 50.0)  # everything predicted, nothing there
    logits, target = torch.cat([logits, worst]), torch.cat([target, torch.zeros_like(worst)])
    for name, bound in (("dynamic", 2.0), ("dynamic_max1", 1.0)):
        loss = build_loss(name)
        per_sample = loss.per_sample(logits, target)
        assert (loss.last_regimes == 2).all()
        assert per_sample.max().item() <= bound
        assert per_sample[-1].item() == pytest.approx(bound, abs=1e-5)


def test_gradients_stay_finite_for_a_perfect_saturated_prediction():
    target = torch.zeros(2, 1, 4, 4)
    target[:, :, :2] = 1.0
    logits = (400 * target - 200).requires_grad_()  # probabilities exactly 0 and 1 in float32
    build_loss("dynamic")(logits, target).backward()
    assert torch.isfinite(logits.grad).all()


def test_bad_names_and_options_are_usage_errors():
    with pytest.raises(UsageError, match="unknown loss"):
        build_loss("dicey")
    with pytest.raises(UsageError, match="unknown loss"):
        DynamicLoss(large=("tversky", "lovasz"))
    with pytest.raises(UsageError, match="no option"):
        build_loss("tversky", alpah=0.5)
    with pytest.raises(UsageError, match="thresholds"):
        DynamicLoss(low=0.1, high=0.05)


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="must"):
        build_loss("bce")(torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2))
