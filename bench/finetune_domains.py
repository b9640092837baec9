"""Fine-tuning across domains: a model trained on the PAULow filaments, fine-tuned with a few NIH3T3
nuclei images, against a model trained from scratch on the same few images with the same budget.

    python bench/finetune_domains.py [--budget 10] [--finetune-budget 5] [--few 3] [--seed 0]
                                     [--width W] [--patch 128] [--device cpu|cuda]
                                     [--out bench/results/finetune_domains]

(a) parent: the method (PAULow attention U-Net + dynamic loss) trained on the `paulow_filaments`
    train split for `--budget` minutes, as `bench/quality.py` trains its rows.
(b) fine-tuned: the first `--few` images of the `nih3t3_nuclei` train split (natural order), split
    like `paulow finetune` splits its images (`kfold(few, 1, seed, val_fraction=0.25)`: of 3 images,
    2 are tuned on and 1 selects the weights); settings from
    `paulow.finetuning.finetune_config` (the parent's, learning rate x 0.1, at most 20 epochs)
    with `--finetune-budget` minutes; `paulow.training.loop.fit_fold` starting from the parent's weights.
(c) scratch: a freshly initialised network with the parent's settings (learning rate, epoch cap),
    the same tune/selection images and the same `--finetune-budget`.
Reported: pooled Dice, IoU and object F1 on the `nih3t3_nuclei` test split (6 images) for all three,
and on the `paulow_filaments` test split (4 images) to show what fine-tuning forgot.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from datasets import REPO, load_dataset, slice_names
from quality import (
    bench_config,
    command_line,
    describe_machine,
    fmt_minutes,
    fmt_score,
    guarded_run,
    machine_info,
    predict_masks,
    score_test_pages,
    train_network,
)

from paulow.config import TrainConfig
from paulow.errors import UsageError
from paulow.slices import Slice

PARENT_DATA, TARGET_DATA = "paulow_filaments", "nih3t3_nuclei"
RESULTS_NAME = "finetune_domains"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budget", type=float, default=10.0, help="parent training minutes (default 10)")
    parser.add_argument(
        "--finetune-budget",
        type=float,
        default=5.0,
        help="minutes for fine-tuning, and for training from scratch (default 5)",
    )
    parser.add_argument("--few", type=int, default=3, help="nih3t3 train images used (default 3)")
    parser.add_argument("--width", type=int, default=None, help="network width (default: the preset's)")
    parser.add_argument("--patch", type=int, default=None, help="patch and tile side (default 128)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data-root", type=Path, default=None, help="default: ../shared/data beside the repo"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / RESULTS_NAME)
    return parser.parse_args(argv)


# ---------------------------------------------------------------- configurations and splits
def parent_config(args: argparse.Namespace, device: str) -> TrainConfig:
    """The method's settings for the parent (same construction as bench/quality.py's rows)."""
    fields = {k: v for k, v in (("width", args.width), ("patch", args.patch)) if v is not None}
    fields.update(
        arch="paulow_attention_unet", loss="dynamic", overlap=fields.get("patch", TrainConfig.patch) // 2
    )
    return bench_config(device, args.budget, args.seed, overrides=fields)


def parent_meta(cfg: TrainConfig, in_channels: int) -> dict:
    """The parts of a model file's metadata that `finetune_config` reads."""
    return {
        "config": asdict(cfg),
        "arch": cfg.arch,
        "arch_args": cfg.arch_args(in_channels),
        "classes": cfg.classes,
    }


def finetune_settings(parent: TrainConfig, in_channels: int, minutes: float, device: str) -> TrainConfig:
    """`paulow finetune`'s settings for this parent, with a `minutes` budget."""
    from paulow.finetuning import finetune_config

    return finetune_config(
        parent_meta(parent, in_channels), {"time_limit": minutes, "seed": parent.seed}, device
    )


def few_split(slices: Sequence[Slice], few: int, seed: int) -> tuple[list[Slice], list[Slice]]:
    """The first `few` slices, split into (tune, held out) as `paulow finetune` does."""
    from paulow.finetuning import FINETUNE_DEFAULTS
    from paulow.splits import kfold

    if not 2 <= few <= len(slices):
        raise UsageError(
            f"--few {few}: fine-tuning needs 2 to {len(slices)} images (one or more to "
            "tune on, one to select the weights)"
        )
    ((tune, held),) = kfold(list(slices[:few]), 1, seed, val_fraction=FINETUNE_DEFAULTS["holdout"])
    return tune, held


# ---------------------------------------------------------------- training and scoring
def fit_within(model, tune: Sequence[Slice], held: Sequence[Slice], cfg: TrainConfig, device: str):
    """`fit_fold` with `cfg.time_limit` minutes from now; the model ends with its best weights."""
    from paulow.training.loop import fit_fold

    deadline = time.monotonic() + cfg.time_limit * 60 if cfg.time_limit else float("inf")
    start = time.monotonic()
    result = fit_fold(model, tune, held, cfg, device, deadline)
    return model.eval(), result, time.monotonic() - start


def scores_on(model, slices: Sequence[Slice], cfg: TrainConfig, device: str) -> dict:
    """Pooled test Dice, IoU, object F1 (and the rest) of whole-slice predictions."""
    return score_test_pages(slices, predict_masks(model, slices, cfg, device))


@dataclass
class Domains:
    """The parent's train/test slices and the target's tune/selection/test slices."""

    parent_train: list[Slice]
    parent_test: list[Slice]
    tune: list[Slice]
    held: list[Slice]
    target_test: list[Slice]


