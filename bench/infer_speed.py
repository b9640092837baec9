"""Whole-image inference speed of `paulow.infer.predict_slice` with the PAULow attention U-Net:
megapixels of image per second, the useful GFLOP/s (network convolution FLOPs per tile x tiles run /
time) against a plain 64->64 3x3 convolution's forward GFLOP/s measured around each row, and
the peak resident memory of segmenting a large uint16 image (in a subprocess).

    python bench/infer_speed.py [--widths 64 32 16] [--tile 256 [512]] [--overlaps 0 0.5]
                                [--size 1024] [--batch 8] [--min-seconds 3] [--device cpu|cuda]
                                [--threads N] [--skip-memory] [--memory-size 8000]
                                [--memory-full] [--compile] [--json OUT]

`--compile` adds, for every row, the same measurement with the network `torch.compile`d as
`use_model.py --compile` does (`compiled` column; `compile_s`: the first call, which compiles).

On CPU, widths of 64 and more run on a `--size / 2` image so the benchmark stays a few minutes.
The memory run (width 16, overlap 0.5) runs the network on its first batches, which is where its
activations peak, and returns stored logits for the rest so it takes seconds, while every buffer of
the pipeline is allocated and filled as in a real run; `--memory-full` runs the network on every tile
(8000^2, width 16, 2 CPU cores: 1.26 GiB and 13 min full, against 1.08-1.12 GiB replayed: allocator
fragmentation over thousands of forward passes adds about 0.15 GiB).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import describe, pick_device, print_table, write_json

from paulow.infer import predict_slice, suggest_tile, tile_starts
from paulow.inference_networks import compile_for_inference
from paulow.models import build_model, conv3x3_gflops, count_conv_flops
from paulow.models.flops import time_calls

COLUMNS = [
    ("width", "width", "d"),
    ("compiled", "compiled", ""),
    ("tile", "tile", "d"),
    ("overlap", "overlap", ".2f"),
    ("size", "image", "d"),
    ("tiles", "tiles", "d"),
    ("seconds", "s", ".1f"),
    ("mpix_per_s", "MPix/s", ".3f"),
    ("gflop_per_tile", "GFLOP/tile", ".2f"),
    ("useful_gflops", "useful GFLOP/s", ".1f"),
    ("conv3x3_gflops", "3x3 conv GFLOP/s", ".1f"),
    ("efficiency", "efficiency", ".2f"),
]
MODEL = "paulow_attention_unet"
REAL_BATCHES = 3  # memory run: batches that go through the network before logits are replayed


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 32, 16])
    parser.add_argument(
        "--tile",
        type=int,
        nargs="+",
        default=None,
        help="tile sizes (default: paulow.infer.suggest_tile(128, device))",
    )
    parser.add_argument("--overlaps", type=float, nargs="+", default=[0.0, 0.5])
    parser.add_argument("--size", type=int, default=1024, help="side of the square test image")
    parser.add_argument("--batch", type=int, default=8, help="tiles per batch")
    parser.add_argument(
        "--min-seconds",
        type=float,
        default=3.0,
        help="repeat each timed image until this long; the mean is reported",
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads (default: every core); 1 can be faster on a busy machine",
    )
    parser.add_argument("--skip-memory", action="store_true", help="skip the peak-memory run")
    parser.add_argument("--memory-size", type=int, default=8000)
    parser.add_argument("--memory-width", type=int, default=16)
    parser.add_argument(
        "--memory-full",
        action="store_true",
        help="run the network on every tile of the memory run (slow on CPU)",
    )
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also measure each row with the network compiled (use_model.py --compile)",
    )
    parser.add_argument("--json", dest="json_out", default=None, help="also write results here")
    return parser.parse_args(argv)


def sample_image(size: int, seed: int = 0) -> np.ndarray:
    """A normalised-looking (1, size, size) float32 image: smooth blobs plus noise."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((1, size // 16 + 1, size // 16 + 1), dtype=np.float32)
    image = np.repeat(np.repeat(coarse, 16, axis=1), 16, axis=2)[:, :size, :size]
    return image + 0.1 * rng.standard_normal(image.shape, dtype=np.float32)


def tiles_run(size: int, tile: int, overlap: float) -> int:
    """Number of tiles predict_slice runs on a square image of side `size`."""
    step = max(1, round(tile * (1 - overlap)))
    return len(tile_starts(max(size, tile), tile, step)) ** 2


def image_size(width: int, args: argparse.Namespace, device: torch.device) -> int:
    """The test image side: halved on CPU for the widest networks."""
    return args.size // 2 if device.type == "cpu" and width >= 64 else args.size


def warm_up(model: torch.nn.Module, tile: int, batch: int, device: torch.device) -> None:
    """One forward of `batch` tiles, so the timed run does not pay one-time kernel setup."""
    predict_slice(
        model,
        np.zeros((1, tile, tile * batch), np.float32),
        tile=tile,
        overlap=0,
        batch_size=batch,
        device=device,
    )


