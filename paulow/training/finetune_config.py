"""Fine-tuning settings: the parent's config with a lower learning rate, and what may not change."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..config import TrainConfig
from ..errors import UsageError

FINETUNE_DEFAULTS = {"lr_factor": 0.1, "epochs": 20, "time_limit_cpu": 5.0, "holdout": 0.25}

# What fine-tuning cannot change, and why. It continues the parent's network from its weights, so an
# option that would build another network, start from other weights, or split the data another way
# is refused rather than silently ignored. Everything else (threshold, augmentation, schedule,
# learning rate, epochs, batch size, patch, loss, time limit, patience, ...) is honoured.
_NETWORK = "the network (it continues the parent's weights)"
FIXED_BY_PARENT = {
    "arch": f"cannot change {_NETWORK}",
    "arch_extra": f"cannot change {_NETWORK}",
    "width": f"cannot change {_NETWORK}",
    "depth": f"cannot change {_NETWORK}",
    "classes": f"cannot change {_NETWORK}",
    "class_names": "keeps the parent's classes and their names",
    "norm": f"cannot change {_NETWORK}",
    "dropout": f"cannot change {_NETWORK}",
    "batch_norm": f"cannot change {_NETWORK}",
    "no_batch_norm": f"cannot change {_NETWORK}",
    "encoder_weights": "starts from the parent's weights, not an encoder's",
    "preset": "starts from the parent's settings, not a preset (give the options you want changed)",
    "folds": "uses one split, not cross-validation (set the held-out share with --holdout)",
    "test_fraction": "uses one split (set the held-out share with --holdout)",
    "ensemble": "adapts one network, the parent's selected member",
    "boundary_target": "keeps the parent's target (its classes are the network's outputs)",
    "no_boundary_target": "keeps the parent's target (its classes are the network's outputs)",
}


def _parent_values(meta: dict) -> dict:
    """The parent's value of each fixed option that has one (giving that value changes nothing)."""
    from ..boundaries import boundary_width

    args = meta.get("arch_args", {})
    values = {
        "arch": meta.get("arch"),
        "width": args.get("width"),
        "depth": args.get("depth"),
        "classes": int(meta.get("classes", 1)),
        "class_names": meta.get("class_names"),
        "folds": 1,
        "ensemble": False,
        "no_batch_norm": args.get("batch_norm") is False,
        "boundary_target": boundary_width(meta),
        "no_boundary_target": boundary_width(meta) is None,
        **{k: args[k] for k in ("norm", "dropout", "batch_norm") if k in args},
    }
    return {k: v for k, v in values.items() if v is not None}


def refuse_fixed_options(parent_meta: dict, options: Mapping[str, Any]) -> None:
    """A `UsageError` for the first given option fine-tuning cannot change (its parent value passes)."""
    parent = _parent_values(parent_meta)
    for key, why in FIXED_BY_PARENT.items():
        value = options.get(key)
        if value is None or value == parent.get(key, None if value is not False else False):
            continue
        flag = "--" + key.replace("_", "-")
        had = f"; the parent has {key} {parent[key]}" if key in parent else ""
        raise UsageError(
            f"{flag} {value}: fine-tuning {why}{had}: leave {flag} out, or train a new "
            "model with train_model.py"
        )


def finetune_config(parent_meta: dict, options: Mapping[str, Any], device: str) -> TrainConfig:
    """The fine-tuning settings: the parent's training settings and threshold, a tenth of its learning
    rate, at most 20 epochs, then every option given (a mapping of option names to values; None =
    not given). An unknown name, a value out of range, or an option that would change the network is
    a `UsageError` naming it, before any work. Without `threshold`, the threshold is re-tuned on the
    validation images after fitting (`tune_threshold`)."""
    from ..boundaries import boundary_width
    from ..config import (
        ZERO_MEANS_NONE,
        instance_options,
        option_names,
        option_values,
        palette_option,
        with_class_weights,
    )

    unknown = sorted(set(options) - option_names() - set(FIXED_BY_PARENT))
    if unknown:
        honoured = sorted(option_names() - set(FIXED_BY_PARENT) - {"device"})
        raise UsageError(
            f"unknown fine-tuning option(s): {', '.join(unknown)}: choose from {', '.join(honoured)}"
        )
    refuse_fixed_options(parent_meta, options)
    values = option_values(
        {k: v for k, v in options.items() if k not in FIXED_BY_PARENT and k != "device"}, "fine-tuning"
    )
    values.update({k: None for k in ZERO_MEANS_NONE if values.get(k) == 0})
    weights = values.pop("class_weights", None)
    base = TrainConfig(
        **{k: v for k, v in parent_meta.get("config", {}).items() if k in TrainConfig.__dataclass_fields__}
    )
    args_meta = parent_meta.get("arch_args", {})
    cfg = replace(
        base,
        arch=parent_meta["arch"],
        width=int(args_meta.get("width", base.width)),
        depth=int(args_meta.get("depth", base.depth)),
        classes=int(parent_meta.get("classes", 1)),
        lr=base.lr * FINETUNE_DEFAULTS["lr_factor"],
        epochs=int(FINETUNE_DEFAULTS["epochs"]),
        folds=1,
        ensemble=False,
        device=device,
        freeze_encoder=False,
        boundary_target=boundary_width(parent_meta),
        threshold=float(parent_meta.get("threshold", base.threshold)),
        time_limit=FINETUNE_DEFAULTS["time_limit_cpu"] if device == "cpu" else None,
    )
    cfg = replace(cfg, **values)
    cfg = instance_options(
        cfg, {}
    )  # --border-weight as given (else the parent's); a boundary model stays one
    cfg = palette_option(cfg)  # --palette as given, else the parent's
    cfg = with_class_weights(cfg, weights)
    return replace(cfg, tune_threshold=cfg.tune_threshold and "threshold" not in values)
