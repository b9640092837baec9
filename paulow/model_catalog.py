"""What a saved model is, in one row: for model pickers (napari) and notebooks.

Reads the model file's metadata (`paulow.checkpoint`, `weights_only`); builds no network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .model_file import stored_threshold


def _target(meta: dict) -> str:
    from .boundaries import is_boundary_model

    if is_boundary_model(meta):
        return "boundary (background / interior / boundary)"
    classes = int(meta.get("classes", 1))
    return "binary" if classes <= 1 else f"{classes} classes"


def _scores(meta: dict) -> dict[str, Any]:
    """Test Dice (a boundary model's object Dice first), the selected fold's validation Dice and, for a
    fine-tuned model, its and its parent's Dice on the held-out pixels."""
    metrics = meta.get("metrics") or {}
    scores: dict[str, Any] = {}
    if metrics.get("test_dice_objects") is not None:
        scores["object_dice"] = metrics["test_dice_objects"]
    if metrics.get("test_dice") is not None:
        scores["test_dice"] = metrics["test_dice"]
    folds = metrics.get("folds") or []
    best = int(metrics.get("best_fold") or 1) - 1
    if 0 <= best < len(folds) and folds[best].get("val_dice") is not None:
        scores["val_dice"] = folds[best]["val_dice"]
    tuned = metrics.get("finetune") or {}
    for key in ("finetuned_dice", "parent_dice"):
        if tuned.get(key) is not None:
            scores[key] = tuned[key]
    return scores


def model_summary(path: str | Path) -> dict[str, Any]:
    """name, path, classes (names), target, tile (the default prediction tile on a CPU), threshold,
    smallest object (px) and scores of a saved model; raises `ModelError` for an unreadable file."""
    from .checkpoint import read_meta
    from .infer import suggest_tile

    path = Path(path)
    meta = read_meta(path)
    classes = int(meta.get("classes", 1))
    return {
        "name": path.stem,
        "path": path,
        "classes": classes,
        "class_names": list(meta.get("class_names") or []),
        "target": _target(meta),
        "tile": suggest_tile(int(meta.get("patch", 128)), "cpu"),
        "threshold": stored_threshold(meta),
        "min_object_px": int(meta.get("min_object_px") or 0),
        "scores": _scores(meta),
        "date": str(meta.get("date", ""))[:16].replace("T", " "),
    }


def list_models(folder: str | Path) -> list[dict[str, Any]]:
    """`model_summary` of every readable `.pth` in `folder` (e.g. `Use_Model/saved_models`), newest
    first; unreadable files are left out. An absent folder lists nothing."""
    from .errors import ModelError

    folder = Path(folder)
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if p.suffix.lower() == ".pth" and not p.name.startswith(".")]
    rows = []
    for path in sorted(files, key=lambda p: (p.stat().st_mtime, p.name), reverse=True):
        try:
            rows.append(model_summary(path))
        except ModelError:
            continue
    return rows
