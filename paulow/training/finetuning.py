"""Fine-tuning: settings, the starting member, the split, the fit and the new metadata; shared by
the API and `finetune_model.py`."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..data import Slice
from ..errors import UsageError

FINETUNE_DEFAULTS = {"lr_factor": 0.1, "epochs": 20, "time_limit_cpu": 5.0, "holdout": 0.25}
# Held-out images under this count give a score to read with care (flagged `optimistic`).
FEW_HELD_OUT = 3

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
    instance_options(cfg, {})  # --border-weight as given (else the parent's); a boundary model stays one
    palette_option(cfg)  # --palette as given, else the parent's
    cfg = with_class_weights(cfg, weights)
    return replace(cfg, tune_threshold=cfg.tune_threshold and "threshold" not in values)


def start_member(models: list, meta: dict):
    """The member to start from: the selected fold of an ensemble, else the only model."""
    if len(models) == 1:
        return models[0]
    best = int(meta.get("metrics", {}).get("best_fold", 1)) - 1
    return models[min(max(best, 0), len(models) - 1)]


@dataclass
class Finetuned:
    """A fine-tuned network, its fit history, the scores of parent and child on the held-out images
    (the validation images when none could be held out), the child's settings (its threshold re-tuned
    on the validation images unless one was given) and the held-out slices' `file#page` names."""

    network: Any
    result: Any  # paulow.train.FoldResult
    scores: dict
    cfg: TrainConfig
    held_out: list[str] = field(default_factory=list)


def split_for_finetuning(
    slices: Sequence[Slice], holdout: float, seed: int, where: str
) -> tuple[list[Slice], list[Slice], list[Slice]]:
    """(tune, validation, held out): a `holdout` share held out (none under 3 images), then a
    `holdout` share of the rest for validation (see `paulow.splits`); a `UsageError` naming `where`
    when there are fewer than two images. Validation chooses the epoch, threshold and smallest object
    size; the held-out images choose nothing and give the reported score."""
    from ..splits import kfold, split_test

    if len({s.key for s in slices}) < 2:
        raise UsageError(
            "fine-tuning needs at least two images (one to tune on, one to validate on): "
            f"add images to {where}"
        )
    rest, held = split_test(slices, holdout, seed, keep=2)  # one to tune on, one to validate on
    ((tune, val),) = kfold(rest, 1, seed, val_fraction=holdout)
    return tune, val, held


def score_note(held: int) -> str:
    """What the reported Dice is measured on, and how far to trust it."""
    if not held:
        return (
            "on the validation images (too few images to hold any out): optimistic, as they chose the "
            "epoch, threshold and smallest object size"
        )
    note = f"on {held} held-out image(s) that chose nothing"
    return note + (f"; fewer than {FEW_HELD_OUT}: treat it as optimistic" if held < FEW_HELD_OUT else "")


def as_evaluated(cfg: TrainConfig, meta: Mapping[str, Any]) -> TrainConfig:
    """`cfg` with the inference settings a model file of this metadata is used with (tile from its
    patch, overlap, threshold), so its scores here are what `paulow evaluate --model` gives."""
    return replace(
        cfg,
        patch=int(meta.get("patch", cfg.patch)),
        infer_overlap=float(meta.get("overlap", cfg.infer_overlap)),
        threshold=float(meta.get("threshold", cfg.threshold)),
    )


