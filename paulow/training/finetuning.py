"""Fine-tuning: the starting member, the split, the fit and the new metadata; shared by
the API and `finetune_model.py`."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..errors import UsageError
from ..slices import Slice

# Held-out images under this count give a score to read with care (flagged `optimistic`).
FEW_HELD_OUT = 3


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
    result: Any  # paulow.training.results.FoldResult
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
    scored = held or val
    note = score_note(len(held))
    parent_scores, parent_threshold = _parent_scores(
        parent, scored, cfg, device, parent_meta or {}, echo, note
    )
    before = parent_scores["dice"]
    net, result = _fit_copy(parent, tune, val, cfg, device, report_dir, echo, watch, on_epoch)
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


def _fit_copy(
    parent: Any,
    tune: Sequence[Slice],
    val: Sequence[Slice],
    cfg: TrainConfig,
    device: str,
    report_dir: Path | None,
    echo: Callable[[str], None],
    watch: Any,
    on_epoch: Callable[[dict], None] | None,
) -> tuple[Any, Any]:
    """A copy of `parent` fitted on `tune` (the epoch chosen on `val`), in eval mode, and its
    `FoldResult`."""
    from ..inference_networks import set_activation
    from .loop import fit_fold
    from .network import freeze_encoder, output_activation

    net = copy.deepcopy(parent).to(device)
    set_activation(net, {"activation": output_activation(cfg)})  # the loss decides (softmax for K >= 2)
    if cfg.freeze_encoder:
        echo(f"froze {freeze_encoder(net)} encoder tensors")
    deadline = time.monotonic() + cfg.time_limit * 60 if cfg.time_limit else float("inf")
    tell = (lambda row: on_epoch({**row, "folds": 1, "epochs": cfg.epochs})) if on_epoch else None
    result = fit_fold(net, tune, val, cfg, device, deadline, 0, report_dir, on_epoch=tell, watch=watch)
    net.eval()
    return net, result


def _scores(model: Any, slices: Sequence[Slice], cfg: TrainConfig, device: str, size: int) -> dict:
    """Pooled scores over whole slices at the config's threshold and smallest object size (a
    boundary model's `dice_objects` too: the Dice of its object masks)."""
    from .evaluation import scores_on_slices

    return scores_on_slices(model, slices, cfg, device, size)


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
    from ..slices import labelled_of
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
