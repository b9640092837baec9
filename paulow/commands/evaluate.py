"""`paulow evaluate`: score prediction folders, or models on images, against ground truth."""

from __future__ import annotations

from ..api import EvaluationRun, evaluate_run, pick_device, use_threads, write_evaluation
from ..errors import UsageError
from ..report import format_table


def run(args, echo=print) -> int:
    if not args.truth:
        raise UsageError("evaluate needs --truth (a folder or file of ground-truth masks)")
    device = pick_device(args.device) if args.model else None
    if device is not None:
        use_threads(device, getattr(args, "busy_cores", None))  # once, at the start
    scored = evaluate_run(
        args.truth,
        predictions=args.pred or (),
        models=args.model or (),
        images=args.images,
        classes=args.classes,
        class_names=getattr(args, "class_names", None),
        palette=getattr(args, "palette", None),
        tolerance=args.tolerance,
        device=device,
    )
    out = args.out or (args.truth if args.truth.is_dir() else args.truth.parent) / "evaluation"
    out.mkdir(parents=True, exist_ok=True)
    _print(scored, args.compare, echo)
    write_evaluation(scored, out)
    echo(f"\nmetrics written to {out}")
    return 0


def _print(scored: EvaluationRun, compare: bool, echo) -> None:
    """Per-image tables (with the per-class table for K >= 2), then the side-by-side comparison."""
    results, keys = scored.results, scored.keys
    for r in results:
        if not compare or len(results) == 1:
            echo(f"\n{r.name}")
            echo(format_table(r.rows + [{"file": "POOLED", "page": "", **r.pooled}], ["file", "page", *keys]))
            if scored.classes > 1:
                echo(
                    f"\nper class (pooled over {r.pooled['images']} image(s)); mIoU {r.pooled['miou']:.3f}, "
                    f"mPA {r.pooled['mpa']:.3f} over all classes"
                )
                echo(format_table(scored.class_rows(r), ["class", "dice", "iou", "precision", "recall"]))
    if compare or len(results) > 1:
        echo(format_table(scored.comparison_rows(), ["name", *keys]))
        if scored.classes > 1:
            echo("\nDice per class")
            echo(format_table(scored.class_comparison_rows(), ["class", *[r.name for r in results]]))