def finetune_network(
    parent: Any,
    tune: Sequence[Slice],
    val: Sequence[Slice],
    cfg: TrainConfig,
    device: str,
    report_dir: Path | None = None,
    echo: Callable[[str], None] = lambda _: None,
    watch: Any = None,
    parent_meta: Mapping[str, Any] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    held: Sequence[Slice] = (),
) -> Finetuned:
    """Fit a copy of `parent` on `tune`; the parent is not changed. The validation images `val`
    choose the epoch (best Dice), the child's threshold (unless `cfg.tune_threshold` is off) and its
    smallest object size; parent and child are then scored on the `held` images, which chose
    nothing (on `val` when `held` is empty: an optimistic score, and the scores say so). The parent
    is scored as its file is used (`parent_meta`: threshold, patch, overlap, smallest object).
    `watch`: a `paulow.watch.FoldWatch` (curves drawn while it trains, TensorBoard) or None;
    `on_epoch`: called after every epoch with its history row plus `folds` (1) and `epochs`."""
    from ..infer import set_activation
    from .loop import fit_fold
    from .network import freeze_encoder, output_activation

    scored = held or val
    note = score_note(len(held))
    parent_scores, parent_threshold = _parent_scores(
        parent, scored, cfg, device, parent_meta or {}, echo, note
    )
    before = parent_scores["dice"]
    net = copy.deepcopy(parent).to(device)
    set_activation(net, {"activation": output_activation(cfg)})  # the loss decides (softmax for K >= 2)
    if cfg.freeze_encoder:
        echo(f"froze {freeze_encoder(net)} encoder tensors")
    deadline = time.monotonic() + cfg.time_limit * 60 if cfg.time_limit else float("inf")
    tell = (lambda row: on_epoch({**row, "folds": 1, "epochs": cfg.epochs})) if on_epoch else None
    result = fit_fold(net, tune, val, cfg, device, deadline, 0, report_dir, on_epoch=tell, watch=watch)
    net.eval()
    cfg, tuned, size = _choose_on_validation(
        net, tune, val, cfg, device, echo, int((parent_meta or {}).get("min_object_px") or 0)
    )
    child_scores = _scores(net, scored, cfg, device, size)
    after = child_scores["dice"]
    gain = child_scores.get("dice_objects", after) - parent_scores.get("dice_objects", before)
    echo(
        f"held-out {_dice_text(child_scores, 'fine-tuned model', gain)} at threshold "
        f"{cfg.threshold:.2f}"
        + (f" (tuned on {len(val)} validation image(s))" if tuned else "")
        + f", {note}"
    )
    scores = {
        "parent_dice": before,
        "finetuned_dice": after,
        "held_out_images": len(held),
        "validation_images": len(val),
        "scored_on": "held_out" if held else "validation",
        "optimistic": len(held) < FEW_HELD_OUT,
        "parent_threshold": parent_threshold,
        "threshold": cfg.threshold,
        "threshold_tuned": tuned,
        "min_object_px": size,
    }
    if cfg.boundary_target:  # the Dice of the masks use_model.py writes, the class means beside it
        scores.update(
            parent_object_dice=parent_scores["dice_objects"],
            finetuned_object_dice=child_scores["dice_objects"],
        )
    return Finetuned(net, result, scores, cfg, sorted({f"{s.source.name}#{s.page}" for s in held}))


def _scores(model: Any, slices: Sequence[Slice], cfg: TrainConfig, device: str, size: int) -> dict:
    """Pooled scores over whole slices at the config's threshold and smallest object size (a
    boundary model's `dice_objects` too: the Dice of its object masks)."""
    from ..data import labelled_of
    from ..scoring import score_probabilities
    from .evaluation import predict_slices
    from .results import masks_of

    probs = predict_slices(model, slices, cfg, device)
    return score_probabilities(
        probs,
        masks_of(slices),
        cfg.threshold,
        size,
        objects=bool(cfg.boundary_target),
        valid=labelled_of(slices),
    )


def _parent_scores(
    parent: Any,
    scored: Sequence[Slice],
    cfg: TrainConfig,
    device: str,
    parent_meta: Mapping[str, Any],
    echo: Callable[[str], None],
    note: str,
) -> tuple[dict, float]:
    """The parent's scores on the scored images at its own threshold and smallest object size, and
    that threshold."""
    as_parent = as_evaluated(cfg, parent_meta)
    scores = _scores(parent, scored, as_parent, device, int(parent_meta.get("min_object_px") or 0))
    echo(
        f"held-out {_dice_text(scores, 'parent model')} (at its threshold {as_parent.threshold:.2f}), {note}"
    )
    return scores, as_parent.threshold


