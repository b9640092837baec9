"""The training data path, old against new in one process: patches/s of `PatchDataset` through the
`DataLoader` (the host path, augmentation in NumPy) and of `DeviceBatches` (cut and augmented as
tensors on the device), alternating, on the same slices; and, with `--validation`, one between-epoch
validation through `predict_slices` (slice by slice) against `predict_batched` (tiles of all slices
batched). No network step is timed for the batches: only the data path. `--activation-memory
WIDTH ...` also measures the float32 activations a training forward keeps for backward, per 128 px
patch (`paulow.gpu_preset` sizes the `gpu` preset's batch by them).

    python bench/train_data_path.py [--slices 8] [--size 512] [--patch 128] [--batches 8 64]
                                    [--epochs 3] [--validation] [--width 16] [--device cpu|cuda]
                                    [--activation-memory 32 64] [--threads N] [--json OUT]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import describe, pick_device, write_json  # first: sets up threads
from machine import machine_line

from paulow.api import synthetic_image
from paulow.augmentation import Augment
from paulow.config import TrainConfig
from paulow.device_batches import DeviceBatches
from paulow.normalisation import normalise
from paulow.patches import PatchDataset
from paulow.slices import Slice


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--size", type=int, default=512, help="side of each synthetic slice")
    parser.add_argument("--patch", type=int, default=128)
    parser.add_argument("--batches", type=int, nargs="*", default=[8, 64], help="batch sizes")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per path and batch size")
    parser.add_argument("--validation", action="store_true", help="also time one validation each way")
    parser.add_argument("--width", type=int, default=16, help="network width of the validation")
    parser.add_argument("--activation-memory", type=int, nargs="*", default=[], metavar="WIDTH")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", dest="json_out", default=None)
    return parser.parse_args(argv)


def make_slices(count: int, size: int) -> list[Slice]:
    pairs = [synthetic_image("nuclei", (size, size), seed=k) for k in range(count)]
    return [Slice(normalise(im[None]), m, Path(f"b{k}.tif"), 0) for k, (im, m) in enumerate(pairs)]


def epoch_stats(batches, device: torch.device) -> tuple[float, int, list[float]]:
    """Seconds for one pass (device synchronised), patches, and mean/std of the images and mean
    foreground of the targets (the two paths draw from the same distribution)."""
    start = time.perf_counter()
    count, sums = 0, np.zeros(3)
    for images, targets, *_ in batches:
        images = images.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        sums += [float(images.mean()), float(images.std()), float(targets.mean())]
        count += len(images)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    steps = max(len(batches), 1)
    return time.perf_counter() - start, count, (sums / steps).tolist()


def compare_batches(slices: list[Slice], batch: int, args: argparse.Namespace, device: torch.device) -> dict:
    from paulow.training.epoch import _loader

    dataset = PatchDataset(slices, args.patch, args.patch // 2, 0.5, Augment(), 1, 0, None)
    cfg = TrainConfig(batch_size=batch, workers=0, seed=0)
    paths = {"old": _loader(dataset, cfg, str(device)), "new": DeviceBatches(dataset, batch, device)}
    seconds: dict[str, list[float]] = {"old": [], "new": []}
    stats: dict[str, list[list[float]]] = {"old": [], "new": []}
    patches = {}
    for epoch in range(args.epochs + 1):  # epoch 0 warms up both
        dataset.reshuffle(epoch)
        for name, batches in paths.items():
            took, patches[name], means = epoch_stats(batches, device)
            if epoch:
                seconds[name].append(took)
                stats[name].append(means)
    rate = {name: patches[name] / min(seconds[name]) for name in paths}
    return {
        "batch": batch,
        "patches_per_epoch": patches,
        "seconds": seconds,
        "patches_per_s": rate,
        "new_over_old": rate["new"] / rate["old"],
        "mean_image_std_foreground": {k: np.mean(v, axis=0).tolist() for k, v in stats.items()},
        "where": paths["new"].where,  # type: ignore[attr-defined]
    }


def compare_validation(slices: list[Slice], args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    from paulow.device_validation import predict_batched
    from paulow.infer import suggest_tile
    from paulow.models import build_model
    from paulow.training.evaluation import between_epoch_slices, predict_slices

    cfg = TrainConfig(patch=args.patch, batch_size=8, val_tiles=24, width=args.width)
    checks = between_epoch_slices(slices, cfg, str(device))
    torch.manual_seed(0)
    net = build_model("paulow_attention_unet", in_channels=1, classes=1, width=args.width).eval()
    tile, seconds = suggest_tile(cfg.patch, device), {"old": [], "new": []}
    for repeat in range(3):  # the first warms up
        for name in ("old", "new"):
            start = time.perf_counter()
            if name == "old":
                probs = predict_slices(net, checks, cfg, str(device))
            else:
                probs = predict_batched(
                    net,
                    [s.image for s in checks],
                    tile=tile,
                    overlap=cfg.infer_overlap,
                    batch_size=8,
                    device=device,
                )
            if repeat:
                seconds[name].append(time.perf_counter() - start)
    return {
        "checks": len(checks),
        "tile": tile,
        "seconds": seconds,
        "old_over_new_seconds": min(seconds["old"]) / min(seconds["new"]),
        "last_probs_mean": float(np.mean([p.mean() for p in probs])),
    }


def activation_mib(width: int, patch: int, batch: int = 2) -> float:
    """MiB of float32 tensors a training forward saves for backward, per patch (CPU, batch 2)."""
    from paulow.models import build_model

    net = build_model("paulow_attention_unet", in_channels=1, classes=1, width=width).train()
    saved: dict[tuple, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = (t.data_ptr(), t.dtype)  # a tensor saved twice (or a view of it) counts once
        saved[key] = max(saved.get(key, 0), t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(torch.randn(batch, 1, patch, patch)).sum()
    return sum(saved.values()) / batch / 2**20


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = pick_device(args.device, args.threads)
    print(
        f"training data path on {describe(device)}; {machine_line()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    slices = make_slices(args.slices, args.size)
    rows = []
    for batch in args.batches:
        row = compare_batches(slices, batch, args, device)
        rows.append(row)
        rate = row["patches_per_s"]
        print(
            f"batch {batch}: old {rate['old']:.0f} patches/s, new ({row['where']}) {rate['new']:.0f} patches/s, "
            f"new/old {row['new_over_old']:.2f}; mean image/std/foreground old {row['mean_image_std_foreground']['old']} "
            f"new {row['mean_image_std_foreground']['new']}"
        )
    memory = {w: activation_mib(w, args.patch) for w in args.activation_memory}
    for width, mib in memory.items():
        print(f"width {width}: {mib:.1f} MiB of float32 activations kept per {args.patch} px patch")
    validation = compare_validation(slices, args, device) if args.validation else None
    if validation:
        print(
            f"validation ({validation['checks']} crops, tile {validation['tile']}): old {min(validation['seconds']['old']):.2f} s, "
            f"batched {min(validation['seconds']['new']):.2f} s, old/new {validation['old_over_new_seconds']:.2f}"
        )
    write_json(
        args.json_out,
        {
            "benchmark": "train_data_path",
            "device": describe(device),
            "machine": machine_line(),
            "date": time.strftime("%Y-%m-%d", time.gmtime()),
            "args": vars(args),
            "rows": rows,
            "validation": validation,
        },
    )


if __name__ == "__main__":
    main()
