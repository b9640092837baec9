"""How many training patches a fold needs: learning curves of user-path runs, read from their reports.

    python bench/patch_floor.py REPORT_DIR [REPORT_DIR ...] [--out bench/results/patch_floor.json]

Each REPORT_DIR is a `NAME_report/` folder `train_model.py` wrote (e.g. the workspaces that
`bench/user_path.py --work DIR` keeps). From its `history.csv` (one row per epoch, `patches` trained in
it, `val_dice` where the epoch validated) this prints, per fold, the patches seen until the validation
Dice first came within 0.01, 0.02 and 0.05 of the fold's best, and the best itself. The planner's floor
(`paulow.planner.MIN_PATCHES_PER_FOLD`) should be at least what a fold needs to come within a few
hundredths of its best; a fold given fewer patches is not worth training as a separate fold.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

MARGINS = (0.01, 0.02, 0.05)


def learning_curve(history: Path) -> dict[int, list[tuple[int, float]]]:
    """Per fold: (patches seen so far, validation Dice) at every validated epoch."""
    curves: dict[int, list[tuple[int, float]]] = {}
    seen: dict[int, int] = {}
    with history.open(newline="") as handle:
        for row in csv.DictReader(handle):
            fold = int(row["fold"])
            seen[fold] = seen.get(fold, 0) + int(float(row.get("patches") or 0))
            if row.get("val_dice") not in (None, "", "None", "nan"):
                curves.setdefault(fold, []).append((seen[fold], float(row["val_dice"])))
    return curves


def patches_to_reach(curve: list[tuple[int, float]], margin: float) -> int | None:
    """Patches seen when the validation Dice first came within `margin` of the curve's best."""
    if not curve:
        return None
    best = max(d for _, d in curve)
    return next(p for p, d in curve if d >= best - margin)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = []
    for report in args.reports:
        history = report / "history.csv"
        if not history.is_file():
            print(f"{report}: no history.csv", file=sys.stderr)
            continue
        for fold, curve in sorted(learning_curve(history).items()):
            row = {
                "report": str(report),
                "fold": fold,
                "patches_trained": curve[-1][0] if curve else 0,
                "best_val_dice": max(d for _, d in curve),
                **{f"patches_within_{m:g}": patches_to_reach(curve, m) for m in MARGINS},
                "curve": curve,
            }
            rows.append(row)
            print(
                f"{report.parent.parent.parent.name} fold {fold}: best {row['best_val_dice']:.4f} after "
                f"{row['patches_trained']:,} patches; within "
                + ", ".join(f"{m:g}: {row[f'patches_within_{m:g}']:,}" for m in MARGINS)
            )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {"command": "python bench/patch_floor.py " + " ".join(sys.argv[1:]), "rows": rows}, indent=2
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
