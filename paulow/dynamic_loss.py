"""`DynamicLoss`: PAULow's threshold-based loss, decided **per sample** from the fraction `p` of its
pixels predicted as foreground (`sigmoid(logit) > 0.5`): `p <= low` (no foreground) -> BCE;
`low < p < high` -> BCE + Tversky; `p >= high` -> Tversky + Focal Tversky (defaults low = 0,
high = 0.0625, Tversky alpha = 0.7 on false positives, beta = 0.3 on false negatives, gamma = 0.75).

Multi-class (K >= 2): `p` is the fraction of pixels whose argmax is not class 0. Sparse labels: `p`
is the share of the labelled pixels predicted as foreground.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn

from .errors import UsageError
from .loss_components import COMPONENTS, SampleLoss, build_component
from .loss_probabilities import _check_shapes, is_multiclass
from .loss_reductions import SMOOTH, _plane

REGIME_NAMES = ("empty", "small", "large")


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
