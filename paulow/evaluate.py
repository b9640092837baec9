"""Score predicted masks against ground truth: per image/page and pooled, pixel and object level."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import ShapeMismatchError
from .metrics import (
    class_confusion,
    object_scores,
    pixel_scores,
    pooled_object_scores,
    pooled_scores,
    scores_from_matrix,
    thin_structure_scores,
)

if TYPE_CHECKING:
    from .palette import Palette

PIXEL_KEYS = ("dice", "iou", "precision", "recall", "accuracy", "miou", "mpa")
OBJECT_KEYS = ("object_precision", "object_recall", "object_f1", "count_error", "mean_matched_iou")
# Scores for thin structures (filaments, membranes): F1 within 1 px and centreline Dice.
THIN_KEYS = ("tolerant_f1", "cldice")
# K >= 2: per image and pooled; mean_dice / mean_iou over the foreground classes, miou / mpa over all
CLASS_KEYS = ("mean_dice", "mean_iou", "miou", "mpa", "accuracy")


@dataclass
class Scored:
    """Per-page rows and the pooled scores of one prediction set."""

    name: str
    rows: list[dict]
    pooled: dict


def _object_row(scores: dict) -> dict:
    return {
        "object_precision": scores["precision"],
        "object_recall": scores["recall"],
        "object_f1": scores["f1"],
        "count_error": scores["count_error"],
        "mean_matched_iou": scores["mean_matched_iou"],
        "n_pred": scores["n_pred"],
        "n_true": scores["n_true"],
    }


def score_pages(
    pages: Iterable[tuple[str, int, np.ndarray, np.ndarray]],
    name: str = "prediction",
    classes: int = 1,
    tolerance: float = 1.0,
) -> Scored:
    """`pages` yields (file, page, predicted mask, truth mask); binary when classes == 1.
    `tolerance`: pixels within which `tolerant_f1` counts a pixel as found.

    A truth mask with several non-zero values is taken as instance labels for the object scores
    (its foreground is still any non-zero pixel); a binary one is split into connected components.
    For classes >= 2 the masks hold class indices; rows and pooled scores are `scores_from_matrix`'s
    (pooled from the summed confusion matrix).
    """
    rows, pixel_pairs, object_pairs = [], [], []
    matrix = np.zeros((classes, classes), dtype=np.int64)
    for file, page, pred, truth in pages:
        row = {"file": file, "page": page}
        if classes > 1:
            try:
                page_matrix = class_confusion(pred, truth, classes)
            except ShapeMismatchError as exc:
                raise ShapeMismatchError(f"'{file}' page {page}: {exc}") from None
            row.update(scores_from_matrix(page_matrix))
            matrix += page_matrix
        else:
            row.update(pixel_scores(pred != 0, truth != 0))
            row.update(_object_row(object_scores(pred, truth)))
            row.update(thin_structure_scores([(pred, truth)], tolerance))
            pixel_pairs.append((pred != 0, truth != 0))
            object_pairs.append((pred, truth))
        rows.append(row)
    pooled: dict = {"images": len(rows)}
    if classes > 1 and rows:  # pooled over every pixel, as training scores its test share
        pooled.update(scores_from_matrix(matrix))
    elif rows:
        pooled.update(pooled_scores(pixel_pairs))
        pooled.update(_object_row(pooled_object_scores(object_pairs)))
        pooled.update(thin_structure_scores(pixel_pairs, tolerance))
    return Scored(name=name, rows=rows, pooled=pooled)


def truth_for(pred_paths: Sequence[Path], truth_paths: Sequence[Path]) -> list[Path]:
    """The truth masks whose names pair with a prediction: a truth folder may hold more masks than
    were predicted (the others are left out); without any name match, all of them."""
    from .io.pairing import pairing_key

    keys = {pairing_key(p) for p in pred_paths}
    subset = [t for t in truth_paths if pairing_key(t) in keys]
    return subset if subset and len(subset) >= len(pred_paths) else list(truth_paths)


def mask_pages(
    pred_paths: Sequence[Path], truth_paths: Sequence[Path], classes: int = 1, palette: Palette | None = None
):
    """Pair prediction and truth files by name and yield (file, page, pred, truth) per page. For
    classes >= 2, colour masks go through `palette` (see `paulow.palette.read_class_mask`)."""
    from .errors import ShapeMismatchError
    from .io.pairing import pair_images_masks
    from .palette import read_class_mask

    for pred_path, truth_path in pair_images_masks(list(pred_paths), truth_for(pred_paths, truth_paths)):
        pred = read_class_mask(pred_path, classes, palette)
        truth = read_class_mask(truth_path, classes, palette)
        if pred.shape != truth.shape:
            raise ShapeMismatchError(
                f"prediction '{pred_path.name}' has shape {pred.shape} but truth "
                f"'{truth_path.name}' has {truth.shape}: compare masks of the same image"
            )
        for page in range(pred.shape[0]):
            yield truth_path.name, page, pred[page], truth[page]


def files_of(path: Path, predictions: bool = False) -> list[Path]:
    """A folder's images, or the file itself.

    For a folder of predictions written by `use_model.py` (which also holds probability maps, label
    images and overlays), only its `*_mask.*` files are the predictions.
    """
    from .errors import EmptyFolderError
    from .io.listing import list_images
    from .volumes import volume_stem

    files = list_images(path) if path.is_dir() else [path] if path.is_file() else []
    if predictions and path.is_dir():
        masks = [f for f in files if volume_stem(f).lower().endswith("_mask")]  # x_mask.nii.gz too
        files = masks or files
    if not files:
        raise EmptyFolderError(f"no masks or images at '{path}': check the path")
    return files


def class_rows(pooled: dict, names: Sequence[str]) -> list[dict]:
    """The per-class table of pooled K >= 2 scores: one row per class (Dice, IoU, precision, recall),
    then the mean over the foreground classes."""
    rows = [
        {
            "class": name,
            "dice": pooled[f"dice_{c}"],
            "iou": pooled[f"iou_{c}"],
            "precision": pooled[f"precision_{c}"],
            "recall": pooled[f"pa_{c}"],
        }
        for c, name in enumerate(names)
    ]
    return rows + [{"class": "mean (foreground)", "dice": pooled["mean_dice"], "iou": pooled["mean_iou"]}]


def class_comparison_rows(results: Sequence[Scored], names: Sequence[str]) -> list[dict]:
    """`--compare` for K >= 2: one row per class, one Dice column per prediction set."""
    rows = [
        {"class": name, **{r.name: r.pooled.get(f"dice_{c}") for r in results}}
        for c, name in enumerate(names)
    ]
    return rows + [{"class": "mean (foreground)", **{r.name: r.pooled.get("mean_dice") for r in results}}]


def comparison_rows(results: Sequence[Scored]) -> list[dict]:
    """One row per prediction set with its pooled scores, for `--compare`."""
    return [{"name": r.name, **r.pooled} for r in results]