def _choose_on_validation(
    net: Any,
    tune: Sequence[Slice],
    val: Sequence[Slice],
    cfg: TrainConfig,
    device: str,
    echo: Callable[[str], None],
    parent_size: int,
) -> tuple[TrainConfig, bool, int]:
    """The child's threshold (re-tuned unless given) and smallest object size, both chosen on the
    validation images: (settings with that threshold, whether it was tuned, size)."""
    from ..data import labelled_of
    from .evaluation import predict_slices
    from .results import masks_of
    from .tuning import tune_on_probabilities, tuned_min_size, tunes_min_size

    probs, truths = predict_slices(net, val, cfg, device), masks_of(val)
    boundary = bool(cfg.boundary_target)  # its threshold is on the object probability
    tuned = cfg.tune_threshold and (cfg.classes <= 1 or boundary) and bool(val)
    if tuned:
        cfg = replace(cfg, threshold=tune_on_probabilities(probs, truths, boundary, labelled_of(val))[0])
    size = (  # sparse labels keep the parent's size: painted strokes are not whole objects
        tuned_min_size(probs, val, tune, cfg.threshold, cfg, 0, echo)
        if tunes_min_size(cfg, [*val, *tune]) and val and tune
        else parent_size
    )
    return cfg, tuned, size


def _dice_text(scores: dict, who: str, gain: float | None = None) -> str:
    """'Dice of the <who>: 0.9123 (+0.0100)', or a boundary model's 'object Dice of the <who>: 0.8612
    (+0.0100; class mean Dice 0.4301)': the Dice of the masks it writes, its class means beside."""
    notes = [f"{gain:+.4f}"] if gain is not None else []
    if "dice_objects" in scores:
        notes.append(f"class mean Dice {scores['dice']:.4f}")
        return f"object Dice of the {who}: {scores['dice_objects']:.4f}" + (f" ({'; '.join(notes)})")
    return f"Dice of the {who}: {scores['dice']:.4f}" + (f" ({notes[0]})" if notes else "")


def finetuned_meta(meta: dict, name: str, done: Finetuned, parent: dict, slices: Sequence[Slice]) -> dict:
    """The parent's metadata with the fine-tuning's settings (threshold included), data, scores and
    the parent's identity (`parent`: its file name and SHA-256, as known)."""
    from .network import output_activation

    cfg = done.cfg
    new_meta = {
        **meta,
        "name": name,
        "config": asdict(cfg),
        "activation": output_activation(cfg),
        "palette": cfg.palette or meta.get("palette"),
        "threshold": cfg.threshold,
        "patch": cfg.patch,
        "overlap": cfg.infer_overlap,
        "min_object_px": int(done.scores.get("min_object_px", meta.get("min_object_px") or 0)),
        # the parent's per-class test Dice does not describe the fine-tuned weights
        "metrics": {
            **{
                k: v
                for k, v in meta.get("metrics", {}).items()
                if k not in ("test_dice_per_class", "test_dice_objects")
            },
            "test_dice": done.scores["finetuned_dice"],
            **(
                {"test_dice_objects": done.scores["finetuned_object_dice"]}
                if "finetuned_object_dice" in done.scores
                else {}
            ),
            "finetune": done.scores,
        },
        "parent": parent,
        "finetune": {
            "files": sorted({s.source.name for s in slices}),
            "tune": done.result.train_files,
            "validation": done.result.val_files,
            "held_out": done.held_out,
            "settings": asdict(cfg),
            "scores": done.scores,
            "stopped": done.result.stopped,
            "best_epoch": done.result.best_epoch,
        },
        "ensemble": False,
    }
    new_meta.pop("legacy", None)
    return new_meta
