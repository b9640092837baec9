"""Network registry: build a model by name, read back the arguments that rebuild it.

Every model maps `(N, in_channels, H, W)` to logits `(N, classes, H, W)` for any H, W, and carries
`model.spec`, the `build_model` arguments (name included) that rebuild it: a checkpoint stores
`model_args(model)` and later calls `build_model(**args)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import UsageError
from .base import SegmentationNet
from .classic import AttentionUNet, UNet
from .flops import conv3x3_gflops, count_conv_flops
from .paulow_net import (
    OriginalAttentionUNet,
    PaulowAttentionUNet,
    infer_original_args,
    is_original_state_dict,
)
from .vgg import VGG16UNet, load_vgg16_encoder

__all__ = [
    "MODEL_NAMES",
    "build_model",
    "model_args",
    "infer_original_args",
    "is_original_state_dict",
    "count_conv_flops",
    "conv3x3_gflops",
    "SegmentationNet",
    "PaulowAttentionUNet",
    "OriginalAttentionUNet",
    "AttentionUNet",
    "UNet",
    "VGG16UNet",
    "load_vgg16_encoder",
]


def _original(
    in_channels: int, classes: int, width: int, depth: int, dropout: float = 0.2
) -> OriginalAttentionUNet:
    if depth != 4:
        raise UsageError(
            f"paulow_original has 4 levels, not depth={depth}; use paulow_attention_unet for other depths"
        )
    return OriginalAttentionUNet(in_channels, classes, dropout_rate=dropout, width=width)


_BUILDERS: dict[str, Callable[..., SegmentationNet]] = {
    "paulow_attention_unet": PaulowAttentionUNet,
    "attention_unet": AttentionUNet,
    "unet": UNet,
    "paulow_original": _original,
    "vgg16_unet": VGG16UNet,
}
MODEL_NAMES: tuple[str, ...] = tuple(_BUILDERS)


def build_model(
    name: str = "paulow_attention_unet",
    in_channels: int = 1,
    classes: int = 1,
    width: int = 64,
    depth: int = 4,
    **extra: Any,
) -> SegmentationNet:
    """Build a network by name. Extra arguments: `dropout` (PAULow networks, default 0.2),
    `batch_norm` (`unet`, default True). Raises `UsageError` for unknown names or bad sizes."""
    if name not in _BUILDERS:
        raise UsageError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    for label, value, low in (
        ("in_channels", in_channels, 1),
        ("classes", classes, 1),
        ("width", width, 1),
        ("depth", depth, 1),
    ):
        if int(value) != value or value < low:
            raise UsageError(f"model {label} must be a whole number >= {low}, not {value!r}")
    try:
        model = _BUILDERS[name](in_channels=in_channels, classes=classes, width=width, depth=depth, **extra)
    except TypeError as error:
        raise UsageError(f"model {name!r} does not take these options: {error}") from None
    # NHWC weights spare oneDNN a weight reorder per convolution (the input is made NHWC in forward).
    return model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs omit memory_format


def model_args(model: nn.Module) -> dict[str, Any]:
    """The `build_model` keyword arguments (including `name`) that rebuild `model`."""
    spec = getattr(model, "spec", None)
    if not isinstance(spec, dict):
        raise TypeError(f"{type(model).__name__} was not built by paulow.models")
    return dict(spec)
