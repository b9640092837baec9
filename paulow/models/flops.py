"""Convolution FLOP counts and a reference 3x3-convolution throughput, used by `paulow summary`
and by the benchmarks (a multiply-add counts as 2 FLOPs)."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from typing import cast

import torch
from torch import nn

DIRECTIONS = ("fwd", "fwd_bwd")


def _macs_hook(total: list[float], transposed: bool):
    """Forward hook adding the multiply-adds of one convolution call to `total[0]`."""

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        # Conv2d: each output element takes weight[0].numel() multiply-adds; a transposed
        # convolution spreads each input element over weight[0].numel() outputs.
        elements = inputs[0].numel() if transposed else output.numel()
        total[0] += elements * cast(torch.Tensor, module.weight)[0].numel()

    return hook


def count_conv_flops(model: nn.Module, in_channels: int, height: int, width: int) -> float:
    """Forward FLOPs of every Conv2d / ConvTranspose2d for one `(in_channels, height, width)` input."""
    total = [0.0]
    handles = [
        module.register_forward_hook(_macs_hook(total, isinstance(module, nn.ConvTranspose2d)))
        for module in model.modules()
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d))
    ]
    was_training = model.training
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, in_channels, height, width, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return 2.0 * total[0]


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock timings are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def precision(device: torch.device) -> Iterator[None]:
    """bf16 autocast on GPU, plain fp32 elsewhere (the precision the toolkit trains with)."""
    if device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield


def conv3x3_gflops(
    direction: str = "fwd",
    channels: int = 64,
    size: int = 128,
    batch: int = 8,
    device: str | torch.device = "cpu",
    channels_last: bool = True,
    min_seconds: float = 1.0,
    statistic: str = "mean",
) -> float:
    """Measured GFLOP/s of a `channels -> channels` 3x3 convolution on a `(batch, channels, size,
    size)` input: forward only (`"fwd"`, no autograd) or forward + backward (`"fwd_bwd"`, input
    and weight gradients, counted as 3x the forward FLOPs). `statistic` (see `summarise`) turns
    the timed calls into one duration."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
    device = torch.device(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    conv = nn.Conv2d(channels, channels, 3, padding=1).to(  # type: ignore[call-overload]  # torch's stubs omit memory_format
        device, memory_format=memory_format
    )
    x = torch.randn(batch, channels, size, size, device=device).contiguous(memory_format=memory_format)
    backward = direction == "fwd_bwd"
    x.requires_grad_(backward)

    def step() -> None:
        with precision(device), torch.set_grad_enabled(backward):
            y = conv(x)
        if backward:
            y.backward(torch.ones_like(y))

    seconds = summarise(call_durations(step, device, min_seconds), statistic)
    flops = 2.0 * batch * size * size * channels * channels * 9 * (3 if backward else 1)
    return flops / seconds / 1e9


def time_calls(
    step: Callable[[], object], device: torch.device, min_seconds: float, warmup: int = 2, min_calls: int = 3
) -> tuple[float, int]:
    """Run `step()` `warmup` times, then until `min_seconds` and `min_calls` are both reached;
    return (total seconds, calls) of the timed part."""
    durations = call_durations(step, device, min_seconds, warmup, min_calls)
    return sum(durations), len(durations)


def call_durations(
    step: Callable[[], object], device: torch.device, min_seconds: float, warmup: int = 2, min_calls: int = 3
) -> list[float]:
    """Like `time_calls`, but return the duration of each timed call in seconds."""
    for _ in range(warmup):
        step()
    synchronize(device)
    durations: list[float] = []
    while len(durations) < min_calls or sum(durations) < min_seconds:
        start = time.perf_counter()
        step()
        synchronize(device)
        durations.append(time.perf_counter() - start)
    return durations


def summarise(durations: list[float], statistic: str = "mean") -> float:
    """One duration from several timed calls: `"mean"`, `"median"` or `"best"` (the fastest,
    least disturbed by other processes sharing the CPU)."""
    if statistic == "mean":
        return statistics.fmean(durations)
    if statistic == "median":
        return statistics.median(durations)
    if statistic == "best":
        return min(durations)
    raise ValueError(f"statistic must be 'mean', 'median' or 'best', not {statistic!r}")
