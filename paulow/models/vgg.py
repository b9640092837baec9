"""U-Net with a VGG16 encoder (configuration D: 13 3x3 convolutions in 5 blocks of 2, 2, 3, 3, 3), as in
the liver-segmentation comparison: each decoder level upsamples by a 2x2 transposed convolution,
concatenates the encoder block's output and runs (3x3 convolution [BN] ReLU) twice.

No weights can be downloaded here: the network trains from scratch, or its encoder takes a VGG16
state dict the user supplies (`load_vgg16_encoder`, torchvision's `features.N.*` keys, checked key by
key and shape by shape).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from ..errors import ModelError, UsageError
from .base import SegmentationNet, Stage
from .layers import ConvBlock

VGG16_BLOCKS = (2, 2, 3, 3, 3)  # convolutions per block, configuration D
VGG16_CHANNELS = (64, 128, 256, 512, 512)


def _vgg_block(cin: int, cout: int, convs: int, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers.append(nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1))  # VGG keeps the bias
        if batch_norm:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class VGG16UNet(SegmentationNet):
    """VGG16 encoder (first `depth` blocks; 5 = the whole configuration D) + U-Net decoder.
    `width` scales the VGG channels (64 = the original 64..512)."""

    name = "vgg16_unet"

    def __init__(
        self,
        in_channels: int = 1,
        classes: int = 1,
        width: int = 64,
        depth: int = 5,
        batch_norm: bool = False,
    ) -> None:
        if not 1 <= depth <= 5:
            raise UsageError(f"vgg16_unet has 1 to 5 levels (VGG16 has 5 blocks), not depth={depth}")
        super().__init__(
            {
                "name": self.name,
                "in_channels": in_channels,
                "classes": classes,
                "width": width,
                "depth": depth,
                "batch_norm": batch_norm,
            }
        )
        channels = [max(1, c * width // 64) for c in VGG16_CHANNELS[:depth]]
        self.encoders = nn.ModuleList(
            _vgg_block(cin, cout, convs, batch_norm)
            for cin, cout, convs in zip([in_channels] + channels, channels, VGG16_BLOCKS)
        )
        self.ups = nn.ModuleList(
            nn.ConvTranspose2d(deep, skip, kernel_size=2, stride=2)
            for deep, skip in zip(channels[:0:-1], channels[-2::-1])
        )
        self.decoders = nn.ModuleList(ConvBlock(2 * c, c, batch_norm) for c in channels[-2::-1])
        self.final = nn.Conv2d(channels[0], classes, kernel_size=1)

    def encoder_blocks(self) -> list[nn.Module]:
        return list(self.encoders)

    def decoder_stages(self) -> list[Stage]:
        return [Stage(up, None, block, None) for up, block in zip(self.ups, self.decoders)]

    def head(self) -> nn.Module:
        return self.final


def _encoder_layers(model: VGG16UNet) -> list[nn.Module]:
    return [
        m
        for block in model.encoders
        for m in cast(nn.Sequential, block)
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))
    ]


def _vgg_groups(state_dict: Mapping[str, Any]) -> list[dict[str, torch.Tensor]]:
    """torchvision `features.N.<param>` tensors grouped by layer N, in layer order."""
    groups: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == "features" and parts[1].isdigit():
            groups.setdefault(int(parts[1]), {})[parts[2]] = value
    return [groups[i] for i in sorted(groups)]


def load_vgg16_encoder(model: VGG16UNet, path: str | Path) -> int:
    """Copy a user-supplied VGG16 state dict (torchvision keys `features.N.weight/bias`, with
    BatchNorm tensors for the batch-norm variant) into the encoder; return the tensors copied.
    RGB first-layer filters are summed for a one-channel network.
    Every layer is checked for its keys and shapes before anything is copied (`ModelError`)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise ModelError(
            f"'{path.name}' is not a readable weights file ({type(err).__name__}): "
            "give a VGG16 state dict saved with torch.save"
        ) from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, Mapping):
        raise ModelError(
            f"'{path.name}' holds no state dict: save one with torch.save(vgg.state_dict(), ...)"
        )
    groups, layers = _vgg_groups(state), _encoder_layers(model)
    if len(groups) < len(layers):
        raise ModelError(
            f"'{path.name}' has {len(groups)} VGG feature layers; this encoder needs "
            f"{len(layers)} (VGG16{'_bn' if model.spec['batch_norm'] else ''}, width 64)"
        )
    plan = []
    for index, (group, layer) in enumerate(zip(groups, layers)):
        own = layer.state_dict()
        for key, tensor in own.items():
            if key == "num_batches_tracked":
                continue
            given = group.get(key)
            if (
                index == 0
                and key == "weight"
                and given is not None
                and given.dim() == 4
                and given.shape[1] == 3
                and tensor.shape[1] == 1
            ):
                given = given.sum(dim=1, keepdim=True)  # RGB filters on a grey image: their sum
            if given is None or tuple(given.shape) != tuple(tensor.shape):
                found = "missing" if given is None else f"shape {tuple(given.shape)}"
                raise ModelError(
                    f"'{path.name}': VGG layer {index} '{key}' is {found}, the encoder needs "
                    f"{tuple(tensor.shape)} - use VGG16 weights matching --width 64, "
                    f"{model.spec['in_channels']} input channel(s) and the batch-norm choice"
                )
            plan.append((tensor, given))
    with torch.no_grad():
        for tensor, given in plan:
            tensor.copy_(given)
    return len(plan)