def load_domains(args: argparse.Namespace) -> Domains:
    fil_train, fil_test = load_dataset(PARENT_DATA, args.data_root)
    nih_train, nih_test = load_dataset(TARGET_DATA, args.data_root)
    tune, held = few_split(nih_train, args.few, args.seed)
    return Domains(fil_train, fil_test, tune, held, nih_test)


def scored_row(
    name: str, trained_on: str, model, fold, seconds: float, cfg: TrainConfig, data: Domains, device: str
) -> dict:
    """One table row: how the model was trained and its scores on both test splits."""
    return {
        "model": name,
        "trained_on": trained_on,
        "budget_min": cfg.time_limit,
        "lr": cfg.lr,
        "epochs_run": len(fold.history),
        "best_epoch": fold.best_epoch,
        "stopped": fold.stopped,
        "val_dice": fold.val_dice,
        "train_seconds": seconds,
        "config": asdict(cfg),
        "nih3t3": scores_on(model, data.target_test, cfg, device),
        "filaments": scores_on(model, data.parent_test, cfg, device),
    }


def _echo(message: str) -> None:
    print(f"  {message}", flush=True)


def parent_stage(data: Domains, cfg: TrainConfig, device: str):
    """(a) Train the parent on the filaments; return (model, row)."""
    print(f"(a) parent: {PARENT_DATA} train split, {cfg.time_limit:g} min", flush=True)
    parent, trained = train_network(data.parent_train, cfg, device, _echo)
    best = trained.folds[trained.best_fold]
    source = f"{PARENT_DATA} train split ({len(best.train_files)} + {len(best.val_files)} to select)"
    return parent, scored_row("parent", source, parent, best, trained.seconds, cfg, data, device)


def finetune_stage(parent, parent_cfg: TrainConfig, data: Domains, minutes: float, device: str) -> dict:
    """(b) Fine-tune a copy of the parent as `paulow finetune` does; return its row."""
    cfg = finetune_settings(parent_cfg, 1, minutes, device)
    print(
        f"(b) fine-tune on {', '.join(slice_names(data.tune))} (weights chosen on "
        f"{', '.join(slice_names(data.held))}), lr {cfg.lr:g}, {cfg.time_limit:g} min",
        flush=True,
    )
    tuned, fold, seconds = fit_within(copy.deepcopy(parent), data.tune, data.held, cfg, device)
    source = f"parent + {len(data.tune)} {TARGET_DATA} images (+ {len(data.held)} to select)"
    return scored_row("fine-tuned", source, tuned, fold, seconds, cfg, data, device)


def scratch_stage(parent_cfg: TrainConfig, data: Domains, minutes: float, device: str) -> dict:
    """(c) Train a fresh network with the parent's settings on the same few images; return its row."""
    from paulow.training.network import build_network

    cfg = replace(parent_cfg, time_limit=minutes)
    print(f"(c) from scratch on the same images, lr {cfg.lr:g}, {cfg.time_limit:g} min", flush=True)
    model = build_network(cfg, 1, device, cfg.seed)
    model, fold, seconds = fit_within(model, data.tune, data.held, cfg, device)
    source = f"{len(data.tune)} {TARGET_DATA} images (+ {len(data.held)} to select)"
    return scored_row("from scratch", source, model, fold, seconds, cfg, data, device)


def run(args: argparse.Namespace) -> dict:
    """Train parent, fine-tuned and scratch models; return the results dict."""
    from paulow.api import pick_device, use_threads

    device = pick_device(args.device)
    use_threads(device)  # the CPU threads, set once here
    data = load_domains(args)
    results = {
        "command": command_line(),
        "machine": machine_info(device),
        "tune": slice_names(data.tune),
        "held_out": slice_names(data.held),
        "rows": [],
    }
    print(f"machine: {describe_machine(results['machine'])}\ncommand: {results['command']}", flush=True)
    cfg = parent_config(args, device)
    parent, row = parent_stage(data, cfg, device)
    results["rows"] += [
        row,
        finetune_stage(parent, cfg, data, args.finetune_budget, device),
        scratch_stage(cfg, data, args.finetune_budget, device),
    ]
    return results


# ---------------------------------------------------------------- output
def markdown(results: dict) -> str:
    """Machine, command, which images, and the table."""
    lines = [
        "## Fine-tuning from filaments to nuclei",
        "",
        f"- Machine: {describe_machine(results['machine'])}",
        f"- Command: `{results['command']}`",
        f"- Fine-tuning images ({TARGET_DATA} train split): tuned on {', '.join(results['tune'])}; "
        f"weights selected on {', '.join(results['held_out'])}",
        "",
        "| model | trained on | budget | epochs run | nih3t3 test Dice | IoU | object F1 | "
        "filaments test Dice | train time |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results["rows"]:
        cells = [
            r["model"],
            r["trained_on"],
            f"{r['budget_min']:g} min",
            str(r["epochs_run"]),
            *(fmt_score(r["nih3t3"][k]) for k in ("test_dice", "test_iou", "test_object_f1")),
            fmt_score(r["filaments"]["test_dice"]),
            fmt_minutes(r["train_seconds"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def save_results(out: Path, results: dict) -> Path:
    """`<out>/finetune_domains.json` and `.md`, never overwriting (`_2`, `_3`, ... if taken)."""
    from paulow.io import atomic_write_path, unique_path
    from paulow.report import write_json

    path = unique_path(out / f"{RESULTS_NAME}.json")
    write_json(path, results)
    with atomic_write_path(path.with_suffix(".md")) as tmp:
        tmp.write_text(markdown(results), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results, code = guarded_run(run, args)
    if results is None:
        return code
    path = save_results(args.out, results)
    print()
    print(markdown(results))
    print(f"wrote {path} and {path.with_suffix('.md').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
