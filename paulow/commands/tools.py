"""`paulow summary` (layer table, parameters, FLOPs per megapixel) and `paulow check-overfit`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SUMMARY_SIZE = 256
_LEAVES = ("Conv2d", "ConvTranspose2d", "GroupNorm", "BatchNorm2d", "Dropout2d", "Linear")


def layer_rows(model, in_channels: int, size: int = SUMMARY_SIZE) -> list[dict]:
    """One row per convolution / normalisation layer: name, type, output shape, parameters."""
    import torch

    rows, hooks = [], []
    for name, module in model.named_modules():
        if type(module).__name__ in _LEAVES or (type(module).__name__.endswith("Conv2d")):

            def hook(mod, _inp, out, name=name):
                rows.append(
                    {
                        "layer": name,
                        "type": type(mod).__name__,
                        "output": "x".join(str(d) for d in out.shape[1:]),
                        "params": sum(p.numel() for p in mod.parameters(recurse=False)),
                    }
                )

            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            model.eval()(torch.zeros(1, in_channels, size, size))
    finally:
        for h in hooks:
            h.remove()
    return rows


def summarise(model, in_channels: int) -> dict:
    """Parameter count and forward conv FLOPs per megapixel (multiply-add = 2 FLOPs)."""
    from ..models import count_conv_flops

    flops = count_conv_flops(model, in_channels, SUMMARY_SIZE, SUMMARY_SIZE)
    return {
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "gflop_per_megapixel": flops / 1e9 / (SUMMARY_SIZE * SUMMARY_SIZE / 1e6),
    }


def run_summary(args, echo=print) -> int:
    from ..checkpoint import load_checkpoint
    from ..models import build_model
    from ..report import format_table

    if args.model.lower().endswith(".pth"):
        loaded = load_checkpoint(Path(args.model))
        model, in_ch, title = loaded.models[0], loaded.in_channels, f"{args.model} ({loaded.meta['arch']})"
    else:
        model = build_model(
            args.model, in_channels=args.in_channels, classes=args.classes, width=args.width, depth=args.depth
        )
        in_ch, title = args.in_channels, f"{args.model} width {args.width} depth {args.depth}"
    echo(title)
    echo(format_table(layer_rows(model, in_ch), ["layer", "type", "output", "params"]))
    info = summarise(model, in_ch)
    echo(f"parameters: {info['parameters']:,}")
    echo(
        f"forward FLOPs: {info['gflop_per_megapixel']:.1f} GFLOP per megapixel "
        f"({info['gflop_per_megapixel'] * 128 * 128 / 1e6:.2f} GFLOP per 128x128 patch)"
    )
    return 0


def overfit_one_batch(slices, cfg, device: str, steps: int) -> dict:
    """Train on one fixed batch; return the first and last loss and the batch Dice at the end."""
    import torch

    from ..data import PatchDataset
    from ..losses import build_loss
    from ..training.network import build_network, loss_options
    from ..training.schedules import make_optimizer

    data = PatchDataset(slices, cfg.patch, cfg.overlap, 0.0, None, cfg.classes, cfg.seed)
    # The patches with the most foreground make the check meaningful (an empty batch is trivial).
    order = np.argsort([-float(data[i][1].sum()) for i in range(len(data))])[: cfg.batch_size]
    images = torch.stack([data[int(i)][0] for i in order]).to(device)
    targets = torch.stack([data[int(i)][1] for i in order]).to(device)
    model = build_network(cfg, images.shape[1], device, cfg.seed)
    for module in model.modules():  # dropout would keep the loss from reaching zero
        if isinstance(module, torch.nn.Dropout2d):
            module.p = 0.0
    loss_fn = build_loss(cfg.loss, **loss_options(cfg, slices))
    opt, sched = make_optimizer(model, cfg)
    losses = []
    model.train()
    for step in range(steps):
        sched.set(step / steps)
        loss = loss_fn(model(images), targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    with torch.inference_mode():
        pred = torch.sigmoid(model.eval()(images)) > 0.5
    truth = targets > 0.5
    tp = int((pred & truth).sum())
    denom = int(pred.sum() + truth.sum())
    return {
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "steps": steps,
        "batch_dice": 1.0 if denom == 0 else 2 * tp / denom,
        "patches": len(order),
    }


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
    from ..data import load_pairs
    from ..device import pick_device, use_threads
    from ..palette import find_palette
    from ..workspace import Workspace
    from .common import config_from_args

    ws = Workspace(Path(args.root))
    device = pick_device(args.device or "auto")
    use_threads(device, getattr(args, "busy_cores", None))  # once, at the start
    cfg = config_from_args(args, device)
    masks = args.masks or ws.train_masks
    palette = find_palette(masks, cfg.mask_classes(), getattr(args, "palette", None))
    slices = load_pairs(args.images or ws.train_images, masks, cfg.mask_classes(), palette=palette)
    echo(
        f"training {cfg.arch} width {cfg.width} on one batch of {cfg.batch_size} patches "
        f"for {args.steps} steps ({cfg.loss} loss, lr {cfg.lr:g})"
    )
    result = overfit_one_batch(slices, cfg, device, args.steps)
    ok, verdict = overfit_verdict(result)
    echo(
        f"loss {result['first_loss']:.4f} -> {result['last_loss']:.4f}; Dice on the batch "
        f"{result['batch_dice']:.4f}"
    )
    echo(verdict)
    return 0 if ok else 1


def run_export(args, echo=print) -> int:
    """`paulow export MODEL --format bioimageio|onnx|torchscript [--out DIR] [--example IMAGE]`."""
    from ..export import export_model
    from ..workspace import Workspace

    model = Path(args.model)
    if not model.is_file():
        named = Workspace(Path(args.root)).models / (
            model.name if model.suffix == ".pth" else f"{model.name}.pth"
        )
        model = named if named.is_file() else model
    for path in export_model(model, args.format, args.out, getattr(args, "example", None)):
        echo(f"wrote {path}")
    return 0
