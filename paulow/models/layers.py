"""Building blocks shared by the networks: weight-standardised convolutions, residual and plain
convolution blocks, attention gates, and the padding that lets every network take any H, W."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

NormFactory = Callable[[int], nn.Module]


def group_norm(channels: int, groups: int = 8) -> nn.GroupNorm:
    """GroupNorm with `gcd(groups, channels)` groups, so any channel count (even 1 or 12) works."""
    return nn.GroupNorm(math.gcd(groups, channels), channels)


NORMS: tuple[str, ...] = ("group", "batch", "layer", "instance", "none")


def norm_factory(name: str) -> NormFactory:
    """The normalisation layer for `--norm`: GroupNorm (8 groups), BatchNorm, LayerNorm over channels
    and space (GroupNorm with one group), InstanceNorm with affine weights (one group per channel),
    or none. The GroupNorm-based ones keep the `weight`/`bias` keys of the published network."""
    from ..errors import UsageError

    factories: dict[str, NormFactory] = {
        "group": group_norm,
        "batch": nn.BatchNorm2d,
        "layer": lambda c: nn.GroupNorm(1, c),
        "instance": lambda c: nn.GroupNorm(c, c),
        "none": lambda c: nn.Identity(),
    }
    if name not in factories:
        raise UsageError(f"unknown normalisation {name!r}: choose one of {', '.join(NORMS)}")
    return factories[name]


def standardise_weight(weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """(w - mean) / (std + eps) per output filter, with the unbiased std the original code uses."""
    std, mean = torch.std_mean(weight, dim=tuple(range(1, weight.dim())), keepdim=True)
    return (weight - mean) / (std + eps)


class WSConv2d(nn.Conv2d):
    """Conv2d whose filters are standardised (zero mean, unit std) on every forward pass."""

    eps = 1e-5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, standardise_weight(self.weight, self.eps), self.bias)


class PointwiseConv2d(nn.Conv2d):
    """1x1 Conv2d run as a matrix product on channels-last input (forward + backward 15-40% faster
    on CPU than the convolution kernels); same parameters, state dict and result."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or not x.is_contiguous(memory_format=torch.channels_last):
            return super().forward(x)
        rows = x.permute(0, 2, 3, 1)  # (N, H, W, C), contiguous for a channels-last tensor
        return F.linear(rows, self.weight.flatten(1), self.bias).permute(0, 3, 1, 2)


class ResidualBlock(nn.Module):
    """Two weight-standardised 3x3 convolutions, each followed by GroupNorm; LeakyReLU after the
    first and after the residual sum; a 1x1 convolution on the residual path when channels change.

    Attribute names match the original PAULow `ConvBlock`, so its state dicts load unchanged.
    """

    def __init__(self, in_channels: int, out_channels: int, norm: NormFactory = group_norm) -> None:
        super().__init__()
        self.conv1 = WSConv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm1 = norm(out_channels)
        self.act1 = nn.LeakyReLU(inplace=True)
        self.conv2 = WSConv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.norm2 = norm(out_channels)
        self.act2 = nn.LeakyReLU(inplace=True)
        self.residual: nn.Module = (
            PointwiseConv2d(in_channels, out_channels) if in_channels != out_channels else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self.residual(x)
        out = self.act1(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        out += identity
        return self.act2(out)


class ConvBlock(nn.Module):
    """(3x3 convolution, optional normalisation, ReLU) twice: the classic U-Net block.

    `norm` (a factory, or None for none) overrides `batch_norm` when given."""

    def __init__(
        self, in_channels: int, out_channels: int, batch_norm: bool = True, norm: NormFactory | None = None
    ) -> None:
        super().__init__()
        norm = norm if norm is not None else (nn.BatchNorm2d if batch_norm else None)
        layers: list[nn.Module] = []
        for cin in (in_channels, out_channels):
            layers.append(nn.Conv2d(cin, out_channels, 3, padding=1, bias=norm is None))
            if norm is not None:
                layers.append(norm(out_channels))
            layers.append(nn.ReLU(inplace=True))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class UpConv(nn.Module):
    """Nearest 2x upsampling, then 3x3 convolution, BatchNorm and ReLU (Oktay et al. reference)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class AttentionGate(nn.Module):
    """Additive attention gate: psi = sigmoid(norm(conv(act(norm(Wg g) + norm(Wx x))))), output x * psi.

    `norm` is GroupNorm for the PAULow network (LeakyReLU) and BatchNorm for Oktay et al. (ReLU).
    Attribute names match the original PAULow `AttentionGate`. With `keep = True` the last
    attention map `(N, 1, h, w)` is stored, detached, in `last_map`.
    """

    def __init__(
        self,
        gate_channels: int,
        skip_channels: int,
        inner_channels: int,
        norm: NormFactory = group_norm,
        leaky: bool = True,
    ) -> None:
        super().__init__()
        self.W_g = nn.Sequential(PointwiseConv2d(gate_channels, inner_channels), norm(inner_channels))
        self.W_x = nn.Sequential(PointwiseConv2d(skip_channels, inner_channels), norm(inner_channels))
        self.psi = nn.Sequential(PointwiseConv2d(inner_channels, 1), norm(1), nn.Sigmoid())
        self.act: nn.Module = nn.LeakyReLU(inplace=True) if leaky else nn.ReLU(inplace=True)
        self.keep = False
        self.last_map: torch.Tensor | None = None

    def forward(self, g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        psi = self.psi(self.act(self.W_g(g) + self.W_x(x)))
        if self.keep:
            self.last_map = psi.detach()
        return x * psi


def batch_norm(channels: int) -> nn.BatchNorm2d:
    """BatchNorm2d, as a norm factory for `AttentionGate`."""
    return nn.BatchNorm2d(channels)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad H and W at the bottom/right up to a multiple: reflect where the side is long enough,
    zeros otherwise (reflection needs the pad to be shorter than the side)."""
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h:
        x = F.pad(x, (0, 0, 0, pad_h), mode="reflect" if pad_h < height else "constant")
    if pad_w:
        x = F.pad(x, (0, pad_w, 0, 0), mode="reflect" if pad_w < width else "constant")
    return x
