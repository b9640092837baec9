"""`finetune_model.py` / `paulow finetune`: adapt a saved model to new images, show whether it helped.

The new images are split by image into a fine-tune share, a validation share (it chooses the epoch,
threshold and smallest object size) and a held-out share that chooses nothing. The held-out Dice of
the parent and of the fine-tuned model, on the same held-out images, is printed and recorded. An
ensemble file is fine-tuned from its best member (the one its training selected).
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

from ..device import pick_device, use_threads
from ..errors import UsageError
from ..pair_loading import load_pairs
from ..palette import Palette, find_palette, from_colours
from ..slices import check_channels
from ..training.evaluation import dice_on_slices
from ..training.finetune_config import FINETUNE_DEFAULTS, finetune_config
from ..training.finetuning import (
    as_evaluated,
    finetune_network,
    finetuned_meta,
    split_for_finetuning,
    start_member,
)
from ..watch import FoldWatch
from ..workspace import Workspace
from .common import (
    add_file_log,
    check_tensorboard,
    choose_model,
    consume_inputs,
    effective_options,
    read_fingerprints,
    remove_log,
    report_refused,
    require_writable,
    tensorboard_dir,
    training_options,
    unique_dir,
)

log = logging.getLogger("paulow")


def mask_classes(meta: dict, classes: int) -> int:
    """The class count the model's masks are read with: 1 for a boundary model (binary or instance
    labels), else its classes."""
    from ..boundaries import boundary_width

    return 1 if boundary_width(meta) else classes


def model_palette(meta: dict, model: Path) -> Palette | None:
    """The palette stored in a model file, or None."""
    return (
        from_colours(meta["palette"], source=f"the palette of model '{Path(model).name}'")
        if meta.get("palette")
        else None
    )


def _read_pairs(
    images, masks, meta: dict, classes: int, refused: list | None = None, palette: Palette | None = None
) -> list:
    """Image/mask pairs as the model learns them: a boundary model's masks (binary or instance
    labels) become its background / interior / boundary targets; K >= 2 colour masks go through
    `palette`."""
    from ..boundaries import boundary_width, with_boundary_targets

    width = boundary_width(meta)
    slices = load_pairs(
        images,
        masks,
        mask_classes(meta, classes),
        meta.get("normalisation"),
        refused=refused,
        palette=palette,
    )
    from ..context import add_context, model_context

    slices = add_context(slices, model_context(meta))
    return with_boundary_targets(slices, width) if width else slices


def _old_domain_scores(check, parent, done, meta, device, stored: Palette | None) -> dict:
    """Both models' Dice on old-domain images, each as its model file is used."""
    palette = find_palette(check[1], mask_classes(meta, done.cfg.classes), fallback=stored)
    slices = _read_pairs(check[0], check[1], meta, done.cfg.classes, palette=palette)
    return {
        "check_parent_dice": dice_on_slices(
            parent, slices, as_evaluated(done.cfg, meta), device, min_size=int(meta.get("min_object_px") or 0)
        ),
        "check_finetuned_dice": dice_on_slices(
            done.network, slices, done.cfg, device, min_size=int(done.scores.get("min_object_px") or 0)
        ),
        "check_images": len(slices),
    }


def run(args, echo=print) -> Path:
    """The whole finetune command; returns the new model path."""
    from .. import distributed
    from ..checkpoint import load_checkpoint, save_checkpoint, sha256_file
    from ..io.atomic import unique_path

    if distributed.world_size() > 1:
        raise UsageError("finetune_model.py runs in one process: start it without torchrun")
    check_tensorboard(args)
    ws = Workspace(Path(args.root))
    ws.require(ws.finetune_images, ws.finetune_masks)
    require_writable(ws, ws.models, [ws.finetune_images, ws.finetune_masks], args.keep_inputs)
    parent_path = choose_model(ws.models, args.model, args.yes)
    device = pick_device(args.device or "auto")
    use_threads(device, getattr(args, "busy_cores", None))  # once, at the start
    loaded = load_checkpoint(parent_path, device)
    meta = loaded.meta
    cfg = finetune_config(
        meta, {**training_options(args), "preset": args.preset, "freeze_encoder": args.freeze_encoder}, device
    )
    stored = model_palette(meta, parent_path)
    palette = find_palette(
        ws.finetune_masks, mask_classes(meta, loaded.classes), args.palette, fallback=stored
    )
    cfg.palette = palette.as_list() if palette else cfg.palette
    read_as = read_fingerprints(ws.finetune_images, ws.finetune_masks)  # before reading
    refused: list = []
    slices = _read_pairs(ws.finetune_images, ws.finetune_masks, meta, loaded.classes, refused, palette)
    report_refused(refused, args, "Finetune_Model", echo)
    check_channels(slices, loaded.in_channels, f"model '{parent_path.name}'")
    from ..inference_networks import set_activation

    set_activation(loaded.models, meta)  # the parent's held-out Dice: softmax only for models that say so
    holdout = args.holdout if args.holdout is not None else FINETUNE_DEFAULTS["holdout"]
    tune, val, held = split_for_finetuning(slices, holdout, cfg.seed, f"'{ws.finetune_images}'")
    inputs = sorted({s.source for s in slices} | {ws.finetune_masks / s.info["mask_file"] for s in slices})
    read_as = {f: read_as[f] for f in inputs}
    parent = start_member(loaded.models, loaded.meta)
    parent_sha = sha256_file(parent_path)
    out_path = unique_path(ws.models / f"{parent_path.stem}_finetuned.pth")
    with ws.lock():
        report_dir = unique_dir(ws.models / f"{out_path.stem}_report")
        handler = add_file_log(report_dir / "finetune.log")
        try:
            echo(
                f"fine-tuning '{parent_path.name}' on {len(tune)} slice(s), {len(val)} to validate, "
                f"{len(held)} held out; "
                f"lr {cfg.lr:g}, up to {cfg.epochs} epochs"
                + (f", {cfg.time_limit:g} min" if cfg.time_limit else "")
                + (", encoder frozen" if cfg.freeze_encoder else "")
            )
            watch = FoldWatch(
                report_dir / "curves.png",
                f"fine-tuning {parent_path.stem}",
                tensorboard_dir(args, out_path.stem),
            )
            done = finetune_network(parent, tune, val, cfg, device, report_dir, echo, watch, meta, held=held)
            if args.check:
                done.scores.update(_old_domain_scores(args.check, parent, done, meta, device, stored))
                echo(
                    f"old-domain Dice ({args.check[0]}): parent {done.scores['check_parent_dice']:.4f}, "
                    f"fine-tuned {done.scores['check_finetuned_dice']:.4f}"
                )
            new_meta = finetuned_meta(
                meta, out_path.stem, done, {"name": parent_path.name, "sha256": parent_sha}, slices
            )
            path = save_checkpoint(out_path, [done.network.state_dict()], new_meta)
            _write_report(report_dir, done.result, done.scores, done.cfg, args)
        finally:
            remove_log(handler)
        echo(f"saved model: {path} (parent '{parent_path.name}' untouched)")
        echo(f"report: {report_dir}")
        consume_inputs(read_as, args.keep_inputs, "Finetune_Model", echo)
    return path


def _write_report(report_dir: Path, result, scores: dict, cfg, args) -> None:
    """History, scores, settings and the effective options of one fine-tuning run (its curves are
    drawn while it trains)."""
    from ..report import write_csv, write_json

    write_csv(report_dir / "history.csv", result.history)
    write_json(report_dir / "scores.json", scores)
    write_json(report_dir / "config.json", asdict(cfg))
    write_json(report_dir / "options.json", effective_options(args))
