"""From per-pixel and per-class loss values to one value per sample: the valid mask of sparse
labels, per-pixel weights (border weight maps) and class weights.

Every loss takes an optional per-pixel `weight` `(N, H, W)` (the border weight map of
`--border-weight`): it multiplies the pixel losses (BCE/CE, focal) before their mean; the region
losses ignore it, so in the dynamic loss only the BCE/CE terms are weighted.

Every loss also takes an optional `valid` `(N, H, W)` mask (sparse labels: 1 = labelled, 0 =
unlabelled): unlabelled pixels take no part in any term. Pixel losses are averaged over the labelled
pixels, region losses count TP/FP/FN on them only, and the dynamic loss's foreground fraction `p` is
the share of the labelled pixels predicted as foreground. An all-true mask gives the unmasked loss.

`class_weights` (one per class, K >= 2) weigh the pixel losses by the pixel's true class and the
region losses' class mean; binary (K = 1) ignores them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .errors import UsageError

SMOOTH = 1e-6


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
