"""Fine-tuning: settings, the starting member, the split, the fit and the new metadata; shared by
the API and `finetune_model.py`."""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .config import TrainConfig
from .data import Slice
from .errors import UsageError

FINETUNE_DEFAULTS = {"lr_factor": 0.1, "epochs": 20, "time_limit_cpu": 5.0, "holdout": 0.25}
_OVERRIDABLE = ("epochs", "batch_size", "lr", "patch", "overlap", "loss", "loss_args", "seed",
                "patience", "workers", "per_epoch", "optimizer")


def finetune_config(parent_meta: dict, options: Mapping[str, Any], device: str) -> TrainConfig:
    """The parent's training settings, a lower learning rate, then the user's explicit options
    (a mapping of option names to values; None = not given)."""
    base = TrainConfig(**{k: v for k, v in parent_meta.get("config", {}).items()
                          if k in TrainConfig.__dataclass_fields__})
    args_meta = parent_meta.get("arch_args", {})
    cfg = replace(base, arch=parent_meta["arch"], width=int(args_meta.get("width", base.width)),
                  depth=int(args_meta.get("depth", base.depth)), classes=int(parent_meta.get("classes", 1)),
                  lr=base.lr * FINETUNE_DEFAULTS["lr_factor"], epochs=FINETUNE_DEFAULTS["epochs"],
                  folds=1, ensemble=False, device=device,
                  time_limit=FINETUNE_DEFAULTS["time_limit_cpu"] if device == "cpu" else None)
    cfg = replace(cfg, **{k: options[k] for k in _OVERRIDABLE if options.get(k) is not None})
    if options.get("time_limit") is not None:
        cfg = replace(cfg, time_limit=options["time_limit"] or None)
    if options.get("no_augment"):
        cfg = replace(cfg, augment=False)
    return replace(cfg, freeze_encoder=bool(options.get("freeze_encoder", False)))


def start_member(models: list, meta: dict):
    """The member to start from: the selected fold of an ensemble, else the only model."""
    if len(models) == 1:
        return models[0]
    best = int(meta.get("metrics", {}).get("best_fold", 1)) - 1
    return models[min(max(best, 0), len(models) - 1)]


@dataclass
class Finetuned:
    """A fine-tuned network, its fit history, and the held-out scores of parent and child."""

    network: Any
    result: Any  # paulow.train.FoldResult
    scores: dict


def split_for_finetuning(slices: Sequence[Slice], holdout: float, seed: int, where: str
                         ) -> tuple[list[Slice], list[Slice]]:
    """(tune, held out) by image; a `UsageError` naming `where` when there are fewer than two images."""
    from .data import kfold

    (tune, held), = kfold(list(slices), 1, seed, val_fraction=holdout)
    if tune is held or len({s.key for s in slices}) < 2:
        raise UsageError("fine-tuning needs at least two images (one to tune on, one held out): "
                         f"add images to {where}")
    return tune, held


def finetune_network(parent: Any, tune: Sequence[Slice], held: Sequence[Slice], cfg: TrainConfig,
                     device: str, report_dir: Path | None = None,
                     echo: Callable[[str], None] = lambda _: None, watch: Any = None) -> Finetuned:
    """Fit a copy of `parent` on `tune` (best weights by Dice on `held`); the parent is not changed.
    `watch`: a `paulow.watch.FoldWatch` (curves drawn while it trains, TensorBoard) or None."""
    from .infer import set_activation
    from .train import dice_on_slices, fit_fold, freeze_encoder, output_activation

    before = dice_on_slices(parent, held, cfg, device)
    echo(f"held-out Dice of the parent model: {before:.4f}")
    net = copy.deepcopy(parent).to(device)
    set_activation(net, {"activation": output_activation(cfg)})  # the loss decides (softmax for K >= 2)
    if cfg.freeze_encoder:
        echo(f"froze {freeze_encoder(net)} encoder tensors")
    deadline = time.monotonic() + cfg.time_limit * 60 if cfg.time_limit else float("inf")
    result = fit_fold(net, tune, held, cfg, device, deadline, 0, report_dir, watch=watch)
    net.eval()
    after = dice_on_slices(net, held, cfg, device)
    echo(f"held-out Dice of the fine-tuned model: {after:.4f} ({after - before:+.4f})")
    return Finetuned(net, result, {"parent_dice": before, "finetuned_dice": after, "held_out_images": len(held)})


def finetuned_meta(meta: dict, name: str, cfg: TrainConfig, done: Finetuned, parent: dict,
                   slices: Sequence[Slice]) -> dict:
    """The parent's metadata with the fine-tuning's settings, data, scores and the parent's identity
    (`parent`: its file name and SHA-256, as known)."""
    from .train import output_activation

    new_meta = {**meta, "name": name, "config": asdict(cfg), "activation": output_activation(cfg),
                # the parent's per-class test Dice does not describe the fine-tuned weights
                "metrics": {**{k: v for k, v in meta.get("metrics", {}).items() if k != "test_dice_per_class"},
                            "test_dice": done.scores["finetuned_dice"],
                            "finetune": done.scores},
                "parent": parent,
                "finetune": {"files": sorted({s.source.name for s in slices}),
                             "tune": done.result.train_files, "held_out": done.result.val_files,
                             "settings": asdict(cfg), "scores": done.scores,
                             "stopped": done.result.stopped, "best_epoch": done.result.best_epoch},
                "ensemble": False}
    new_meta.pop("legacy", None)
    return new_meta
