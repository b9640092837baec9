"""`paulow summary` (layer table, parameters, FLOPs per megapixel), `paulow check-overfit` and `paulow export`."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from ..api import (
    export_model_file,
    network_summary,
    overfit_one_batch,
    pick_device,
    training_pairs,
    use_threads,
)
from ..report import format_table
from ..workspace import Workspace
from .common import config_from_args


def run_summary(args, echo=print) -> int:
    info = network_summary(
        args.model, in_channels=args.in_channels, classes=args.classes, width=args.width, depth=args.depth
    )
    echo(info.title)
    echo(format_table(info.layers, ["layer", "type", "output", "params"]))
    echo(f"parameters: {info.parameters:,}")
    echo(
        f"forward FLOPs: {info.gflop_per_megapixel:.1f} GFLOP per megapixel "
        f"({info.gflop_per_megapixel * 128 * 128 / 1e6:.2f} GFLOP per 128x128 patch)"
    )
    return 0


def overfit_verdict(result: dict) -> tuple[bool, str]:
    """Pass when the loss fell below a tenth of its start or the batch Dice exceeds 0.9; the
    message says which of the two held."""
    fell = result["last_loss"] < 0.1 * result["first_loss"]
    fits = result["batch_dice"] > 0.9
    if fell or fits:
        reasons = (
            [f"the loss fell to {result['last_loss'] / result['first_loss']:.0%} of its start"]
            if fell
            else []
        )
        reasons += [f"Dice on the batch {result['batch_dice']:.3f} > 0.9"] if fits else []
        return True, "PASS: the network can fit this data (" + " and ".join(reasons) + ")"
    return False, (
        "FAIL: the loss stayed above a tenth of its start and the batch Dice at or below 0.9 - "
        "check that masks match their images, the learning rate (--lr) and the loss (--loss)"
    )


def run_check_overfit(args, echo=print) -> int:
    ws = Workspace(Path(args.root))
    device = pick_device(args.device)
    use_threads(device, getattr(args, "busy_cores", None))  # once, at the start
    cfg = config_from_args(args, device)
    slices = training_pairs(
        args.images or ws.train_images, args.masks or ws.train_masks, cfg, getattr(args, "palette", None)
    )
    echo(
        f"training {cfg.arch} width {cfg.width} on one batch of {cfg.batch_size} patches "
        f"for {args.steps} steps ({cfg.loss} loss, lr {cfg.lr:g})"
    )
    result = asdict(overfit_one_batch(slices, cfg, device, args.steps))
    ok, verdict = overfit_verdict(result)
    echo(
        f"loss {result['first_loss']:.4f} -> {result['last_loss']:.4f}; Dice on the batch "
        f"{result['batch_dice']:.4f}"
    )
    echo(verdict)
    return 0 if ok else 1


def run_export(args, echo=print) -> int:
    """`paulow export MODEL --format bioimageio|onnx|torchscript [--out DIR] [--example IMAGE]`."""
    model = Path(args.model)
    if not model.is_file():
        named = Workspace(Path(args.root)).models / (
            model.name if model.suffix == ".pth" else f"{model.name}.pth"
        )
        model = named if named.is_file() else model
    for path in export_model_file(model, args.format, args.out, getattr(args, "example", None)):
        echo(f"wrote {path}")
    return 0
