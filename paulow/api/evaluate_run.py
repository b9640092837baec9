"""Score prediction folders, or models on images, against a folder of ground-truth masks (`paulow evaluate`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import UsageError

if TYPE_CHECKING:  # imported late: `import paulow.api` stays light
    from ..evaluate import Scored
    from ..palette import Palette
    from .model import Model


@dataclass(frozen=True)
class EvaluationRun:
    """The scores of each prediction folder and model (in the order given), their class count
    and the class names (one per class)."""

    results: tuple[Scored, ...]
    classes: int
    names: tuple[str, ...]

    @property
    def keys(self) -> list[str]:
        """The score columns of the tables: per-class means for K >= 2, else pixel, object and thin scores."""
        from ..evaluate import CLASS_KEYS, OBJECT_KEYS, PIXEL_KEYS, THIN_KEYS

        return list(CLASS_KEYS) if self.classes > 1 else [*PIXEL_KEYS, *OBJECT_KEYS, *THIN_KEYS]

    def comparison_rows(self) -> list[dict]:
        """One row of pooled scores per prediction folder or model."""
        from ..evaluate import comparison_rows

        return comparison_rows(self.results)

    def class_rows(self, result: Scored) -> list[dict]:
        """One row per class of `result`'s pooled scores (dice, iou, precision, recall)."""
        from ..evaluate import class_rows

        return class_rows(result.pooled, list(self.names))

    def class_comparison_rows(self) -> list[dict]:
        """The Dice of each class (rows) for each prediction folder or model (columns)."""
        from ..evaluate import class_comparison_rows

        return class_comparison_rows(self.results, list(self.names))


def model_pages(
    model: Model,
    image_paths: Sequence[Path],
    truth_paths: Sequence[Path],
    classes: int = 1,
    palette: Palette | None = None,
) -> Iterator[tuple[str, int, np.ndarray, np.ndarray]]:
    """Predict each image with the standard inference (`model`: an `api.Model`), then yield
    (file, page, pred, truth); K >= 2 colour truth masks go through `palette`."""
    from ..io.pairing import pair_images_masks
    from ..palette import read_class_mask

    for image_path, truth_path in pair_images_masks(list(image_paths), list(truth_paths)):
        truth = read_class_mask(truth_path, classes, palette)
        for page, pred in enumerate(model.predict_stack(image_path)):
            yield truth_path.name, page, pred.mask, truth[page]


def model_classes(loaded: Model, requested: int | None, model: Path) -> int:
    """The model's class count; a `--classes` that says otherwise is an error."""
    classes = int(loaded.meta.get("classes", 1))
    if requested is not None and requested != classes:
        raise UsageError(
            f"--classes {requested} but model '{Path(model).name}' has {classes} class(es): "
            "leave --classes out (the model's count is used)"
        )
    return classes


def _names(given: Sequence[str] | None, classes: int) -> tuple[str, ...]:
    if given and len(given) == classes:
        return tuple(str(n) for n in given)
    return tuple(f"class {c}" for c in range(classes))