def measure(
    width: int,
    tile: int,
    overlap: float,
    args: argparse.Namespace,
    device: torch.device,
    compiled: bool = False,
) -> dict[str, Any]:
    """One row: mean time of predict_slice on a test image (repeated for at least
    `--min-seconds`); the 3x3-conv reference is the mean of runs just before and just after, as
    other processes on the machine change the speed. `compiled`: the network goes through
    `compile_for_inference` first; the warm-up call, which compiles, is timed as `compile_s`."""
    model = build_model(MODEL, in_channels=1, classes=1, width=width)
    flops = count_conv_flops(model, 1, tile, tile)
    size = image_size(width, args, device)
    image = sample_image(size)
    tiles = tiles_run(size, tile, overlap)
    if compiled:
        model = compile_for_inference(model.eval())
    warm_start = time.perf_counter()
    warm_up(model, tile, min(args.batch, tiles), device)
    compile_s = time.perf_counter() - warm_start if compiled else None
    before = reference_gflops(device)
    seconds, calls = time_calls(
        lambda: predict_slice(model, image, tile=tile, overlap=overlap, batch_size=args.batch, device=device),
        device,
        args.min_seconds,
        warmup=0,
        min_calls=1,
    )
    seconds /= calls
    after = reference_gflops(device)
    reference = (before + after) / 2
    useful = flops * tiles / seconds / 1e9
    return {
        "width": width,
        "compiled": "yes" if compiled else "no",
        "compile_s": compile_s,
        "tile": tile,
        "overlap": overlap,
        "size": size,
        "tiles": tiles,
        "seconds": seconds,
        "runs": calls,
        "mpix_per_s": size * size / seconds / 1e6,
        "gflop_per_tile": flops / 1e9,
        "useful_gflops": useful,
        "conv3x3_gflops": reference,
        "conv3x3_gflops_before": before,
        "conv3x3_gflops_after": after,
        "efficiency": useful / reference,
    }


def reference_gflops(device: torch.device) -> float:
    """Forward GFLOP/s of a 64->64 3x3 convolution on 8x64x128x128 (channels_last)."""
    return conv3x3_gflops("fwd", channels=64, size=128, batch=8, device=device, min_seconds=1.0)


class ReplayAfter(torch.nn.Module):
    """Runs `inner` on the first `real` calls, then returns the last logits again (same shape):
    the pipeline's buffers are exercised in full without paying for every forward pass."""

    def __init__(self, inner: torch.nn.Module, real: int) -> None:
        super().__init__()
        self.inner = inner
        self.real = real
        self.calls = 0
        self.last: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls <= self.real or self.last is None or self.last.shape[0] != x.shape[0]:
            self.last = self.inner(x)
        return self.last.clone()


def memory_child(args: argparse.Namespace) -> None:
    """Segment a random uint16 image (normalise, predict, threshold); print peak RSS as JSON."""
    from paulow.normalisation import normalise
    from paulow.postprocess import to_mask

    device = pick_device(args.device)
    tile = (args.tile or [suggest_tile(128, device)])[0]
    size = args.memory_size
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 4096, size=(1, size, size), dtype=np.uint16)
    start = time.perf_counter()
    image = normalise(raw, 1.0, 99.8)
    model: torch.nn.Module = build_model(MODEL, in_channels=1, classes=1, width=args.memory_width)
    if not args.memory_full:
        model = ReplayAfter(model, REAL_BATCHES)
    probs = predict_slice(model, image, tile=tile, overlap=0.5, batch_size=args.batch, device=device)
    mask = to_mask(probs)
    seconds = time.perf_counter() - start
    peak_kib = peak_rss_kib()
    print(
        json.dumps(
            {
                "size": size,
                "width": args.memory_width,
                "tile": tile,
                "overlap": 0.5,
                "tiles": tiles_run(size, tile, 0.5),
                "full": args.memory_full,
                "seconds": seconds,
                "foreground": float(mask.mean()),
                "peak_rss_gib": peak_kib / 2**20,
            }
        )
    )


def peak_rss_kib() -> int:
    """Peak resident memory of this process in KiB: `VmHWM` from /proc where there is one, since
    `ru_maxrss` of a child started by vfork + exec also holds its parent's peak (Linux keeps the
    larger of the two across exec); `ru_maxrss` elsewhere."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure_memory(args: argparse.Namespace) -> dict[str, Any]:
    """Run `memory_child` in a fresh interpreter and return what it printed."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--memory-child",
        "--memory-size",
        str(args.memory_size),
        "--memory-width",
        str(args.memory_width),
        "--batch",
        str(args.batch),
    ]
    command += ["--device", args.device] if args.device else []
    command += ["--tile", str(args.tile[0])] if args.tile else []
    command += ["--memory-full"] if args.memory_full else []
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.memory_child:
        memory_child(args)
        return
    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    tiles = args.tile or [suggest_tile(128, device)]
    print(
        f"inference speed, {MODEL}, one input channel, batch {args.batch}, {args.size}^2 image "
        f"(widths >= 64 on CPU: {args.size // 2}^2), on {describe(device)}"
    )
    print(f"load average at start: {os.getloadavg()[0]:.1f} (cpu count {os.cpu_count()})")
    start = time.perf_counter()
    rows = [
        measure(width, tile, overlap, args, device, compiled)
        for width in args.widths
        for tile in tiles
        for overlap in args.overlaps
        for compiled in ((False, True) if args.compile else (False,))
    ]
    print_table(rows, COLUMNS)
    memory = None if args.skip_memory else measure_memory(args)
    if memory:
        replay = (
            "network on every tile"
            if memory["full"]
            else f"network on the first {REAL_BATCHES} batches, logits replayed after"
        )
        print(
            f"peak memory, {memory['size']}^2 uint16 image, width {memory['width']}, tile "
            f"{memory['tile']}, overlap 0.5, normalise + predict + threshold ({replay}): "
            f"{memory['peak_rss_gib']:.2f} GiB in {memory['seconds']:.0f} s"
        )
    print(f"total {time.perf_counter() - start:.0f} s; load average at end: {os.getloadavg()[0]:.1f}")
    write_json(
        args.json_out,
        {
            "benchmark": "infer_speed",
            "device": describe(device),
            "batch": args.batch,
            "rows": rows,
            "memory": memory,
        },
    )


if __name__ == "__main__":
    main()
