"""Where a binary model's false-positive pixels lie: in whole false objects, or along true outlines.

    python bench/false_positives.py WORK --dataset nih3t3_nuclei [--data-root ../shared/data]
                                    [--near 3] [--out bench/results/false_positives.json]

WORK is a workspace `bench/user_path.py --work WORK` kept: its `D/Use_Model/OUTPUT_MASKS/testN_mask.tif`
are compared with the dataset's test truth (same order). Per test page and pooled: false-positive
pixels, the share of them in predicted connected components (8-connected) that touch no true
foreground ("false objects": debris, unannotated cells), the share within `--near` px of true
foreground ("outlines"), and the false negatives. Outline errors call for sharper boundaries; false
objects for more training, or annotations of what should be ignored.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from datasets import load_dataset

from paulow.api import read_mask


def false_positive_anatomy(pred: np.ndarray, truth: np.ndarray, near: int = 3) -> dict[str, int]:
    """Pixel counts: `fp`, `fp_in_false_objects` (components of `pred` touching no `truth`),
    `fp_near_truth` (within `near` px, chessboard distance, of `truth`), `fn`, `true`."""
    pred, truth = np.asarray(pred) > 0, np.asarray(truth) > 0
    false_pos = pred & ~truth
    count, labels = cv2.connectedComponents(pred.astype(np.uint8), connectivity=8)
    touching = np.zeros(count, bool)
    touching[np.unique(labels[pred & truth])] = True
    in_false_objects = false_pos & ~touching[labels]
    side = 2 * near + 1
    around = cv2.dilate(truth.astype(np.uint8), np.ones((side, side), np.uint8)) > 0
    return {
        "fp": int(false_pos.sum()),
        "fp_in_false_objects": int(in_false_objects.sum()),
        "fp_near_truth": int((false_pos & around).sum()),
        "fn": int((truth & ~pred).sum()),
        "true": int(truth.sum()),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="the workspace folder of bench/user_path.py --work")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--near", type=int, default=3, help="px from true foreground that count as outline")
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    _, test = load_dataset(args.dataset, args.data_root)
    out_dir = args.work / args.dataset / "Use_Model" / "OUTPUT_MASKS"
    rows = []
    for i, page in enumerate(test, start=1):
        pred = read_mask(out_dir / f"test{i}_mask.tif")[0]
        rows.append({"page": f"test{i}", **false_positive_anatomy(pred, page.mask, args.near)})
    pooled = {key: sum(r[key] for r in rows) for key in rows[0] if key != "page"}
    for row in [*rows, {"page": "pooled", **pooled}]:
        fp = max(row["fp"], 1)
        print(
            f"{row['page']:>8}: false positives {row['fp']:>8} px, {row['fp_in_false_objects'] / fp:6.1%} in false "
            f"objects, {row['fp_near_truth'] / fp:6.1%} within {args.near} px of the truth; "
            f"false negatives {row['fn']:>7} px of {row['true']}"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {
                    "command": "python bench/false_positives.py "
                    + " ".join(sys.argv[1:] if argv is None else argv),
                    "dataset": args.dataset,
                    "near": args.near,
                    "pages": rows,
                    "pooled": pooled,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
