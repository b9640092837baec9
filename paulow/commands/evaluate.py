"""`paulow evaluate`: score prediction folders, or models on images, against ground truth."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import UsageError
from ..evaluate import OBJECT_KEYS, PIXEL_KEYS, THIN_KEYS, Scored, comparison_rows, files_of, mask_pages, score_pages


def model_pages(model_path: Path, image_paths: Sequence[Path], truth_paths: Sequence[Path], device: str):
    """Predict each image with the standard inference, then yield (file, page, pred, truth)."""
    from .. import io
    from ..api import load_model

    model = load_model(model_path, device)
    for image_path, truth_path in io.pair_images_masks(list(image_paths), list(truth_paths)):
        truth = io.read_mask(truth_path)
        for page, pred in enumerate(model.predict_stack(image_path)):
            yield truth_path.name, page, pred.mask, truth[page]


def run(args, echo=print) -> int:
    from ..report import format_table, write_csv, write_json
    from ..device import pick_device

    if not args.truth:
        raise UsageError("evaluate needs --truth (a folder or file of ground-truth masks)")
    truth = files_of(args.truth)
    results: list[Scored] = []
    for pred in args.pred or []:
        results.append(score_pages(mask_pages(files_of(pred, predictions=True), truth), str(pred), args.classes,
                                   args.tolerance))
    if args.model:
        if not args.images:
            raise UsageError("--model needs --images (the images to segment before scoring)")
        device = pick_device(args.device or "auto")
        for model in args.model:
            results.append(score_pages(model_pages(model, files_of(args.images), truth, device),
                                       Path(model).stem, args.classes, args.tolerance))
    if not results:
        raise UsageError("nothing to evaluate: pass --pred FOLDER (predicted masks) or --model + --images")
    out = args.out or (args.truth if args.truth.is_dir() else args.truth.parent) / "evaluation"
    out.mkdir(parents=True, exist_ok=True)
    columns = ["file", "page", *PIXEL_KEYS, *OBJECT_KEYS, *THIN_KEYS]
    for r in results:
        if not args.compare or len(results) == 1:
            echo(f"\n{r.name}")
            echo(format_table(r.rows + [{"file": "POOLED", "page": "", **r.pooled}], columns))
        stem = Path(r.name).stem or "prediction"
        write_csv(out / f"{stem}_per_image.csv", r.rows)
    pooled = comparison_rows(results)
    if args.compare or len(results) > 1:
        echo(format_table(pooled, ["name", *PIXEL_KEYS, *OBJECT_KEYS, *THIN_KEYS]))
    write_csv(out / "pooled.csv", pooled)
    write_json(out / "metrics.json", {r.name: {"pooled": r.pooled, "per_image": r.rows} for r in results})
    echo(f"\nmetrics written to {out}")
    return 0
