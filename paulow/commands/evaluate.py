"""`paulow evaluate`: score prediction folders, or models on images, against ground truth."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import UsageError
from ..evaluate import (
    CLASS_KEYS,
    OBJECT_KEYS,
    PIXEL_KEYS,
    THIN_KEYS,
    Scored,
    class_comparison_rows,
    class_rows,
    comparison_rows,
    files_of,
    mask_pages,
    score_pages,
)
from ..palette import Palette, find_palette, from_colours, palette_names, read_class_mask


def model_pages(
    model,
    image_paths: Sequence[Path],
    truth_paths: Sequence[Path],
    classes: int = 1,
    palette: Palette | None = None,
):
    """Predict each image with the standard inference (`model`: an `api.Model`), then yield
    (file, page, pred, truth); K >= 2 colour truth masks go through `palette`."""
    from ..io.pairing import pair_images_masks

    for image_path, truth_path in pair_images_masks(list(image_paths), list(truth_paths)):
        truth = read_class_mask(truth_path, classes, palette)
        for page, pred in enumerate(model.predict_stack(image_path)):
            yield truth_path.name, page, pred.mask, truth[page]


def model_classes(loaded, requested: int | None, model: Path) -> int:
    """The model's class count; a `--classes` that says otherwise is an error."""
    classes = int(loaded.meta.get("classes", 1))
    if requested is not None and requested != classes:
        raise UsageError(
            f"--classes {requested} but model '{Path(model).name}' has {classes} class(es): "
            "leave --classes out (the model's count is used)"
        )
    return classes


def _names(given: Sequence[str] | None, classes: int) -> list[str]:
    if given and len(given) == classes:
        return [str(n) for n in given]
    return [f"class {c}" for c in range(classes)]


def run(args, echo=print) -> int:
    from ..device import pick_device, use_threads
    from ..report import write_csv, write_json

    if not args.truth:
        raise UsageError("evaluate needs --truth (a folder or file of ground-truth masks)")
    truth = files_of(args.truth)
    truth_dir = args.truth if args.truth.is_dir() else args.truth.parent
    given = getattr(args, "palette", None)
    classes, names = args.classes or 1, getattr(args, "class_names", None)
    results: list[Scored] = []
    counts = {classes} if args.pred else set()
    palette = find_palette(truth_dir, classes, given) if args.pred else None
    names = names or palette_names(palette, classes)
    for pred in args.pred or []:
        results.append(
            score_pages(
                mask_pages(files_of(pred, predictions=True), truth, classes, palette),
                str(pred),
                classes,
                args.tolerance,
            )
        )
    if args.model:
        from ..api import load_model

        if not args.images:
            raise UsageError("--model needs --images (the images to segment before scoring)")
        device = pick_device(args.device or "auto")
        use_threads(device, getattr(args, "busy_cores", None))  # once, at the start
        for model in args.model:
            loaded = load_model(model, device)
            classes = model_classes(loaded, args.classes, model)
            counts.add(classes)
            stored = (
                from_colours(loaded.meta["palette"], source=f"the palette of model '{Path(model).name}'")
                if loaded.meta.get("palette")
                else None
            )
            palette = find_palette(truth_dir, classes, given, fallback=stored)
            names = names or loaded.meta.get("class_names") or palette_names(palette, classes)
            results.append(
                score_pages(
                    model_pages(loaded, files_of(args.images), truth, classes, palette),
                    Path(model).stem,
                    classes,
                    args.tolerance,
                )
            )
    if not results:
        raise UsageError("nothing to evaluate: pass --pred FOLDER (predicted masks) or --model + --images")
    if len(counts) > 1:
        raise UsageError(
            f"the predictions and models have different class counts ({sorted(counts)}): "
            "evaluate them separately, or give --classes for the prediction folders"
        )
    out = args.out or (args.truth if args.truth.is_dir() else args.truth.parent) / "evaluation"
    out.mkdir(parents=True, exist_ok=True)
    _print(results, classes, _names(names, classes), args.compare, echo)
    for r in results:
        write_csv(out / f"{Path(r.name).stem or 'prediction'}_per_image.csv", r.rows)
    write_csv(out / "pooled.csv", comparison_rows(results))
    write_json(
        out / "metrics.json",
        {
            r.name: {
                "pooled": r.pooled,
                "per_image": r.rows,
                "class_names": _names(names, classes) if classes > 1 else None,
            }
            for r in results
        },
    )
    echo(f"\nmetrics written to {out}")
    return 0


def _print(results: Sequence[Scored], classes: int, names: list[str], compare: bool, echo) -> None:
    """Per-image tables (with the per-class table for K >= 2), then the side-by-side comparison."""
    from ..report import format_table

    keys = list(CLASS_KEYS) if classes > 1 else [*PIXEL_KEYS, *OBJECT_KEYS, *THIN_KEYS]
    for r in results:
        if not compare or len(results) == 1:
            echo(f"\n{r.name}")
            echo(format_table(r.rows + [{"file": "POOLED", "page": "", **r.pooled}], ["file", "page", *keys]))
            if classes > 1:
                echo(
                    f"\nper class (pooled over {r.pooled['images']} image(s)); mIoU {r.pooled['miou']:.3f}, "
                    f"mPA {r.pooled['mpa']:.3f} over all classes"
                )
                echo(
                    format_table(class_rows(r.pooled, names), ["class", "dice", "iou", "precision", "recall"])
                )
    if compare or len(results) > 1:
        echo(format_table(comparison_rows(results), ["name", *keys]))
        if classes > 1:
            echo("\nDice per class")
            echo(format_table(class_comparison_rows(results, names), ["class", *[r.name for r in results]]))
