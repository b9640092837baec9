"""`finetune_model.py` / `paulow finetune`: adapt a saved model to new images, show whether it helped.

The new images are split by image into a fine-tune share, a validation share (it chooses the epoch,
threshold and smallest object size) and a held-out share that chooses nothing. The held-out Dice of
the parent and of the fine-tuned model, on the same held-out images, is printed and recorded. An
ensemble file is fine-tuned from its best member (the one its training selected). The run itself is
`paulow.api.finetune_run` (shared with `paulow.finetune`); this module holds the arguments, prompts,
workspace, printing, saving under a free name and clearing the inputs after the verified save.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from ..api import (
    finetune_settings,
    fit_finetune,
    free_model_path,
    holdout_share,
    load_parent,
    parent_identity,
    plan_finetune,
    read_finetune_folders,
    require_one_process,
    save_finetuned,
    use_threads,
)
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


def run(args, echo=print) -> Path:
    """The whole finetune command; returns the new model path."""
    require_one_process("finetune_model.py runs in one process: start it without torchrun")
    check_tensorboard(args)
    ws = Workspace(Path(args.root))
    ws.require(ws.finetune_images, ws.finetune_masks)
    require_writable(ws, ws.models, [ws.finetune_images, ws.finetune_masks], args.keep_inputs)
    parent_path = choose_model(ws.models, args.model, args.yes)
    model = load_parent(parent_path, args.device)
    use_threads(model.device, getattr(args, "busy_cores", None))  # once, at the start
    options = {**training_options(args), "preset": args.preset, "freeze_encoder": args.freeze_encoder}
    cfg = finetune_settings(model.meta, options, model.device)
    read_as = read_fingerprints(ws.finetune_images, ws.finetune_masks)  # before reading
    refused: list = []
    cfg, slices = read_finetune_folders(
        model, cfg, ws.finetune_images, ws.finetune_masks, parent_path.name, args.palette, refused
    )
    report_refused(refused, args, "Finetune_Model", echo)
    where, who = f"'{ws.finetune_images}'", f"model '{parent_path.name}'"
    plan = plan_finetune(model, slices, cfg, holdout_share(args.holdout), where, who)
    inputs = sorted({s.source for s in slices} | {ws.finetune_masks / s.info["mask_file"] for s in slices})
    read_as = {f: read_as[f] for f in inputs}
    parent = parent_identity(parent_path)
    out_path = free_model_path(ws.models / f"{parent_path.stem}_finetuned.pth")
    with ws.lock():
        report_dir = unique_dir(ws.models / f"{out_path.stem}_report")
        handler = add_file_log(report_dir / "finetune.log")
        try:
            echo(_start_line(parent_path.name, plan))
            done = fit_finetune(
                model,
                plan,
                out_path.stem,
                parent,
                device=model.device,
                report_dir=report_dir,
                title=f"fine-tuning {parent_path.stem}",
                tensorboard=tensorboard_dir(args, out_path.stem),
                echo=echo,
                check=args.check,
            )
            if args.check:
                echo(
                    f"old-domain Dice ({args.check[0]}): parent {done.scores['check_parent_dice']:.4f}, "
                    f"fine-tuned {done.scores['check_finetuned_dice']:.4f}"
                )
            path = save_finetuned(out_path, done)
            _write_report(report_dir, done.history, done.scores, done.cfg, args)
        finally:
            remove_log(handler)
        echo(f"saved model: {path} (parent '{parent_path.name}' untouched)")
        echo(f"report: {report_dir}")
        consume_inputs(read_as, args.keep_inputs, "Finetune_Model", echo)
    return path


def _start_line(parent: str, plan) -> str:
    """The line that starts a fine-tuning run: the split and the main settings."""
    cfg = plan.cfg
    return (
        f"fine-tuning '{parent}' on {len(plan.tune)} slice(s), {len(plan.val)} to validate, "
        f"{len(plan.held)} held out; lr {cfg.lr:g}, up to {cfg.epochs} epochs"
        + (f", {cfg.time_limit:g} min" if cfg.time_limit else "")
        + (", encoder frozen" if cfg.freeze_encoder else "")
    )


def _write_report(report_dir: Path, history: list, scores: dict, cfg, args) -> None:
    """History, scores, settings and the effective options of one fine-tuning run (its curves are
    drawn while it trains)."""
    from ..report import write_csv, write_json

    write_csv(report_dir / "history.csv", history)
    write_json(report_dir / "scores.json", scores)
    write_json(report_dir / "config.json", asdict(cfg))
    write_json(report_dir / "options.json", effective_options(args))
