"""Fine-tuning settings and the starting member: shared by the API and `finetune_model.py`."""
from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any, Mapping

from .config import TrainConfig

FINETUNE_DEFAULTS = {"lr_factor": 0.1, "epochs": 20, "time_limit_cpu": 5.0, "holdout": 0.25}
_OVERRIDABLE = ("epochs", "batch_size", "lr", "patch", "overlap", "loss", "loss_args", "seed",
                "patience", "workers", "per_epoch", "optimizer")


def finetune_config(parent_meta: dict, args: Any, device: str) -> TrainConfig:
    """The parent's training settings, a lower learning rate, then the user's explicit options.

    `args` is an argparse Namespace or a mapping of option names to values (None = not given).
    """
    if isinstance(args, Mapping):
        args = SimpleNamespace(**args)
    base = TrainConfig(**{k: v for k, v in parent_meta.get("config", {}).items()
                          if k in TrainConfig.__dataclass_fields__})
    args_meta = parent_meta.get("arch_args", {})
    cfg = replace(base, arch=parent_meta["arch"], width=int(args_meta.get("width", base.width)),
                  depth=int(args_meta.get("depth", base.depth)), classes=int(parent_meta.get("classes", 1)),
                  lr=base.lr * FINETUNE_DEFAULTS["lr_factor"], epochs=FINETUNE_DEFAULTS["epochs"],
                  folds=1, ensemble=False, device=device,
                  time_limit=FINETUNE_DEFAULTS["time_limit_cpu"] if device == "cpu" else None)
    for key in _OVERRIDABLE:
        value = getattr(args, key, None)
        if value is not None:
            cfg = replace(cfg, **{key: value})
    if getattr(args, "time_limit", None) is not None:
        cfg = replace(cfg, time_limit=args.time_limit or None)
    if getattr(args, "no_augment", False):
        cfg = replace(cfg, augment=False)
    return replace(cfg, freeze_encoder=bool(getattr(args, "freeze_encoder", False)))


def start_member(models: list, meta: dict):
    """The member to start from: the selected fold of an ensemble, else the only model."""
    if len(models) == 1:
        return models[0]
    best = int(meta.get("metrics", {}).get("best_fold", 1)) - 1
    return models[min(max(best, 0), len(models) - 1)]
