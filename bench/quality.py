"""Segmentation quality on the fixed test splits of `../shared/data`: a global Otsu threshold and four
network + loss combinations, each trained under the same wall-clock budget on this machine.

    python bench/quality.py [--datasets isbi2012_em_cells paulow_filaments nih3t3_nuclei drosophila_vnc_sstem]
                            [--rows otsu,unet_bce,unet_nobn_bce,att_bce,paulow_bce,paulow_dynamic,
                                    unet_ce_dice,att_ce_dice[,extra]]
                            [--budget 10] [--width W] [--patch 128] [--epochs N] [--device cpu|cuda]
                            [--seed 0] [--extra arch=...,loss=...,width=...] [--extra-name NAME]
                            [--out bench/results/quality] [--resume]

Rows (`--rows`):
- `otsu`: one global threshold, `skimage.filters.threshold_otsu` of the pooled train pixels of the
  normalised images (the input the networks see; `--otsu-input raw` for the file's values); polarity
  (foreground brighter or darker) chosen by the better pooled train Dice; applied to each test page.
- `unet_bce`: U-Net (Ronneberger layout) with batch norm + BCE; `unet_nobn_bce`: the same without
  batch norm, as Ronneberger et al. published it. `att_bce`: Attention U-Net (Oktay et al.) + BCE.
  `paulow_bce`: the PAULow attention U-Net + BCE. `paulow_dynamic`: the method, PAULow attention U-Net
  + dynamic loss. `extra`: any `TrainConfig` fields given as `--extra key=value,...`.
- Multi-class datasets (`drosophila_vnc_sstem`, 5 classes; not in the default `--datasets`): softmax
  networks with the dataset's class count and names; default rows `unet_ce_dice` (U-Net + CE + Dice),
  `att_ce_dice` (Attention U-Net + CE + Dice) and `paulow_dynamic` (the method), no Otsu. Test Dice and
  IoU are the means over the foreground classes (class 0 left out), pooled over the test pages; the
  Markdown adds a table with each class's Dice and the mIoU over all classes.
Networks train through `paulow.training.cross_validation.cross_validate` with one train/validation split of the train
pages (validation: 20 % of them, for early stopping and model selection by whole-image Dice), no test
share (the test split is fixed), `--budget` minutes each, and the settings of the device's preset
(cpu: width 16, 192 patches an epoch, batch 8, AdamW lr 2e-3, at most 40 epochs). Test pages are
predicted with `paulow.infer.predict_slice` (the default tile of `use_model.py`, overlap 0.5) and thresholded
at the probability threshold tuned on the validation pages (as `train_model.py` stores it);
Dice and IoU pool pixel counts over the test pages, object F1 pools matches (IoU > 0.5) of
8-connected components; for thin structures the table adds F1 within 1 px and clDice
(`paulow.metrics.thin_structure_scores`). The JSON and Markdown in `--out` are rewritten after every row, so
`--resume` continues an interrupted run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from datasets import ALL_DATASETS, CLASS_NAMES, DATASETS, REPO, classes_of, load_dataset, slice_names
from machine import cpu_model

from paulow.config import TrainConfig
from paulow.errors import PaulowError, UsageError
from paulow.slices import Slice

Echo = Callable[[str], None]
RESULTS_NAME = "quality"
# Settings that must match for --resume to add rows to an existing results file.
SETTING_KEYS = (
    "budget",
    "width",
    "patch",
    "overlap",
    "epochs",
    "seed",
    "device",
    "preset",
    "otsu_input",
    "extra",
    "extra_name",
)


@dataclass(frozen=True)
class RowSpec:
    """One row of the table: a name for --rows, a label, and its TrainConfig fields (none: Otsu)."""

    name: str
    label: str
    overrides: dict = field(default_factory=dict)


ROWS = (
    RowSpec("otsu", "Otsu threshold (global)"),
    RowSpec("unet_bce", "U-Net (batch norm) + BCE", {"arch": "unet", "loss": "bce"}),
    RowSpec(
        "unet_nobn_bce",
        "U-Net (no batch norm, as published) + BCE",
        {"arch": "unet", "arch_extra": {"batch_norm": False}, "loss": "bce"},
    ),
    RowSpec("att_bce", "Attention U-Net + BCE", {"arch": "attention_unet", "loss": "bce"}),
    RowSpec("paulow_bce", "PAULow attention U-Net + BCE", {"arch": "paulow_attention_unet", "loss": "bce"}),
    RowSpec(
        "paulow_dynamic",
        "PAULow attention U-Net + dynamic loss (the method)",
        {"arch": "paulow_attention_unet", "loss": "dynamic"},
    ),
    RowSpec("unet_ce_dice", "U-Net (batch norm) + CE + Dice", {"arch": "unet", "loss": "ce_dice"}),
    RowSpec("att_ce_dice", "Attention U-Net + CE + Dice", {"arch": "attention_unet", "loss": "ce_dice"}),
)
# the rows run when --rows is not given: binary datasets, and multi-class ones (softmax, scored per class;
# Otsu has no multi-class form)
DEFAULT_ROWS = ("otsu", "unet_bce", "unet_nobn_bce", "att_bce", "paulow_bce", "paulow_dynamic")
DEFAULT_CLASS_ROWS = ("unet_ce_dice", "att_ce_dice", "paulow_dynamic")


# ---------------------------------------------------------------- Otsu baseline
@dataclass
class OtsuFit:
    """A global threshold and its polarity (`bright`: foreground is above the threshold)."""

    threshold: float
    bright: bool
    train_dice: float


def apply_otsu(fit: OtsuFit, image: np.ndarray) -> np.ndarray:
    """`uint8` 0/1 mask: `image > threshold`, or its complement for a dark foreground."""
    above = np.asarray(image) > fit.threshold
    return (above if fit.bright else ~above).astype(np.uint8)


def pooled_dice(preds: Sequence[np.ndarray], truths: Sequence[np.ndarray]) -> float:
    """Dice of the pixel counts summed over all pairs."""
    from paulow.metrics import pooled_scores

    return float(pooled_scores(list(zip(preds, truths)))["dice"])


def fit_otsu(images: Sequence[np.ndarray], masks: Sequence[np.ndarray]) -> OtsuFit:
    """Otsu threshold of the pooled pixels of `images`; the polarity with the better pooled Dice
    against `masks` (brighter on a tie)."""
    from skimage.filters import threshold_otsu

    threshold = float(threshold_otsu(np.concatenate([np.ravel(i) for i in images])))
    dice = {}
    for bright in (True, False):
        candidate = OtsuFit(threshold, bright, 0.0)
        dice[bright] = pooled_dice([apply_otsu(candidate, i) for i in images], masks)
    bright = dice[True] >= dice[False]
    return OtsuFit(threshold, bright, dice[bright])


def otsu_input(s: Slice, kind: str) -> np.ndarray:
    """The first channel of a slice: normalised (what the networks see) or raw (file values)."""
    return s.info["raw"] if kind == "raw" else s.image[0]


# ---------------------------------------------------------------- networks
def bench_config(
    device: str, budget: float, seed: int, preset: str | None = None, overrides: dict | None = None
) -> TrainConfig:
    """The device preset's settings, one train/validation split, no test share, a time budget.

    `overrides` are TrainConfig fields applied last (a None value is kept, e.g. per_epoch=None).
    """
    from paulow.config import resolve_config

    base = {
        "folds": 1,
        "test_fraction": 0.0,
        "time_limit": budget,
        "seed": seed,
        "device": device,
        "ensemble": False,
        "infer_overlap": 0.5,
    }
    cfg = resolve_config(base, preset, device)
    return replace(cfg, **{"boundary_target": None, **(overrides or {})})  # the published binary target


def train_network(train: Sequence[Slice], cfg: TrainConfig, device: str, echo: Echo = print):
    """Train through `cross_validate`; return (the selected model in eval mode, TrainResult)."""
    from paulow.training.cross_validation import cross_validate
    from paulow.training.network import build_network

    result = cross_validate(train, cfg, device, report_dir=None, echo=echo)
    model = build_network(cfg, int(train[0].image.shape[0]), device, cfg.seed)
    model.load_state_dict(result.folds[result.best_fold].state_dict)
    return model.eval(), result


def predict_masks(
    model, slices: Sequence[Slice], cfg: TrainConfig, device: str, threshold: float | None = None
) -> list[np.ndarray]:
    """0/1 masks of whole slices: the default sliding window of `use_model.py`, then the threshold
    (the one tuned on validation when given, else the config's)."""
    from paulow.infer import predict_slice, suggest_tile
    from paulow.postprocess import to_mask

    threshold = cfg.threshold if threshold is None else threshold
    return [
        to_mask(
            predict_slice(
                model,
                s.image,
                tile=suggest_tile(cfg.patch, device),
                overlap=cfg.infer_overlap,
                batch_size=max(cfg.batch_size, 4),
                device=device,
            ),
            threshold,
        )
        for s in slices
    ]


def score_test_pages(
    slices: Sequence[Slice], preds: Sequence[np.ndarray], names: Sequence[str] | None = None
) -> dict:
    """Pooled test Dice, IoU and object F1, plus every pooled score and the per-page rows. With class
    `names` (K >= 2): Dice and IoU are the means over the foreground classes, `test_dice_per_class` /
    `test_iou_per_class` map each class name to its pooled score, and there is no object F1."""
    from paulow.api import score_masks

    classes = len(names) if names else 1
    scored = score_masks(((s.source.name, s.page, p, s.mask) for s, p in zip(slices, preds)), classes=classes)
    pooled = scored.pooled
    if classes > 1:
        return {
            "test_dice": pooled["mean_dice"],
            "test_iou": pooled["mean_iou"],
            "test_object_f1": None,
            "test_miou": pooled["miou"],
            "test_mpa": pooled["mpa"],
            "test_dice_per_class": {n: pooled[f"dice_{c}"] for c, n in enumerate(names)},
            "test_iou_per_class": {n: pooled[f"iou_{c}"] for c, n in enumerate(names)},
            "test_pooled": pooled,
            "test_pages": scored.rows,
        }
    return {
        "test_dice": pooled["dice"],
        "test_iou": pooled["iou"],
        "test_object_f1": pooled["object_f1"],
        "test_pooled": pooled,
        "test_pages": scored.rows,
    }


def otsu_row(train: Sequence[Slice], test: Sequence[Slice], kind: str) -> dict:
    """Fit the Otsu baseline on the train pages and score it on the test pages."""
    start = time.monotonic()
    fit = fit_otsu([otsu_input(s, kind) for s in train], [s.mask for s in train])
    seconds = time.monotonic() - start
    preds = [apply_otsu(fit, otsu_input(s, kind)) for s in test]
    return {
        "threshold": fit.threshold,
        "polarity": "brighter" if fit.bright else "darker",
        "train_dice": fit.train_dice,
        "otsu_input": kind,
        "train_seconds": seconds,
        "budget_min": None,
        "epochs_run": None,
        **score_test_pages(test, preds),
    }


def network_row(
    train: Sequence[Slice], test: Sequence[Slice], cfg: TrainConfig, device: str, echo: Echo
) -> dict:
    """Train one configuration under its budget and score it on the test pages."""
    model, result = train_network(train, cfg, device, echo)
    best = result.folds[result.best_fold]
    start = time.monotonic()
    preds = predict_masks(model, test, cfg, device, best.threshold)
    names = cfg.names() if cfg.classes > 1 else None
    return {
        "arch": cfg.arch,
        "loss": cfg.loss,
        "budget_min": cfg.time_limit,
        "threshold": best.threshold,
        "epochs_run": len(best.history),
        "best_epoch": best.best_epoch,
        "stopped": best.stopped,
        "val_dice": best.val_dice,
        "train_seconds": result.seconds,
        "predict_seconds": time.monotonic() - start,
        "train_split": best.train_files,
        "val_split": best.val_files,
        "config": asdict(cfg),
        **score_test_pages(test, preds, names),
    }


# ---------------------------------------------------------------- --extra
_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _convert(key: str, text: str, current: Any) -> Any:
    if text.lower() == "none":
        return None
    try:
        if isinstance(current, bool):
            return _BOOLEANS[text.lower()]
        if isinstance(current, (int, float, str)):
            return type(current)(text)
    except (KeyError, ValueError):
        pass
    raise UsageError(f"--extra {key}={text}: not a valid value for {key} (default {current!r})")


def parse_overrides(text: str) -> dict:
    """`arch=unet,width=24,per_epoch=none` -> TrainConfig fields, typed like their defaults."""
    defaults, out = TrainConfig(), {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in TrainConfig.__dataclass_fields__ or key == "loss_args":
            raise UsageError(
                f"--extra '{part}': use key=value with a TrainConfig field, e.g. "
                "arch=paulow_attention_unet,loss=dynamic,width=24"
            )
        out[key] = _convert(key, value.strip(), getattr(defaults, key))
    if not out:
        raise UsageError("--extra is empty: give key=value pairs, e.g. loss=dynamic,width=24")
    return out


def extra_spec(text: str, name: str | None) -> RowSpec:
    """The `extra` row from --extra (and its label from --extra-name)."""
    overrides = parse_overrides(text)
    label = name or "extra: " + ", ".join(f"{k}={v}" for k, v in overrides.items())
    return RowSpec("extra", label, overrides)


# ---------------------------------------------------------------- arguments and selection
def _names(values: Sequence[str] | None) -> list[str]:
    return [n for v in values or [] for n in v.split(",") if n]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=list(DATASETS),
        help="datasets (space or comma separated; default: the three binary ones; "
        "drosophila_vnc_sstem: 5 classes, scored per class)",
    )
    parser.add_argument(
        "--rows",
        nargs="+",
        default=None,
        help=f"rows: {', '.join(r.name for r in ROWS)}, extra (default: all; extra if --extra is given)",
    )
    parser.add_argument("--budget", type=float, default=10.0, help="training minutes per model (default 10)")
    parser.add_argument("--width", type=int, default=None, help="network width (default: the preset's)")
    parser.add_argument("--patch", type=int, default=None, help="patch and tile side (default 128)")
    parser.add_argument("--overlap", type=int, default=None, help="patch grid overlap (default patch / 2)")
    parser.add_argument("--epochs", type=int, default=None, help="epoch cap (default: the preset's)")
    parser.add_argument("--preset", default=None, help="cpu, gpu or paper (default: by device)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--otsu-input", choices=("normalised", "raw"), default="normalised")
    parser.add_argument(
        "--extra", default=None, help="an extra row: TrainConfig key=value pairs, comma separated"
    )
    parser.add_argument("--extra-name", default=None, help="the extra row's label in the table")
    parser.add_argument(
        "--extra-loss-args",
        type=json.loads,
        default=None,
        help='loss settings of the extra row as JSON, e.g. \'{"alpha": 0.3, "beta": 0.7}\'',
    )
    parser.add_argument(
        "--data-root", type=Path, default=None, help="default: ../shared/data beside the repo"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "quality")
    parser.add_argument(
        "--resume", action="store_true", help="keep the rows already in --out and run only the missing ones"
    )
    return parser.parse_args(argv)


def selected_rows(args: argparse.Namespace) -> list[RowSpec]:
    """The rows asked for, in table order (raises UsageError for an unknown name)."""
    specs = list(ROWS) + ([extra_spec(args.extra, args.extra_name)] if args.extra else [])
    if args.extra and args.extra_loss_args:
        specs[-1].overrides["loss_args"] = args.extra_loss_args
    known = {s.name: s for s in specs}
    wanted = _names(args.rows) or [*DEFAULT_ROWS, *DEFAULT_CLASS_ROWS] + (["extra"] if args.extra else [])
    unknown = [n for n in wanted if n not in known]
    if unknown:
        hint = " (give --extra for the extra row)" if "extra" in unknown else ""
        raise UsageError(f"unknown row(s) {', '.join(unknown)}: choose from {', '.join(known)}{hint}")
    return [s for s in specs if s.name in wanted]


def selected_datasets(args: argparse.Namespace) -> list[str]:
    """The datasets asked for (raises UsageError for an unknown name)."""
    wanted = _names(args.datasets)
    unknown = [n for n in wanted if n not in ALL_DATASETS]
    if unknown:
        raise UsageError(f"unknown dataset(s) {', '.join(unknown)}: choose from {', '.join(ALL_DATASETS)}")
    return wanted


def rows_for(dataset: str, specs: Sequence[RowSpec], explicit: bool) -> list[RowSpec]:
    """The rows of one dataset: without --rows, the binary or the multi-class default set; Otsu never
    for a multi-class dataset."""
    multi = classes_of(dataset) > 1
    if not explicit:
        default = DEFAULT_CLASS_ROWS if multi else DEFAULT_ROWS
        specs = [s for s in specs if s.name in default or s.name == "extra"]
    return [s for s in specs if not (multi and s.name == "otsu")]


def row_config(
    spec: RowSpec, args: argparse.Namespace, device: str, dataset: str | None = None
) -> TrainConfig:
    """The TrainConfig of one network row: preset, CLI sizes, the dataset's classes, then the row's
    own fields."""
    fields = {
        k: v
        for k, v in (
            ("width", args.width),
            ("patch", args.patch),
            ("epochs", args.epochs),
            ("overlap", args.overlap),
        )
        if v is not None
    }
    if dataset in CLASS_NAMES:
        fields.update(classes=len(CLASS_NAMES[dataset]), class_names=list(CLASS_NAMES[dataset]))
    fields.update(spec.overrides)
    fields.setdefault("overlap", fields.get("patch", TrainConfig.patch) // 2)
    return bench_config(device, args.budget, args.seed, args.preset, fields)


# ---------------------------------------------------------------- machine and results file
def machine_info(device: str) -> dict:
    """CPU model, cores, torch version and threads, device (with the GPU's name on CUDA)."""
    import torch

    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": device,
        "python": platform.python_version(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def describe_machine(info: dict) -> str:
    gpu = f", GPU {info['gpu']}" if info.get("gpu") else ""
    policy = (
        f", OMP_WAIT_POLICY={info['omp_wait_policy']}"
        if info.get("omp_wait_policy", "default") != "default"
        else ""
    )
    return (
        f"{info['cpu']}, {info['cores']} cores, torch {info['torch']} ({info['threads']} threads"
        f"{policy}), device {info['device']}{gpu}"
    )


def command_line() -> str:
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def settings_of(args: argparse.Namespace, device: str) -> dict:
    return {
        "budget": args.budget,
        "width": args.width,
        "patch": args.patch,
        "overlap": args.overlap,
        "epochs": args.epochs,
        "seed": args.seed,
        "device": device,
        "preset": args.preset,
        "otsu_input": args.otsu_input,
        "extra": args.extra,
        "extra_name": args.extra_name,
    }


def start_results(path: Path, settings: dict, resume: bool) -> dict:
    """A fresh results dict, or the one in `path` when resuming with the same settings."""
    import json

    if not path.exists():
        return {"settings": settings, "runs": [], "rows": []}
    if not resume:
        raise UsageError(
            f"'{path}' already holds results: add --resume to continue that run, or give another --out"
        )
    results = json.loads(path.read_text())
    old = results.get("settings", {})
    changed = [k for k in SETTING_KEYS if old.get(k) != settings.get(k)]
    if changed:
        was = ", ".join(f"{k}={old.get(k)!r} (now {settings.get(k)!r})" for k in changed)
        raise UsageError(
            f"'{path}' was made with other settings: {was} - use the same options to resume, or another --out"
        )
    return results


def has_row(results: dict, dataset: str, row: str) -> bool:
    return any(r["dataset"] == dataset and r["row"] == row for r in results["rows"])


# ---------------------------------------------------------------- Markdown
def fmt_score(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def fmt_minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


def _row_order(row: dict) -> tuple[int, int]:
    names = [r.name for r in ROWS] + ["extra"]
    dataset = ALL_DATASETS.index(row["dataset"]) if row["dataset"] in ALL_DATASETS else len(ALL_DATASETS)
    return dataset, names.index(row["row"]) if row["row"] in names else len(names)


def markdown_table(rows: Sequence[dict]) -> str:
    """dataset | method | budget | epochs run | test Dice | IoU | object F1 | F1 within 1 px | clDice |
    train time (the last two are "-" for rows scored before they existed)."""
    lines = [
        "| dataset | method | budget | epochs run | test Dice | IoU | object F1 | F1 ≤ 1 px | clDice "
        "| train time |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in sorted((r for r in rows if not r.get("test_dice_per_class")), key=_row_order):
        budget = "-" if r.get("budget_min") is None else f"{r['budget_min']:g} min"
        epochs = "-" if r.get("epochs_run") is None else str(r["epochs_run"])
        cells = [
            r["dataset"],
            r["method"],
            budget,
            epochs,
            *(fmt_score(r[k]) for k in ("test_dice", "test_iou", "test_object_f1")),
            *(fmt_score(r.get("test_pooled", {}).get(k)) for k in ("tolerant_f1", "cldice")),
            fmt_minutes(r["train_seconds"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def class_table(rows: Sequence[dict]) -> str:
    """Multi-class rows, one table per dataset: method | budget | epochs run | mean Dice over the
    foreground classes | mIoU | Dice of each class | train time."""
    tables = []
    for dataset in dict.fromkeys(
        r["dataset"] for r in sorted(rows, key=_row_order) if r.get("test_dice_per_class")
    ):
        mine = [
            r
            for r in sorted(rows, key=_row_order)
            if r["dataset"] == dataset and r.get("test_dice_per_class")
        ]
        names = list(mine[0]["test_dice_per_class"])
        lines = [
            f"{dataset} (Dice per class; the mean leaves out class 0, {names[0]})",
            "",
            "| method | budget | epochs run | mean Dice (foreground) | mIoU | "
            + " | ".join(names)
            + " | train time |",
            "| --- | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in names) + " | ---: |",
        ]
        for r in mine:
            cells = [
                r["method"],
                f"{r['budget_min']:g} min",
                str(r["epochs_run"]),
                fmt_score(r["test_dice"]),
                fmt_score(r.get("test_miou")),
                *(fmt_score(r["test_dice_per_class"][n]) for n in names),
                fmt_minutes(r["train_seconds"]),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        tables.append("\n".join(lines))
    return "\n\n".join(tables)


def settings_note(rows: Sequence[dict]) -> str:
    """How the networks were trained and evaluated, and how Otsu was fitted."""
    notes = []
    cfg = next((r["config"] for r in rows if r.get("config")), None)
    if cfg:
        per_epoch = f"{cfg['per_epoch']} patches an epoch" if cfg["per_epoch"] else "all patches each epoch"
        notes.append(
            f"Networks: width {cfg['width']}, depth {cfg['depth']}, patch {cfg['patch']} (grid "
            f"overlap {cfg['overlap']}), {per_epoch}, batch {cfg['batch_size']}, {cfg['optimizer']} "
            f"lr {cfg['lr']:g}, at most {cfg['epochs']} epochs, patience {cfg['patience']}, seed "
            f"{cfg['seed']}; one train/validation split of the train pages (validation Dice "
            f"selects the weights); test pages predicted whole (default tile, overlap "
            f"{cfg['infer_overlap']:g}), threshold tuned on the validation pages."
        )
    otsu = next((r for r in rows if r["row"] == "otsu"), None)
    if otsu:
        notes.append(
            f"Otsu: one threshold on the pooled train pixels of the {otsu['otsu_input']} "
            "images, polarity chosen by train Dice."
        )
    for r in rows:
        if r["row"] == "extra":
            fields = ", ".join(f"{k}={v}" for k, v in r["overrides"].items())
            notes.append(f"The extra row ({r['dataset']}, {r['method']}) sets {fields}.")
    notes.append(
        "Dice and IoU pool pixel counts over the test pages; object F1 matches 8-connected "
        "components at IoU > 0.5, pooled over the test pages. For thin structures: F1 ≤ 1 px "
        "counts a pixel as found when it lies within 1 px of the other mask (relaxed "
        "precision/recall), clDice compares each mask's skeleton with the other mask."
    )
    return " ".join(notes)


def markdown(results: dict) -> str:
    """The whole Markdown report: machine, command(s), settings, table."""
    runs = results["runs"]
    lines = ["## Segmentation quality on the fixed test splits", ""]
    machines = dict.fromkeys(describe_machine(r["machine"]) for r in runs)
    lines += [f"- Machine: {m}" for m in machines]
    lines += [f"- Command: `{r['command']}`" for r in runs]
    lines += ["", settings_note(results["rows"])]
    if any(not r.get("test_dice_per_class") for r in results["rows"]) or not results["rows"]:
        lines += ["", markdown_table(results["rows"])]
    if any(r.get("test_dice_per_class") for r in results["rows"]):
        lines += ["", class_table(results["rows"])]
    return "\n".join(lines) + "\n"


def save_results(out: Path, results: dict) -> Path:
    """Write `<out>/quality.json` and `quality.md` (atomically); return the JSON path."""
    from paulow.io import atomic_write_path
    from paulow.report import write_json

    path = write_json(out / f"{RESULTS_NAME}.json", results)
    with atomic_write_path(out / f"{RESULTS_NAME}.md") as tmp:
        tmp.write_text(markdown(results), encoding="utf-8")
    return path


# ---------------------------------------------------------------- main
def show_training_log() -> None:
    """Print paulow's per-epoch log lines (loss, validation Dice, time left) with a timestamp."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("  %(asctime)s %(message)s", datefmt="%H:%M:%S"))
    logger = logging.getLogger("paulow")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def run_row(
    spec: RowSpec,
    dataset: str,
    train: Sequence[Slice],
    test: Sequence[Slice],
    args: argparse.Namespace,
    device: str,
) -> dict:
    """One table row as a plain dict."""
    head = {
        "dataset": dataset,
        "row": spec.name,
        "method": spec.label,
        "overrides": spec.overrides,
        "train_pages": slice_names(train),
        "test_page_names": slice_names(test),
    }
    if spec.name == "otsu":
        return {**head, **otsu_row(train, test, args.otsu_input)}
    cfg = row_config(spec, args, device, dataset)
    return {**head, **network_row(train, test, cfg, device, lambda m: print(f"  {m}", flush=True))}


def run_dataset(
    dataset: str, specs: Sequence[RowSpec], results: dict, args: argparse.Namespace, device: str
) -> None:
    """Every missing row of one dataset, saving the results after each."""
    specs = rows_for(dataset, specs, bool(_names(args.rows)))
    todo = [s for s in specs if not has_row(results, dataset, s.name)]
    for s in specs:
        if s not in todo:
            print(f"{dataset} / {s.name}: already in the results, skipped (--resume)")
    if not todo:
        return
    train, test = load_dataset(dataset, args.data_root)
    for spec in todo:
        print(f"{dataset} / {spec.name}: {spec.label} ...", flush=True)
        row = run_row(spec, dataset, train, test, args, device)
        results["rows"].append(row)
        save_results(args.out, results)
        per_class = row.get("test_dice_per_class")
        detail = (
            ", ".join(f"{n} {d:.4f}" for n, d in per_class.items())
            if per_class
            else f"object F1 {row['test_object_f1']:.4f}"
        )
        print(
            f"{dataset} / {spec.name}: test Dice {row['test_dice']:.4f}, IoU {row['test_iou']:.4f}"
            f"{' (means over foreground classes)' if per_class else ''}, {detail} "
            f"({fmt_minutes(row['train_seconds'])} training)",
            flush=True,
        )


def run(args: argparse.Namespace) -> dict:
    """Run the benchmark; return the results dict (also in --out)."""
    from paulow.api import pick_device, use_threads

    specs, datasets = selected_rows(args), selected_datasets(args)
    device = pick_device(args.device)
    use_threads(device)  # the CPU threads, set once here
    results = start_results(args.out / f"{RESULTS_NAME}.json", settings_of(args, device), args.resume)
    if all(
        has_row(results, d, s.name) for d in datasets for s in rows_for(d, specs, bool(_names(args.rows)))
    ):
        print("every row asked for is already in the results: nothing to run")
        return results
    results["runs"].append(
        {
            "command": command_line(),
            "machine": machine_info(device),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
    )
    print(f"machine: {describe_machine(results['runs'][-1]['machine'])}")
    print(f"command: {results['runs'][-1]['command']}", flush=True)
    for dataset in datasets:
        run_dataset(dataset, specs, results, args, device)
    save_results(args.out, results)
    return results


def guarded_run(run_bench, args) -> tuple[dict | None, int]:
    """Run a benchmark with the training log shown; a user error prints one line (exit code)."""
    show_training_log()
    try:
        return run_bench(args), 0
    except PaulowError as error:
        print(f"error: {error}", file=sys.stderr)
        return None, error.exit_code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results, code = guarded_run(run, args)
    if results is None:
        return code
    print()
    print(markdown(results))
    print(f"wrote {args.out / (RESULTS_NAME + '.json')} and {RESULTS_NAME}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
