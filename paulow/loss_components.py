"""The single losses on logits `(N, K, H, W)` and float targets in {0, 1} of the same shape, and the
registry that builds one by name.

Region losses (Dice, Tversky, Focal Tversky) are computed on soft probabilities per sample and per
channel, then averaged over channels; pixel losses (BCE, focal) are averaged over channels and
pixels. Multi-class (K >= 2): pixel losses become categorical (`bce`/`ce`: cross-entropy, `focal`:
-(1 - p_true)^g log p_true); region losses are computed per class and averaged over the foreground
classes 1..K-1. Weights and the valid mask: see `paulow.loss_reductions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .errors import UsageError
from .loss_probabilities import _categorical_nll, _check_shapes, is_multiclass, soft_counts, tversky_index
from .loss_reductions import SMOOTH, _class_mean, _mean_pixels, _pixel_mean, _weighted, _weights

# (1 - TI) ** gamma has an infinite slope at 0; flooring the base keeps gradients finite even in
# samples whose regime does not use the term (torch.where still backpropagates 0 * slope there).
_FOCAL_FLOOR = 1e-12


class SampleLoss(nn.Module):
    """A loss with a per-sample form; `forward` is its batch mean."""

    class_weights: Sequence[float] | None = None

    def per_sample(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The loss of each sample, `(N,)`. `weight` `(N, H, W)`: per-pixel weights of the pixel
        (BCE/CE/focal) terms, e.g. a border weight map; region terms ignore it. `valid` `(N, H, W)`:
        the labelled pixels (sparse labels); the others take no part in any term."""
        raise NotImplementedError

    def forward(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.per_sample(logits, target, weight, valid).mean()


class BCELoss(SampleLoss):
    """Binary cross-entropy with logits, mean over channels and pixels; for K >= 2 the categorical
    cross-entropy of the softmax (optionally class-weighted), mean over pixels."""

    def __init__(self, class_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.class_weights = class_weights

    def per_sample(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        _check_shapes(logits, target)
        if is_multiclass(logits):
            nll, _ = _categorical_nll(logits.float(), target.float())
            return _pixel_mean(
                _weighted(nll, weight),
                target.float(),
                _weights(self.class_weights, logits.shape[1], logits.device),
                valid,
            )
        pixel = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none")
        return _mean_pixels(_weighted(pixel, weight), valid)


class FocalLoss(SampleLoss):
    """Binary focal loss -(1 - p_t)^gamma log(p_t), mean over channels and pixels; for K >= 2
    p_t is the softmax probability of the true class (optionally class-weighted)."""

    def __init__(self, gamma_focal: float = 2.0, class_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.gamma_focal, self.class_weights = gamma_focal, class_weights

    def per_sample(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        _check_shapes(logits, target)
        if is_multiclass(logits):
            nll, p_true = _categorical_nll(logits.float(), target.float())
            pixel = (1 - p_true).clamp_min(0) ** self.gamma_focal * nll
            return _pixel_mean(
                _weighted(pixel, weight),
                target.float(),
                _weights(self.class_weights, logits.shape[1], logits.device),
                valid,
            )
        bce = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none")
        p_true = torch.exp(-bce)
        return _mean_pixels(_weighted((1 - p_true) ** self.gamma_focal * bce, weight), valid)


class DiceLoss(SampleLoss):
    """1 - (2 TP + s) / (2 TP + FP + FN + s) on soft probabilities, mean over channels (K >= 2:
    softmax, mean over the foreground classes)."""

    def __init__(self, smooth: float = SMOOTH, class_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.smooth, self.class_weights = smooth, class_weights

    def per_sample(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        _check_shapes(logits, target)
        tp, fp, fn = soft_counts(logits.float(), target.float(), valid)
        dice = (2 * tp + self.smooth) / (2 * tp + fp + fn + self.smooth)
        return _class_mean(1 - dice, _weights(self.class_weights, logits.shape[1], logits.device))


class TverskyLoss(SampleLoss):
    """1 - Tversky index (alpha weighs false positives, beta false negatives), mean over channels
    (K >= 2: softmax, mean over the foreground classes)."""

    def __init__(
        self,
        alpha: float = 0.7,
        beta: float = 0.3,
        smooth: float = SMOOTH,
        class_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.alpha, self.beta, self.smooth = alpha, beta, smooth
        self.class_weights = class_weights

    def _weights(self, logits: torch.Tensor) -> torch.Tensor | None:
        return _weights(self.class_weights, logits.shape[1], logits.device)

    def per_sample(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        _check_shapes(logits, target)
        index = tversky_index(logits.float(), target.float(), self.alpha, self.beta, self.smooth, valid)
        return _class_mean(1 - index, self._weights(logits))


class FocalTverskyLoss(TverskyLoss):
    """(1 - Tversky index) ** gamma, mean over channels."""

    def __init__(
        self,
        alpha: float = 0.7,
        beta: float = 0.3,
        gamma: float = 0.75,
        smooth: float = SMOOTH,
        class_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__(alpha, beta, smooth, class_weights)
        self.gamma = gamma

    def per_sample(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        _check_shapes(logits, target)
        index = tversky_index(logits.float(), target.float(), self.alpha, self.beta, self.smooth, valid)
        return _class_mean((1 - index).clamp_min(_FOCAL_FLOOR).pow(self.gamma), self._weights(logits))


class CELoss(BCELoss):
    """Cross-entropy: categorical (softmax) for K >= 2, binary for K = 1 (same as `bce`)."""


class CEDiceLoss(SampleLoss):
    """Cross-entropy + soft Dice (the liver system's loss), each with weight 1."""

    def __init__(self, smooth: float = SMOOTH, class_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.ce, self.dice = CELoss(class_weights), DiceLoss(smooth, class_weights)

    def per_sample(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.ce.per_sample(logits, target, weight, valid) + self.dice.per_sample(
            logits, target, valid=valid
        )


COMPONENTS: dict[str, type[SampleLoss]] = {
    "bce": BCELoss,
    "ce": CELoss,
    "ce_dice": CEDiceLoss,
    "dice": DiceLoss,
    "tversky": TverskyLoss,
    "focal_tversky": FocalTverskyLoss,
    "focal": FocalLoss,
}
# The hyper-parameters each component takes; DynamicLoss hands each component only its own.
_COMPONENT_PARAMS: dict[str, tuple[str, ...]] = {
    "bce": ("class_weights",),
    "ce": ("class_weights",),
    "ce_dice": ("smooth", "class_weights"),
    "dice": ("smooth", "class_weights"),
    "tversky": ("alpha", "beta", "smooth", "class_weights"),
    "focal_tversky": ("alpha", "beta", "gamma", "smooth", "class_weights"),
    "focal": ("gamma_focal", "class_weights"),
}
_SHARED_PARAMS = ("alpha", "beta", "gamma", "smooth", "gamma_focal", "class_weights")
LOSS_NAMES: tuple[str, ...] = ("dynamic", "dynamic_max1") + tuple(COMPONENTS)


def build_component(name: str, **params: Any) -> SampleLoss:
    """A single loss by name; parameters it does not use (e.g. `alpha` for `bce`) are ignored."""
    if name not in COMPONENTS:
        raise UsageError(f"unknown loss {name!r}; choose one of {', '.join(LOSS_NAMES)}")
    unknown = sorted(set(params) - set(_SHARED_PARAMS))
    if unknown:
        raise UsageError(
            f"loss {name!r} has no option {', '.join(unknown)}; options are {', '.join(_SHARED_PARAMS)}"
        )
    return COMPONENTS[name](**{key: params[key] for key in _COMPONENT_PARAMS[name] if key in params})
