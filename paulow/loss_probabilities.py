"""What the losses are computed from: probabilities of logits `(N, K, H, W)` (sigmoid for K = 1,
softmax over the K channels for K >= 2), the categorical log-likelihood and soft TP/FP/FN counts.

Multi-class (K >= 2 channels, mutually exclusive classes, channel 0 = background) is decided from
the channel count.
"""

from __future__ import annotations

import torch

from .loss_reductions import SMOOTH, _plane


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


def _categorical_nll(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel -log p_true and p_true for one-hot (or soft) targets, both `(N, H, W)`."""
    log_prob = torch.log_softmax(logits, dim=1)
    nll = -(log_prob * target).sum(dim=1)
    return nll, torch.exp(-nll)


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
