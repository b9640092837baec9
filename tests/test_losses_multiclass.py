"""Multi-class (K >= 2, softmax) losses, checked against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from paulow.dynamic_loss import DynamicLoss
from paulow.errors import UsageError
from paulow.loss_reductions import inverse_frequency_weights
from paulow.losses import build_loss

LN2, LN3 = math.log(2), math.log(3)


def two_pixels() -> tuple[torch.Tensor, torch.Tensor]:
    """K = 3, one row of two pixels: A softmax (1/4, 1/2, 1/4) true class 1; B uniform, true class 2."""
    logits = torch.zeros(1, 3, 1, 2)
    logits[0, 1, 0, 0] = LN2
    target = torch.zeros(1, 3, 1, 2)
    target[0, 1, 0, 0] = 1.0
    target[0, 2, 0, 1] = 1.0
    return logits, target


def test_ce_by_hand():
    logits, target = two_pixels()
    assert build_loss("ce")(logits, target).item() == pytest.approx((LN2 + LN3) / 2, abs=1e-6)
    assert build_loss("bce")(logits, target).item() == pytest.approx((LN2 + LN3) / 2, abs=1e-6)


def test_class_weighted_ce_by_hand():
    logits, target = two_pixels()
    value = build_loss("ce", class_weights=[1, 1, 3])(logits, target).item()
    assert value == pytest.approx((LN2 + 3 * LN3) / 4, abs=1e-6)


def soft_dice_by_hand() -> float:
    dice1 = 2 * 0.5 / (2 * 0.5 + 1 / 3 + 0.5)  # tp 1/2, fp 1/3, fn 1/2
    dice2 = 2 / 3 / (2 / 3 + 1 / 4 + 2 / 3)  # tp 1/3, fp 1/4, fn 2/3
    return 1 - (dice1 + dice2) / 2  # background class 0 not averaged


def test_soft_dice_per_foreground_class_by_hand():
    logits, target = two_pixels()
    assert build_loss("dice")(logits, target).item() == pytest.approx(soft_dice_by_hand(), abs=1e-5)


def test_ce_dice_is_the_sum():
    logits, target = two_pixels()
    expected = (LN2 + LN3) / 2 + soft_dice_by_hand()
    assert build_loss("ce_dice")(logits, target).item() == pytest.approx(expected, abs=1e-5)


def test_focal_by_hand():
    logits, target = two_pixels()
    expected = (0.5**2 * LN2 + (2 / 3) ** 2 * LN3) / 2
    assert build_loss("focal")(logits, target).item() == pytest.approx(expected, abs=1e-6)


def test_binary_ce_is_bce():
    logits, target = torch.randn(2, 1, 4, 4), (torch.rand(2, 1, 4, 4) > 0.5).float()
    assert build_loss("ce")(logits, target).item() == pytest.approx(build_loss("bce")(logits, target).item())


def crafted(foreground_pixels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """K = 3 on 8 x 8 = 64 pixels; `foreground_pixels` of them argmax class 2, the rest class 0."""
    logits = torch.zeros(1, 3, 8, 8)
    logits[0, 0] = 2.0
    flat = logits.view(1, 3, -1)
    flat[0, 2, :foreground_pixels] = 4.0
    target = torch.zeros(1, 3, 8, 8)
    target[0, 0] = 1.0
    target.view(1, 3, -1)[0, :, :2] = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    return logits, target


@pytest.mark.parametrize(
    "pixels, regime, terms",
    [(0, 0, ("ce",)), (1, 1, ("ce", "tversky")), (4, 2, ("ce", "tversky", "focal_tversky"))],
)
def test_dynamic_regime_from_argmax_by_hand(pixels, regime, terms):
    # K >= 2: the large regime keeps CE beside the foreground-class Tversky terms (three terms,
    # each weighted min(1, max_loss 2 / 3))
    logits, target = crafted(pixels)  # 4 / 64 = 0.0625 = high -> large (inclusive)
    loss = DynamicLoss()
    value = loss(logits, target).item()
    assert loss.last_regimes.tolist() == [regime]
    expected = min(1.0, 2.0 / len(terms)) * sum(build_loss(name)(logits, target).item() for name in terms)
    assert value == pytest.approx(expected, abs=1e-6)


def test_dynamic_regime_per_sample_and_components_configurable():
    logits = torch.cat([crafted(0)[0], crafted(1)[0], crafted(10)[0]])
    target = torch.cat([crafted(0)[1], crafted(1)[1], crafted(10)[1]])
    loss = DynamicLoss(empty="focal", small="dice", large="ce_dice", class_weights=[1, 2, 2])
    values = loss.per_sample(logits, target)
    assert loss.last_regimes.tolist() == [0, 1, 2]
    for i, name in enumerate(("focal", "dice", "ce_dice")):
        one = build_loss(name, class_weights=[1, 2, 2]).per_sample(logits[i : i + 1], target[i : i + 1])
        assert values[i].item() == pytest.approx(one.item(), abs=1e-6)


def test_multiclass_tversky_ignores_background():
    logits, target = crafted(0)  # background predicted everywhere, exactly right there
    value = build_loss("tversky")(logits, target).item()
    prob_fg = math.exp(0) / (math.exp(2) + 2)  # softmax of classes 1 and 2 everywhere
    per_class = []
    for _ in (1, 2):  # each foreground class: one true pixel
        tp, fp, fn = prob_fg, 63 * prob_fg, 1 - prob_fg
        per_class.append(1 - (tp + 1e-6) / (tp + 0.7 * fp + 0.3 * fn + 1e-6))
    assert value == pytest.approx(sum(per_class) / 2, abs=1e-6)


def test_gradients_finite_and_weights_checked():
    logits = (torch.randn(2, 4, 8, 8) * 20).requires_grad_()
    target = torch.nn.functional.one_hot(torch.randint(0, 4, (2, 8, 8)), 4).permute(0, 3, 1, 2)
    build_loss("dynamic")(logits, target.float()).backward()
    assert torch.isfinite(logits.grad).all()
    with pytest.raises(UsageError, match="one number per class"):
        build_loss("ce", class_weights=[1, 2])(logits, target.float())
    with pytest.raises(UsageError, match="one number per class"):
        build_loss("ce", class_weights="auto")(logits, target.float())


def test_inverse_frequency_weights_by_hand():
    target = torch.zeros(1, 3, 2, 4)
    target[0, 0].view(-1)[:6] = 1.0
    target[0, 1].view(-1)[6:] = 1.0
    assert inverse_frequency_weights(target) == pytest.approx([0.5, 1.5, 0.0])


def test_validation_loss_from_softmax_probabilities_by_hand():
    from paulow.losses import loss_from_probabilities

    prob = np.array([[[0.7, 0.2]], [[0.2, 0.5]], [[0.1, 0.3]]], np.float32)  # K = 3, 1 x 2 pixels
    target = np.array([[[1.0, 0.0]], [[0.0, 0.0]], [[0.0, 1.0]]], np.float32)  # classes 0 and 2
    value = loss_from_probabilities(build_loss("ce"), [prob], [target])
    assert value == pytest.approx(-(np.log(0.7) + np.log(0.3)) / 2, rel=1e-5)
