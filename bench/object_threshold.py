"""Ablation: how a boundary model's object mask is made, scored on a dataset's test split.

    python bench/object_threshold.py --model PATH.pth --dataset vnc_mitochondria --data-root ../shared/data
                                     [--out bench/results/object_threshold.json]

A boundary model (background / interior / boundary) predicts each test page once; its object mask is
then made three ways from the same probabilities, each with the model's smallest object size:
- `tuned`: 1 - P(background) above the model's threshold (tuned on its validation images: the default
  since this rule came in);
- `half`: 1 - P(background) above 0.5;
- `argmax`: every pixel whose most probable class is not background (the rule before).
Pixel and object scores are `paulow.api.score_masks`' (objects: the mask's connected components,
as `use_model.py` writes them without `--instances`). The model must come from a run that never saw
the test split (e.g. `bench/user_path.py --work DIR` keeps it in `DIR/<dataset>/Use_Model/saved_models`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from datasets import ALL_DATASETS  # noqa: E402
from machine import machine_line  # noqa: E402
from user_path import SYNTHETIC, real_split, synthetic_split  # noqa: E402

RULES = ("tuned", "half", "argmax")


def object_masks(prob: np.ndarray, threshold: float, min_size: int) -> dict[str, np.ndarray]:
    """The object mask of one page's `(3, H, W)` probabilities under each rule of `RULES`."""
    from paulow.boundaries import object_mask
    from paulow.object_size import mask_without_small
    from paulow.postprocess import to_mask

    masks = {
        "tuned": object_mask(prob, threshold),
        "half": object_mask(prob, 0.5),
        "argmax": (to_mask(prob) != 0).astype(np.uint8),
    }
    return {k: mask_without_small(m, min_size) if min_size else m for k, m in masks.items()}


def compare(model_path: Path, dataset: str, root: Path | None) -> dict:
    """Pooled scores of each rule on the test split of `dataset`."""
    import paulow
    from paulow.api import score_masks
    from paulow.boundaries import is_boundary_model

    model = paulow.load_model(model_path)
    if not is_boundary_model(model.meta):
        raise SystemExit(f"{model_path} is not a boundary model: nothing to compare")
    _, test = synthetic_split(dataset) if dataset in SYNTHETIC else real_split(dataset, root)
    small = int(model.meta.get("min_object_px") or 0)
    pages: dict[str, list] = {rule: [] for rule in RULES}
    for i, (image, truth) in enumerate(test):
        prob = model.predict(image, min_size=0).probabilities
        for rule, mask in object_masks(prob, model.threshold, small).items():
            pages[rule].append((f"test{i + 1}", 0, mask, truth))
    keys = (
        "dice",
        "precision",
        "recall",
        "object_precision",
        "object_recall",
        "object_f1",
        "n_pred",
        "n_true",
    )
    scores = {rule: {k: score_masks(p, dataset).pooled[k] for k in keys} for rule, p in pages.items()}
    return {
        "model": str(model_path),
        "dataset": dataset,
        "threshold": model.threshold,
        "min_object_px": small,
        "test_pages": len(test),
        "scores": scores,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--dataset", required=True, choices=[*ALL_DATASETS, *SYNTHETIC])
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default: print only)")
    args = parser.parse_args(argv)
    result = {
        "command": "python bench/object_threshold.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine_line(),
        **compare(args.model, args.dataset, args.data_root),
    }
    for rule, s in result["scores"].items():
        print(
            f"{rule:7s} Dice {s['dice']:.4f}  precision {s['precision']:.3f}  recall {s['recall']:.3f}  "
            f"object F1 {s['object_f1']:.3f}"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
