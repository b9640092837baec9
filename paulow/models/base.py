"""The U-Net skeleton every network shares: encoder, decoder stages with optional attention gates,
padding to any input size, channels-last execution and access to the attention maps."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .layers import AttentionGate, pad_to_multiple


class Stage(NamedTuple):
    """One decoder level: upsample, gate the skip (optional), block on [skip, up], dropout (optional)."""

    up: nn.Module
    gate: AttentionGate | None
    block: nn.Module
    drop: nn.Module | None


class SegmentationNet(nn.Module):
    """Base class: subclasses build their layers and expose them through `encoder_blocks`,
    `decoder_stages` (deepest first) and `head`; this class runs them.

    `depth` is the number of resolution levels, so the input is padded (bottom/right) to a multiple
    of `2 ** (depth - 1)` and the logits are cropped back to `(N, classes, H, W)`.
    """

    name = ""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        self.spec = dict(spec)
        self.depth = int(spec["depth"])
        # oneDNN convolutions on CPU run about 3x faster on NHWC tensors than on NCHW ones.
        self.channels_last = True
        self._keep_attention = False
        self._input_size: tuple[int, int] | None = None

    def encoder_blocks(self) -> list[nn.Module]:
        """The encoder blocks, shallowest first (one per level)."""
        raise NotImplementedError

    def decoder_stages(self) -> list[Stage]:
        """The decoder stages, deepest first (one per level but the deepest)."""
        raise NotImplementedError

    def head(self) -> nn.Module:
        """The final 1x1 convolution to logits."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = pad_to_multiple(x, 2 ** (self.depth - 1))
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = self._run(x)
        self._input_size = (height, width)
        return logits[..., :height, :width].contiguous()

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for level, block in enumerate(self.encoder_blocks()):
            if level:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        x = skips.pop()
        for stage, skip in zip(self.decoder_stages(), reversed(skips)):
            x = stage.up(x)
            if stage.gate is not None:
                skip = stage.gate(x, skip)
            x = stage.block(torch.cat((skip, x), dim=1))
            if stage.drop is not None:
                x = stage.drop(x)
        return self.head()(x)

    @property
    def keep_attention(self) -> bool:
        """When True, every attention gate stores its last map (see `attention_maps`)."""
        return self._keep_attention

    @keep_attention.setter
    def keep_attention(self, value: bool) -> None:
        self._keep_attention = bool(value)
        for stage in self.decoder_stages():
            if stage.gate is not None:
                stage.gate.keep = self._keep_attention
                stage.gate.last_map = None

    @property
    def attention_maps(self) -> list[torch.Tensor]:
        """Last attention maps `(N, 1, ceil(H / 2**level), ceil(W / 2**level))`, deepest gate first
        (the order the decoder applies them); empty until a forward pass with `keep_attention`."""
        if self._input_size is None:
            return []
        height, width = self._input_size
        maps = []
        for level, stage in zip(range(self.depth - 2, -1, -1), self.decoder_stages()):
            if stage.gate is not None and stage.gate.last_map is not None:
                scale = 2**level
                maps.append(stage.gate.last_map[..., : -(-height // scale), : -(-width // scale)])
        return maps


def level_channels(width: int, depth: int) -> list[int]:
    """Channels per level, shallowest first: width, 2 width, 4 width, ..."""
    return [width * 2**level for level in range(depth)]
