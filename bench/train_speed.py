"""Training throughput of the PAULow attention U-Net: patches/s for forward + backward + AdamW step
with the dynamic loss, the useful GFLOP/s this represents (network convolution FLOPs x 3), and the
efficiency against a plain 3x3 convolution's forward + backward GFLOP/s measured in the same run.

Rates come from the fastest timed step (and the fastest reference call), so that other processes
on a shared machine disturb them least; the median step is shown too.

    python bench/train_speed.py [--widths 64 32 16] [--batch 8] [--steps 4] [--min-seconds 4]
                                [--patch 128] [--device cpu|cuda] [--threads N] [--json OUT]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch
from _common import describe, pick_device, print_table, write_json  # first: sets up threads

from paulow.losses import build_loss
from paulow.models import build_model, conv3x3_gflops, count_conv_flops
from paulow.models.flops import call_durations, precision, summarise

COLUMNS = [
    ("width", "width", "d"),
    ("params_m", "params (M)", ".2f"),
    ("gflop_per_patch", "fwd GFLOP/patch", ".2f"),
    ("patches_per_s", "patches/s", ".2f"),
    ("median_patches_per_s", "(median)", ".2f"),
    ("useful_gflops", "useful GFLOP/s", ".1f"),
    ("conv3x3_gflops", "3x3 conv GFLOP/s", ".1f"),
    ("efficiency", "efficiency", ".2f"),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 32, 16])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4, help="timed steps (at least)")
    parser.add_argument(
        "--min-seconds", type=float, default=4.0, help="time each width for at least this long"
    )
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    parser.add_argument("--json", dest="json_out", default=None, help="also write results here")
    return parser.parse_args(argv)


def training_step(model: torch.nn.Module, batch: int, patch: int, device: torch.device):
    """A closure running one optimisation step on a fixed random batch."""
    # foreach: a few multi-tensor kernels instead of ~10 small ops per parameter tensor
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=True)
    loss_fn = build_loss("dynamic")
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 1, patch, patch, generator=generator).to(device)
    masks = (torch.rand(batch, 1, patch, patch, generator=generator) > 0.9).float().to(device)

    def step() -> None:
        optimiser.zero_grad(set_to_none=True)
        with precision(device):
            logits = model(images)
        loss_fn(logits.float(), masks).backward()
        optimiser.step()

    return step


def measure_width(
    width: int, args: argparse.Namespace, device: torch.device, reference_gflops: float
) -> dict[str, Any]:
    """Throughput row for one network width."""
    # build_model returns channels-last weights; forward makes the input channels-last
    model = build_model("paulow_attention_unet", in_channels=1, classes=1, width=width).to(device)
    flops = count_conv_flops(model, 1, args.patch, args.patch)
    model.train()
    durations = call_durations(
        training_step(model, args.batch, args.patch, device),
        device,
        args.min_seconds,
        warmup=1,
        min_calls=args.steps,
    )
    patches_per_s = args.batch / summarise(durations, "best")
    useful = 3 * flops * patches_per_s / 1e9
    return {
        "width": width,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "gflop_per_patch": flops / 1e9,
        "patches_per_s": patches_per_s,
        "median_patches_per_s": args.batch / summarise(durations, "median"),
        "useful_gflops": useful,
        "conv3x3_gflops": reference_gflops,
        "efficiency": useful / reference_gflops,
        "steps": len(durations),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = pick_device(args.device, args.threads)
    print(
        f"training speed, {args.patch}x{args.patch} patches, batch {args.batch}, one input "
        f"channel, dynamic loss, AdamW, on {describe(device)}"
    )
    start = time.perf_counter()
    reference = conv3x3_gflops(
        "fwd_bwd",
        channels=64,
        size=args.patch,
        batch=args.batch,
        device=device,
        min_seconds=2.0,
        statistic="best",
    )
    print(
        f"reference: 64->64 3x3 conv forward+backward on {args.batch}x64x{args.patch}x"
        f"{args.patch}: {reference:.1f} GFLOP/s"
    )
    rows = [measure_width(width, args, device, reference) for width in args.widths]
    print_table(rows, COLUMNS)
    print(f"total {time.perf_counter() - start:.0f} s")
    write_json(
        args.json_out,
        {
            "benchmark": "train_speed",
            "device": describe(device),
            "batch": args.batch,
            "patch": args.patch,
            "reference_conv3x3_fwd_bwd_gflops": reference,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
