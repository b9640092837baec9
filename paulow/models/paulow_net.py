"""The PAULow attention U-Net, with the attribute (state-dict key) names of the original PAULow code
(NTUMMIO/PAULow, `utils/model/unet.py`, class `AttentionUNet`), generalised to any width and depth.

Keys: encoder blocks `conv1 .. conv{depth}`; decoder level `l` (deepest first) `up{l}`, `att{l}`,
`conv{l}_1`, `drop{l}`; `final`. With width 64 and depth 4 this is exactly the original network, so
a bare state dict saved by the original code loads with `strict=True`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..errors import ModelError
from .base import SegmentationNet, Stage, level_channels
from .layers import AttentionGate, ResidualBlock, norm_factory


class PaulowAttentionUNet(SegmentationNet):
    """Residual weight-standardised GroupNorm blocks, max-pool down, transposed-conv up, an attention
    gate on every skip and Dropout2d after every decoder block. `norm` replaces GroupNorm (blocks
    and gates) by another normalisation (`layers.NORMS`); the published network keeps "group"."""

    name = "paulow_attention_unet"

    def __init__(
        self,
        in_channels: int = 1,
        classes: int = 1,
        width: int = 64,
        depth: int = 4,
        dropout: float = 0.2,
        norm: str = "group",
    ) -> None:
        spec = {
            "name": self.name,
            "in_channels": in_channels,
            "classes": classes,
            "width": width,
            "depth": depth,
            "dropout": dropout,
        }
        super().__init__({**spec, "norm": norm} if norm != "group" else spec)
        if not 0.0 <= dropout < 1.0:
            from ..errors import UsageError

            raise UsageError(f"dropout must be from 0 up to (not including) 1, not {dropout!r}")
        make_norm = norm_factory(norm)
        channels = level_channels(width, depth)
        for level, (cin, cout) in enumerate(zip([in_channels] + channels, channels), start=1):
            self.add_module(f"conv{level}", ResidualBlock(cin, cout, make_norm))
        for level in range(depth - 1, 0, -1):
            c = channels[level - 1]
            self.add_module(f"up{level}", nn.ConvTranspose2d(2 * c, c, kernel_size=2, stride=2))
            self.add_module(f"att{level}", AttentionGate(c, c, max(1, c // 2), norm=make_norm))
            self.add_module(f"conv{level}_1", ResidualBlock(2 * c, c, make_norm))
            self.add_module(f"drop{level}", nn.Dropout2d(dropout))
        self.final = nn.Conv2d(channels[0], classes, kernel_size=1)

    def encoder_blocks(self) -> list[nn.Module]:
        return [getattr(self, f"conv{level}") for level in range(1, self.depth + 1)]

    def decoder_stages(self) -> list[Stage]:
        return [
            Stage(
                getattr(self, f"up{level}"),
                getattr(self, f"att{level}"),
                getattr(self, f"conv{level}_1"),
                getattr(self, f"drop{level}"),
            )
            for level in range(self.depth - 1, 0, -1)
        ]

    def head(self) -> nn.Module:
        return self.final


class OriginalAttentionUNet(PaulowAttentionUNet):
    """The original code's `AttentionUNet(img_ch, output_ch, dropout_rate)`: 4 levels, width 64."""

    name = "paulow_original"

    def __init__(
        self, img_ch: int = 3, output_ch: int = 1, dropout_rate: float = 0.2, width: int = 64
    ) -> None:
        super().__init__(img_ch, output_ch, width=width, depth=4, dropout=dropout_rate)


def infer_original_args(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """`build_model` arguments for a bare PAULow state dict, read from its tensor shapes:
    `{"name", "in_channels", "classes", "width", "depth"}`. Raises `ModelError` for other dicts."""
    try:
        first = state_dict["conv1.conv1.weight"]
        final = state_dict["final.weight"]
    except KeyError as missing:
        raise ModelError(
            f"the weights have no {missing} tensor: they are not a PAULow "
            "AttentionUNet state dict; load a .pth saved by PAULow"
        ) from None
    depth = 1
    while f"conv{depth + 1}.conv1.weight" in state_dict:
        depth += 1
    return {
        "name": "paulow_original" if depth == 4 else "paulow_attention_unet",
        "in_channels": int(first.shape[1]),
        "classes": int(final.shape[0]),
        "width": int(first.shape[0]),
        "depth": depth,
    }


def is_original_state_dict(state_dict: Mapping[str, Any]) -> bool:
    """True when the keys look like the original PAULow `AttentionUNet` (or this generalisation)."""
    return (
        "conv1.conv1.weight" in state_dict
        and "final.weight" in state_dict
        and all(isinstance(value, torch.Tensor) for value in state_dict.values())
    )
