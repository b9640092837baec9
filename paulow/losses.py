"""Segmentation losses on logits `(N, K, H, W)` and float targets in {0, 1} of the same shape.

Every loss has a per-sample form `per_sample(logits, target) -> (N,)`; calling the module returns
its mean over the batch. Region losses (Dice, Tversky, Focal Tversky) are computed on soft
probabilities per sample and per channel, then averaged over channels; pixel losses (BCE, focal)
are averaged over channels and pixels.

`DynamicLoss` is PAULow's threshold-based loss, decided **per sample** from the fraction `p` of its
pixels predicted as foreground (`sigmoid(logit) > 0.5`): `p <= low` (no foreground) -> BCE;
`low < p < high` -> BCE + Tversky; `p >= high` -> Tversky + Focal Tversky (defaults low = 0,
high = 0.0625, Tversky alpha = 0.7 on false positives, beta = 0.3 on false negatives, gamma = 0.75).

Multi-class (K >= 2 channels, mutually exclusive classes, channel 0 = background): every loss uses
the softmax over the K channels instead of per-channel sigmoids, decided from the channel count.
Pixel losses become categorical (`bce`/`ce`: cross-entropy, `focal`: -(1 - p_true)^g log p_true);
region losses are computed per class and averaged over the foreground classes 1..K-1; the dynamic
loss's `p` is the fraction of pixels whose argmax is not class 0. `class_weights` (one per class)
weigh the pixel losses by the pixel's true class and the region losses' class mean; binary (K = 1)
ignores them and is unchanged.

Every loss takes an optional per-pixel `weight` `(N, H, W)` (the border weight map of
`--border-weight`): it multiplies the pixel losses (BCE/CE, focal) before their mean; the region
losses ignore it, so in the dynamic loss only the BCE/CE terms are weighted.

Every loss also takes an optional `valid` `(N, H, W)` mask (sparse labels: 1 = labelled, 0 =
unlabelled): unlabelled pixels take no part in any term. Pixel losses are averaged over the labelled
pixels, region losses count TP/FP/FN on them only, and the dynamic loss's foreground fraction `p` is
the share of the labelled pixels predicted as foreground. An all-true mask gives the unmasked loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import UsageError

SMOOTH = 1e-6
# (1 - TI) ** gamma has an infinite slope at 0; flooring the base keeps gradients finite even in
# samples whose regime does not use the term (torch.where still backpropagates 0 * slope there).
_FOCAL_FLOOR = 1e-12
REGIME_NAMES = ("empty", "small", "large")


def _check_shapes(logits: torch.Tensor, target: torch.Tensor) -> None:
    if logits.dim() != 4 or logits.shape != target.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} and target {tuple(target.shape)} must both be (N, K, H, W)"
        )


def is_multiclass(logits: torch.Tensor) -> bool:
    """True when the logits hold K >= 2 mutually exclusive classes (softmax over channels)."""
    return logits.shape[1] >= 2


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over channels for K >= 2, sigmoid for K = 1."""
    return torch.softmax(logits, dim=1) if is_multiclass(logits) else torch.sigmoid(logits)


def _weights(class_weights: Sequence[float] | None, k: int, device: torch.device) -> torch.Tensor | None:
    """Class weights as a `(K,)` tensor, or None (unweighted / binary)."""
    if class_weights is None or k < 2:
        return None
    if isinstance(class_weights, str) or len(class_weights) != k:
        raise UsageError(
            f"class_weights needs one number per class ({k}), not {class_weights!r} "
            "('auto' is resolved by the caller, see inverse_frequency_weights)"
        )
    return torch.as_tensor([float(w) for w in class_weights], dtype=torch.float32, device=device)


def _class_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """`(N, K)` per-channel values -> `(N,)`: mean over channels (K = 1) or over the foreground
    classes 1..K-1 (K >= 2), weighted by `weights[1:]` when given."""
    if values.shape[1] == 1:
        return values.mean(dim=1)
    values = values[:, 1:]
    if weights is None:
        return values.mean(dim=1)
    fg = weights[1:]
    return (values * fg).sum(dim=1) / fg.sum().clamp_min(SMOOTH)