def evaluate_run(
    truth: Path,
    *,
    predictions: Sequence[Path] = (),
    models: Sequence[Path] = (),
    images: Path | None = None,
    classes: int | None = None,
    class_names: Sequence[str] | None = None,
    palette: Path | None = None,
    tolerance: float = 1.0,
    device: str | None = None,
) -> EvaluationRun:
    """Score each folder (or file) of predicted masks in `predictions`, and each model file in
    `models` run on `images`, against the masks in `truth` (a folder or one file).

    `classes` (default 1; a model's own count for models) reads K >= 2 colour masks through
    `palette` (default: `palette.txt` beside the truth, else the model's); `tolerance` (px) for
    the thin-structure scores; `device` runs the models ("auto" by default).
    """
    from ..evaluate import files_of, mask_pages, score_pages
    from ..palette import find_palette, palette_names

    truth_files = files_of(truth)
    truth_dir = truth if truth.is_dir() else truth.parent
    count = classes or 1
    results: list[Scored] = []
    counts = {count} if predictions else set()
    found = find_palette(truth_dir, count, palette) if predictions else None
    names: Sequence[str] | None = class_names or palette_names(found, count)
    for pred in predictions:
        pages = mask_pages(files_of(pred, predictions=True), truth_files, count, found)
        results.append(score_pages(pages, str(pred), count, tolerance))
    if models:
        if images is None:
            raise UsageError("--model needs --images (the images to segment before scoring)")
        count, names = _score_models(
            results,
            counts,
            models,
            images,
            truth_files,
            truth_dir,
            classes,
            names,
            palette,
            tolerance,
            device,
        )
    if not results:
        raise UsageError("nothing to evaluate: pass --pred FOLDER (predicted masks) or --model + --images")
    if len(counts) > 1:
        raise UsageError(
            f"the predictions and models have different class counts ({sorted(counts)}): "
            "evaluate them separately, or give --classes for the prediction folders"
        )
    return EvaluationRun(tuple(results), count, _names(names, count))


def _score_models(
    results: list[Scored],
    counts: set[int],
    models: Sequence[Path],
    images: Path,
    truth_files: list[Path],
    truth_dir: Path,
    requested: int | None,
    names: Sequence[str] | None,
    given: Path | None,
    tolerance: float,
    device: str | None,
) -> tuple[int, Sequence[str] | None]:
    """Append each model's scores to `results` and its class count to `counts`; return the last
    model's class count and the class names (the first found)."""
    from ..device import pick_device
    from ..evaluate import files_of, score_pages
    from ..palette import find_palette, from_colours, palette_names
    from .model import load_model

    where = pick_device(device or "auto")
    classes = requested or 1
    for model in models:
        loaded = load_model(model, where)
        classes = model_classes(loaded, requested, model)
        counts.add(classes)
        stored = (
            from_colours(loaded.meta["palette"], source=f"the palette of model '{Path(model).name}'")
            if loaded.meta.get("palette")
            else None
        )
        palette = find_palette(truth_dir, classes, given, fallback=stored)
        names = names or loaded.meta.get("class_names") or palette_names(palette, classes)
        pages = model_pages(loaded, files_of(images), truth_files, classes, palette)
        results.append(score_pages(pages, Path(model).stem, classes, tolerance))
    return classes, names


def write_evaluation(run: EvaluationRun, out: Path) -> Path:
    """Write `<name>_per_image.csv` for each result, `pooled.csv` and `metrics.json` into `out`
    (created); return `out`."""
    from ..report import write_csv, write_json

    out.mkdir(parents=True, exist_ok=True)
    for r in run.results:
        write_csv(out / f"{Path(r.name).stem or 'prediction'}_per_image.csv", r.rows)
    write_csv(out / "pooled.csv", run.comparison_rows())
    write_json(
        out / "metrics.json",
        {
            r.name: {
                "pooled": r.pooled,
                "per_image": r.rows,
                "class_names": list(run.names) if run.classes > 1 else None,
            }
            for r in run.results
        },
    )
    return out


def score_masks(
    pages: Iterable[tuple[str, int, np.ndarray, np.ndarray]],
    name: str = "prediction",
    classes: int = 1,
    tolerance: float = 1.0,
) -> Scored:
    """Score (file, page, predicted mask, truth mask) pages as `evaluate_run` does: per-page rows and
    pooled scores (binary when `classes` == 1; `tolerance` px for the thin-structure scores)."""
    from ..evaluate import score_pages

    return score_pages(pages, name, classes, tolerance)


def class_scores(pooled: dict, names: Sequence[str]) -> list[dict]:
    """One row per class (named by `names`) of a K >= 2 result's pooled scores."""
    from ..evaluate import class_rows

    return class_rows(pooled, names)
