"""Reference networks: U-Net (Ronneberger et al. 2015, padded convolutions, optional BatchNorm) and
Attention U-Net (Oktay et al. 2018, BatchNorm, as in the common liver-segmentation implementations)."""

from __future__ import annotations

from typing import cast

from torch import nn

from .base import SegmentationNet, Stage, level_channels
from .layers import AttentionGate, ConvBlock, UpConv, batch_norm, norm_factory


class _ListUNet(SegmentationNet):
    """Layers held in lists: `encoders` (shallowest first), `ups`, `gates`, `decoders` (deepest first)."""

    encoders: nn.ModuleList
    ups: nn.ModuleList
    gates: nn.ModuleList | None
    decoders: nn.ModuleList
    final: nn.Conv2d

    def encoder_blocks(self) -> list[nn.Module]:
        return list(self.encoders)

    def decoder_stages(self) -> list[Stage]:
        gates = (
            cast("list[AttentionGate | None]", list(self.gates))
            if self.gates is not None
            else [None] * len(self.ups)
        )
        return [Stage(up, gate, block, None) for up, gate, block in zip(self.ups, gates, self.decoders)]

    def head(self) -> nn.Module:
        return self.final


class UNet(_ListUNet):
    """U-Net: (3x3 conv [BN] ReLU) x2 per level, max-pool down, 2x2 transposed convolution up."""

    name = "unet"

    def __init__(
        self,
        in_channels: int = 1,
        classes: int = 1,
        width: int = 64,
        depth: int = 4,
        batch_norm: bool = True,
        norm: str | None = None,
    ) -> None:
        spec = {
            "name": self.name,
            "in_channels": in_channels,
            "classes": classes,
            "width": width,
            "depth": depth,
            "batch_norm": batch_norm,
        }
        super().__init__({**spec, "norm": norm} if norm is not None else spec)
        make_norm = None if norm in (None, "none") else norm_factory(norm)
        if norm is not None:
            norm_factory(norm)  # validates the name, "none" included
            batch_norm = norm == "batch"
        channels = level_channels(width, depth)
        self.encoders = nn.ModuleList(
            ConvBlock(cin, cout, batch_norm, make_norm)
            for cin, cout in zip([in_channels] + channels, channels)
        )
        decoder_channels = channels[-2::-1]
        self.ups = nn.ModuleList(
            nn.ConvTranspose2d(2 * c, c, kernel_size=2, stride=2) for c in decoder_channels
        )
        self.gates = None
        self.decoders = nn.ModuleList(ConvBlock(2 * c, c, batch_norm, make_norm) for c in decoder_channels)
        self.final = nn.Conv2d(channels[0], classes, kernel_size=1)


class AttentionUNet(_ListUNet):
    """Attention U-Net: (3x3 conv BN ReLU) x2 per level, upsample + 3x3 conv BN ReLU up, and a
    BatchNorm attention gate (inner channels = half the skip's) on every skip connection."""

    name = "attention_unet"

    def __init__(self, in_channels: int = 1, classes: int = 1, width: int = 64, depth: int = 4) -> None:
        super().__init__(
            {
                "name": self.name,
                "in_channels": in_channels,
                "classes": classes,
                "width": width,
                "depth": depth,
            }
        )
        channels = level_channels(width, depth)
        self.encoders = nn.ModuleList(
            ConvBlock(cin, cout) for cin, cout in zip([in_channels] + channels, channels)
        )
        decoder_channels = channels[-2::-1]
        self.ups = nn.ModuleList(UpConv(2 * c, c) for c in decoder_channels)
        self.gates = nn.ModuleList(
            AttentionGate(c, c, max(1, c // 2), norm=batch_norm, leaky=False) for c in decoder_channels
        )
        self.decoders = nn.ModuleList(ConvBlock(2 * c, c) for c in decoder_channels)
        self.final = nn.Conv2d(channels[0], classes, kernel_size=1)
