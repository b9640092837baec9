"""Segmentation losses on logits `(N, K, H, W)` and float targets in {0, 1} of the same shape:
`build_loss` by name, and the loss of whole images from their stored probabilities.

Every loss has a per-sample form `per_sample(logits, target) -> (N,)`; calling the module returns
its mean over the batch. The losses live in modules of their own: the single losses (BCE/CE, focal,
Dice, Tversky, Focal Tversky, CE + Dice) in `paulow.loss_components`, PAULow's threshold-based
`DynamicLoss` in `paulow.dynamic_loss`, probabilities and soft counts in `paulow.loss_probabilities`,
and valid masks (sparse labels), per-pixel weights and class weights in `paulow.loss_reductions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .dynamic_loss import DynamicLoss
from .errors import UsageError
from .loss_components import SampleLoss, build_component


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
