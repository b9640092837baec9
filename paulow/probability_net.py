"""The export graph of a model file: its members' probabilities (sigmoid or softmax, ensemble mean)
in one `nn.Module`, traced by the TorchScript, ONNX and bioimage.io exports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn


class ProbabilityNet(nn.Module):
    """The members' encoder-decoder (no padding, no stored attention maps) and the output activation,
    averaged over an ensemble. Inputs must be a multiple of `size_step` on each side."""

    def __init__(self, members: Sequence[nn.Module], softmax: bool) -> None:
        super().__init__()
        self.members = nn.ModuleList(getattr(m, "_orig_mod", m) for m in members)
        self.softmax = softmax
        self.size_step = 2 ** (int(cast(Any, self.members[0]).depth) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total: torch.Tensor | None = None
        for member in self.members:
            logits = cast(Any, member)._run(x)
            probs = torch.softmax(logits, dim=1) if self.softmax else torch.sigmoid(logits)
            total = probs if total is None else total + probs
        return cast(torch.Tensor, total) / len(self.members)


def probability_net(loaded) -> ProbabilityNet:
    """The export graph of a loaded model file (`paulow.checkpoint.LoadedModel`), on the CPU, eval mode."""
    softmax = loaded.meta.get("activation") == "softmax"
    net = ProbabilityNet([m.to("cpu").eval() for m in loaded.models], softmax).eval()
    for member in net.members:
        member.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]  # torch stub lacks memory_format
    return net