def _categorical_nll(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel -log p_true and p_true for one-hot (or soft) targets, both `(N, H, W)`."""
    log_prob = torch.log_softmax(logits, dim=1)
    nll = -(log_prob * target).sum(dim=1)
    return nll, torch.exp(-nll)


def _pixel_mean(
    pixel: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor | None,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """`(N, H, W)` -> `(N,)`: plain mean, or weighted by each pixel's true-class weight; over the
    `valid` pixels only when given."""
    v = _plane(valid, pixel)
    if weights is None and v is None:
        return pixel.mean(dim=(1, 2))
    w = torch.ones_like(pixel) if weights is None else (target * weights.view(1, -1, 1, 1)).sum(dim=1)
    w = w if v is None else w * v
    return (pixel * w).sum(dim=(1, 2)) / w.sum(dim=(1, 2)).clamp_min(SMOOTH)


def _weighted(pixel: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Per-pixel losses `(N, H, W)` or `(N, K, H, W)` times per-pixel weights `(N, H, W)` (None: as is)."""
    if weight is None:
        return pixel
    weight = weight.to(pixel.device, pixel.dtype)
    return pixel * (weight if pixel.dim() == 3 else weight[:, None])


def inverse_frequency_weights(targets: torch.Tensor) -> list[float]:
    """`--class-weights auto`: weights proportional to 1 / class frequency in one-hot `targets`
    `(N, K, H, W)`, normalised to mean 1; classes absent from the targets get weight 0."""
    counts = targets.float().sum(dim=(0, 2, 3))
    inverse = torch.where(counts > 0, counts.sum() / counts.clamp_min(1), torch.zeros_like(counts))
    present = (counts > 0).sum().clamp_min(1)
    return (inverse * present / inverse.sum().clamp_min(SMOOTH)).tolist()


def _plane(valid: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    """The valid mask `(N, H, W)` as `like`'s dtype and device (None: every pixel is labelled)."""
    return None if valid is None else valid.to(like.device, like.dtype)


def _mean_pixels(pixel: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """`(N, K, H, W)` per-pixel losses -> `(N,)`: the mean over channels and (labelled) pixels."""
    v = _plane(valid, pixel)
    if v is None:
        return pixel.mean(dim=(1, 2, 3))
    count = v.sum(dim=(1, 2)) * pixel.shape[1]
    return (pixel * v[:, None]).sum(dim=(1, 2, 3)) / count.clamp_min(1)


def soft_counts(
    logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Soft true positives, false positives and false negatives per sample and channel, `(N, K)`
    (softmax probabilities for K >= 2, sigmoid for K = 1), over the `valid` pixels when given."""
    prob = probabilities(logits)
    v = _plane(valid, prob)
    if v is not None:
        prob, target = prob * v[:, None], target * v[:, None]
    true_pos = (prob * target).sum(dim=(2, 3))
    false_pos = prob.sum(dim=(2, 3)) - true_pos
    false_neg = target.sum(dim=(2, 3)) - true_pos
    return true_pos, false_pos, false_neg


def tversky_index(
    logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 0.7,
    beta: float = 0.3,
    smooth: float = SMOOTH,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """(TP + s) / (TP + alpha FP + beta FN + s) per sample and channel, `(N, K)`."""
    true_pos, false_pos, false_neg = soft_counts(logits, target, valid)
    return (true_pos + smooth) / (true_pos + alpha * false_pos + beta * false_neg + smooth)


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


def foreground_fraction(logits: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Fraction of each sample's (labelled, when `valid` is given) pixels predicted as foreground,
    `(N,)`: sigmoid > 0.5 for K = 1, softmax argmax != 0 (not background) for K >= 2."""
    if is_multiclass(logits):
        predicted = logits.detach().argmax(dim=1) != 0
    else:
        predicted = (torch.sigmoid(logits.detach()) > 0.5).any(dim=1)
    v = _plane(valid, predicted.float())
    if v is None:
        return predicted.float().mean(dim=(1, 2))
    return (predicted.float() * v).sum(dim=(1, 2)) / v.sum(dim=(1, 2)).clamp_min(1)


class DynamicLoss(SampleLoss):
    """PAULow's threshold-based loss, chosen per sample (regime 0 empty, 1 small, 2 large).

    Each regime is one loss name or a tuple of names; every term of a regime is weighted by
    `min(1, max_loss / number_of_terms)`, so with `max_loss=1.0` each pair is halved and a single
    term keeps weight 1. Tversky terms are bounded by 1, so the large regime never exceeds
    `max_loss`; BCE is unbounded. `last_regimes` holds the regimes of the last call, `(N,)`.
    """

    def __init__(
        self,
        empty: str | Sequence[str] = "bce",
        small: str | Sequence[str] = ("bce", "tversky"),
        large: str | Sequence[str] = ("tversky", "focal_tversky"),
        low: float = 0.0,
        high: float = 0.0625,
        alpha: float = 0.7,
        beta: float = 0.3,
        gamma: float = 0.75,
        gamma_focal: float = 2.0,
        smooth: float = SMOOTH,
        max_loss: float = 2.0,
        class_weights: Sequence[float] | None = None,
        large_multiclass: str | Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= low < high:
            raise UsageError(f"dynamic loss thresholds need 0 <= low < high, not low={low}, high={high}")
        if max_loss <= 0:
            raise UsageError(f"dynamic loss max_loss must be positive, not {max_loss}")
        self.regimes = tuple(_as_names(terms) for terms in (empty, small, large))
        # K >= 2: region terms over the foreground classes alone never reward predicting the
        # background, so the large regime keeps the (categorical) cross-entropy too: on the 5-class
        # VNC set, where every patch is over `high`, the background was otherwise never predicted
        if large_multiclass is None:  # the default large regime gains CE; a configured one is kept
            large_multiclass = (
                ("bce",) + self.regimes[2]
                if self.regimes[2] == ("tversky", "focal_tversky")
                else self.regimes[2]
            )
        self.multiclass_regimes = self.regimes[:2] + (_as_names(large_multiclass),)
        self.low, self.high, self.max_loss = low, high, max_loss
        params = {
            "alpha": alpha,
            "beta": beta,
            "gamma": gamma,
            "gamma_focal": gamma_focal,
            "smooth": smooth,
            "class_weights": class_weights,
        }
        names = sorted({name for terms in self.regimes + self.multiclass_regimes for name in terms})
        self.components = nn.ModuleDict({name: build_component(name, **params) for name in names})
        self.last_regimes = torch.zeros(0, dtype=torch.long)

    def regime(self, logits: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """0 (empty), 1 (small) or 2 (large) for each sample, `(N,)` LongTensor (the fraction of its
        labelled pixels predicted as foreground decides)."""
        fraction = foreground_fraction(logits, valid)
        return (fraction > self.low).long() + (fraction >= self.high).long()

    def per_sample(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        _check_shapes(logits, target)
        regimes = self.regime(logits, valid)
        self.last_regimes = regimes.detach()
        values = {
            name: cast(SampleLoss, loss).per_sample(logits, target, weight, valid)
            for name, loss in self.components.items()
        }
        chosen = self.multiclass_regimes if is_multiclass(logits) else self.regimes
        by_regime = [self._regime_loss(terms, values) for terms in chosen]
        return torch.where(regimes == 0, by_regime[0], torch.where(regimes == 1, by_regime[1], by_regime[2]))

    def _regime_loss(self, terms: tuple[str, ...], values: dict[str, torch.Tensor]) -> torch.Tensor:
        weight = min(1.0, self.max_loss / len(terms))
        return weight * cast(torch.Tensor, sum(values[name] for name in terms))


def _as_names(terms: str | Sequence[str]) -> tuple[str, ...]:
    names = (terms,) if isinstance(terms, str) else tuple(terms)
    if not names:
        raise UsageError("every dynamic loss regime needs at least one loss name")
    for name in names:
        if name not in COMPONENTS:
            raise UsageError(f"unknown loss {name!r}; choose from {', '.join(COMPONENTS)}")
    return names


LOSS_NAMES: tuple[str, ...] = ("dynamic", "dynamic_max1") + tuple(COMPONENTS)


def build_loss(name: str = "dynamic", **kwargs: Any) -> SampleLoss:
    """A loss by name: `dynamic`, `dynamic_max1` (DynamicLoss with max_loss=1.0), or a single loss
    (`bce`, `ce`, `ce_dice`, `dice`, `tversky`, `focal_tversky`, `focal`). Raises `UsageError`
    for unknown names."""
    if name not in ("dynamic", "dynamic_max1"):
        return build_component(name, **kwargs)
    if name == "dynamic_max1":
        kwargs = {**kwargs, "max_loss": 1.0}
    try:
        return DynamicLoss(**kwargs)
    except TypeError as error:
        raise UsageError(f"loss {name!r} does not take these options: {error}") from None


PROBABILITY_FLOOR = 1e-6  # stored probabilities are clamped to [floor, 1 - floor] before the logit


def loss_from_probabilities(
    loss: SampleLoss, probs: Sequence[Any], targets: Sequence[Any], valid: Sequence[Any] | None = None
) -> float:
    """The training loss of whole images from their stored probabilities, mean over the images.

    `probs`: `(K, H, W)` arrays (the validation's sliding-window predictions); `targets`: the matching
    float `(K, H, W)` targets. The loss is given `logit(p)`, so its sigmoid gives `p` back: the Dice and
    Tversky terms are exact, BCE saturates at -log(1e-6) = 13.8 per pixel. Each image is one sample, so
    a dynamic loss picks its regime from the whole image's foreground fraction (not per patch), and `p`
    is the blend of overlapping tiles, not one forward pass. K >= 2 (softmax) probabilities are given
    as `log(p)`, whose softmax is `p` again. `valid`: each image's labelled pixels `(H, W)` (None:
    all of them; sparse labels).
    """
    values = []
    masks = list(valid) if valid is not None else [None] * len(probs)
    with torch.no_grad():
        for prob, target, mask in zip(probs, targets, masks):
            p = torch.as_tensor(prob, dtype=torch.float32).clamp(PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
            logits = torch.log(p) if p.shape[0] >= 2 else torch.logit(p)
            v = None if mask is None else torch.as_tensor(np.asarray(mask), dtype=torch.float32)[None]
            values.append(
                float(loss(logits[None], torch.as_tensor(target, dtype=torch.float32)[None], None, v))
            )
    return float(sum(values) / len(values)) if values else float("nan")
