"""The training record a model file carries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..intensity import normalisation_spec
from ..scoring import (
    class_columns,
)
from ..slices import Slice
from .network import output_activation
from .results import FoldResult, TrainResult
from .tuning import tunes_min_size


def training_meta(
    cfg: TrainConfig,
    slices: Sequence[Slice],
    result: TrainResult,
    in_channels: int,
    file_hashes: dict[str, str],
    ensemble_scores: dict | None = None,
) -> dict:
    """Metadata (plain types only) stored in the model file. `ensemble_scores`: the ensemble's
    `scores_on_slices` on the test share (used instead of the best fold's with `cfg.ensemble`).

    For K >= 2, `test_dice` is the mean Dice over the foreground classes and `test_dice_per_class`
    maps each class name (background first) to its test Dice."""
    from ..object_size import largest_object

    best = result.folds[result.best_fold]
    return {
        "arch": cfg.arch,
        "arch_args": cfg.arch_args(in_channels),
        "in_channels": in_channels,
        "classes": cfg.classes,
        "class_names": cfg.names(),
        "palette": cfg.palette,
        "activation": output_activation(cfg),
        "normalisation": normalisation_spec(cfg),
        "context": cfg.context,
        "patch": cfg.patch,
        "overlap": cfg.infer_overlap,
        "threshold": cfg.threshold if cfg.ensemble else best.threshold,
        "min_object_px": best.min_size,
        **(
            {"largest_object_px": largest_object(s.instances() for s in slices)}
            if tunes_min_size(cfg)
            else {}
        ),
        "seed": cfg.seed,
        "training_files": _training_files(slices, file_hashes),
        "split": {
            "test": [f"{Path(k[0]).name}#{k[1]}" for k in result.test_keys],
            "folds": [{"fold": f.fold + 1, "val": f.val_files} for f in result.folds],
        },
        "metrics": _metrics(cfg, result, ensemble_scores),
        "ensemble": bool(cfg.ensemble),
        "config": asdict(cfg),
        "boundary_target": cfg.boundary_target,
        "train_seconds": round(result.seconds, 1),
    }


def _training_files(slices: Sequence[Slice], file_hashes: dict[str, str]) -> list[dict[str, Any]]:
    """One entry per training file: name, pages, page shape and SHA-256."""
    files: dict[str, dict[str, Any]] = {}
    for s in slices:
        entry = files.setdefault(
            s.source.name,
            {
                "name": s.source.name,
                "pages": 0,
                "shape": list(s.image.shape[1:]),
                "sha256": file_hashes.get(str(s.source), ""),
            },
        )
        entry["pages"] += 1
    return list(files.values())


def _metrics(cfg: TrainConfig, result: TrainResult, ensemble_scores: dict | None) -> dict:
    """The test share's scores (the selected fold's, or the ensemble's) and each fold's."""
    best = result.folds[result.best_fold]
    test_dice, per_class, objects = best.test_dice, best.test_dice_c, best.test_dice_objects
    if cfg.ensemble:
        test_dice = ensemble_scores["dice"] if ensemble_scores else None
        objects = ensemble_scores.get("dice_objects") if ensemble_scores else None
        per_class = ensemble_scores["dice_c"] if ensemble_scores and cfg.classes >= 2 else None
    names = cfg.names()
    return {
        "test_dice": test_dice,
        "best_fold": best.fold + 1,
        **({"test_dice_per_class": dict(zip(names, per_class))} if per_class else {}),
        **({"test_dice_objects": objects} if objects is not None else {}),
        "folds": [_fold_metrics(f, names) for f in result.folds],
    }


def _fold_metrics(f: FoldResult, names: list[str]) -> dict:
    """One fold's line of the metrics."""
    return {
        "fold": f.fold + 1,
        "val_dice": f.val_dice,
        "test_dice": f.test_dice,
        **({"test_dice_objects": f.test_dice_objects} if f.test_dice_objects is not None else {}),
        **class_columns("test_dice", f.test_dice_c or [], names),
        "threshold": f.threshold,
        "min_object_px": f.min_size,
        "best_epoch": f.best_epoch,
        "epochs_run": len(f.history),
        "stopped": f.stopped,
    }
