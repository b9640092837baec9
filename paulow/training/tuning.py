"""Tuning on validation (threshold, smallest object), choosing the fold and scoring the test share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..config import TrainConfig
from ..scoring import (
    THRESHOLD_CANDIDATES,
    score_probabilities,
    sweep_object_thresholds,
    sweep_thresholds,
)
from ..slices import Slice, labelled_of
from .evaluation import echo_classes, predict_slices, save_panel
from .results import FoldResult, masks_of


def tune_threshold(models, slices: Sequence[Slice], cfg: TrainConfig, device: str) -> tuple[float, float]:
    """The probability threshold with the best validation Dice (ties: the one nearest 0.5); a
    boundary model's on its object probability."""
    probs = predict_slices(models, slices, cfg, device)
    return tune_on_probabilities(probs, masks_of(slices), bool(cfg.boundary_target), labelled_of(slices))


def select_fold(results: Sequence[FoldResult]) -> int:
    """The index of the fold with the best validation Dice (the first on a tie): the test share
    plays no part in the choice."""
    return int(np.argmax([r.val_dice for r in results]))


def score_test(
    model,
    result: FoldResult,
    test: Sequence[Slice],
    cfg: TrainConfig,
    device: str,
    echo: Callable[[str], None],
) -> None:
    """Score the selected fold's `model` once on the test share, at its tuned threshold and smallest
    object size, and store the scores on `result` (`test_dice`, per class, object masks)."""
    scores = score_probabilities(
        predict_slices(model, test, cfg, device),
        masks_of(test),
        result.threshold,
        result.min_size,
        objects=bool(cfg.boundary_target),
        valid=labelled_of(test),
    )
    result.test_dice, result.test_dice_objects = scores["dice"], scores.get("dice_objects")
    echo(
        f"selected fold {result.fold + 1} (best validation Dice {result.val_dice:.4f}); test Dice "
        f"{result.test_dice:.4f} on {len(test)} test slice(s), scored once by the selected model"
        + (f" (object masks {result.test_dice_objects:.4f})" if result.test_dice_objects is not None else "")
    )
    if cfg.classes >= 2:
        result.test_dice_c = scores["dice_c"]
        echo_classes(scores, cfg, echo, f"fold {result.fold + 1} test")


def closing_validations(
    val: Sequence[Slice],
    test: Sequence[Slice],
    checks: Sequence[Slice] | None = None,
    tiles: Callable[[Slice], int] | None = None,
) -> float:
    """The cost of what follows a fold in between-epoch validations: `evaluate_fold` predicts the
    whole validation images, and after the last fold `score_test` predicts the `test` share once.
    Measured in pixels while the validations score `val` itself; against a tile subset (`checks`,
    see `between_epoch_slices`), in inference `tiles`."""
    if checks is None or tiles is None or "crop" not in (checks[0].info if checks else {}):
        val_pixels = sum(s.image[0].size for s in val)
        return (val_pixels + sum(s.image[0].size for s in test)) / max(val_pixels, 1)
    return sum(tiles(s) for s in (*val, *test)) / max(sum(tiles(s) for s in checks), 1)


def evaluate_fold(
    model,
    result: FoldResult,
    val: Sequence[Slice],
    cfg: TrainConfig,
    device: str,
    report_dir: Path | None,
    echo: Callable[[str], None],
    train: Sequence[Slice] = (),
) -> None:
    """Threshold, smallest object size and final panel of a trained fold, all on its validation
    images (predicted once; every score reads the stored probabilities). The test share is scored
    later, once, by the selected fold only (`score_test`)."""
    k = result.fold
    result.threshold = cfg.threshold
    boundary = bool(cfg.boundary_target)
    tune = cfg.tune_threshold and (cfg.classes <= 1 or boundary) and bool(val)
    sizes = tunes_min_size(cfg, [*val, *train]) and bool(val) and bool(train)
    if tune or sizes or report_dir is not None:
        probs = predict_slices(model, val, cfg, device)
        if tune:
            result.threshold, tuned = tune_on_probabilities(probs, masks_of(val), boundary, labelled_of(val))
            echo(
                f"fold {k + 1}: {'object ' if boundary else ''}threshold {result.threshold:.2f} tuned on "
                f"validation ({'object ' if boundary else ''}Dice {tuned:.4f})"
            )
        if sizes:
            result.min_size = tuned_min_size(probs, val, train, result.threshold, cfg, k, echo)
        if report_dir is not None:
            save_panel(
                model, val, cfg, device, report_dir / f"fold{k + 1}_final.png", probs[0], result.threshold
            )


def tune_on_probabilities(
    probs: Sequence[np.ndarray],
    truths: Sequence[np.ndarray],
    boundary: bool,
    valid: Sequence[np.ndarray | None] | None = None,
) -> tuple[float, float]:
    """The threshold with the best pooled Dice on stored probabilities (on the `valid` pixels when
    given), and that Dice: a binary model's on its probability, a boundary model's on its object
    probability 1 - P(background)."""
    if boundary:
        return sweep_object_thresholds(probs, truths, THRESHOLD_CANDIDATES, valid)
    return sweep_thresholds(probs, truths, THRESHOLD_CANDIDATES, valid)


def tunes_min_size(cfg: TrainConfig, slices: Sequence[Slice] = ()) -> bool:
    """Object masks (binary, or learned boundaries) get a tuned smallest object size; not from
    sparse labels (`slices` with labelled pixels), whose painted strokes are not whole objects."""
    return (cfg.classes <= 1 or bool(cfg.boundary_target)) and labelled_of(slices) is None


def predicted_objects(prob: np.ndarray, threshold: float, boundary: bool) -> np.ndarray:
    """Instance labels of one probability map as `use_model.py` makes them: a boundary model's
    seeded watershed, else the mask's 8-connected components."""
    from ..boundaries import instances_from_boundaries
    from ..postprocess import label_instances, to_mask

    return (
        instances_from_boundaries(prob, threshold=threshold)
        if boundary
        else label_instances(to_mask(prob, threshold))
    )


def tuned_min_size(
    probs: Sequence[np.ndarray],
    val: Sequence[Slice],
    train: Sequence[Slice],
    threshold: float,
    cfg: TrainConfig,
    k: int,
    echo: Callable[[str], None],
) -> int:
    """The smallest object size with the best validation object F1 (see `paulow.object_size`)."""
    from ..object_size import object_areas, size_candidates, tune_min_size

    candidates = size_candidates(object_areas([s.instances() for s in train]))
    if candidates == [0]:
        return 0
    boundary = bool(cfg.boundary_target)
    predicted = [predicted_objects(p, threshold, boundary) for p in probs]
    size, with_size, without = tune_min_size(predicted, [s.instances() for s in val], candidates)
    if size:
        echo(
            f"fold {k + 1}: objects under {size} px removed (validation object F1 {without:.3f} -> "
            f"{with_size:.3f})"
        )
    return size
