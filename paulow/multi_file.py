"""Predicting a list of files with background I/O (`paulow.background`): the next file is read and
normalised while the network predicts the current one, and (for `segment_files`) the previous
file's mask is written meanwhile. Predictions, written files and their order equal the sequential
loop's (tests/test_background.py)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .background import BackgroundWriter, read_ahead


@dataclass
class PreparedImage:
    """A file read and normalised for a model: `data` the raw (pages, C, H, W) stack, `pages` the
    normalised float32 (C, H, W) network inputs, `resolution`/`unit` as read."""

    path: Path
    data: np.ndarray
    pages: list[np.ndarray]
    resolution: tuple[float, float] | None = None
    unit: str | None = None


def prepare_file(meta: dict, path: str | Path) -> PreparedImage:
    """Read `path` and normalise its pages as the model was trained (raises on an unreadable file)."""
    from .io.read import read_image
    from .predict import normalise_pages

    stack = read_image(Path(path))
    pages = list(normalise_pages(meta, stack.data, Path(path).name))
    return PreparedImage(Path(path), stack.data, pages, stack.resolution, stack.unit)


def predict_files(model: Any, paths: Sequence[str | Path], **options: Any) -> Iterator[tuple[Path, list]]:
    """Yield `(path, model.predict_stack(path, **options))` for each file in order, the next file
    being read and normalised in the background meanwhile."""
    for prepared, predictions in _predicted(model, paths, options):
        yield prepared.path, predictions


def segment_files(model: Any, paths: Sequence[str | Path], out_dir: str | Path, **options: Any) -> list[Path]:
    """Write `<stem>_mask.tif` into `out_dir` for each file (a free name: nothing is overwritten),
    the next file read and the previous mask written in background threads; the paths, in input
    order. Binary and boundary models: 0/255 masks; K >= 2: class indices with a colour table."""
    out_dir = Path(out_dir)
    written: list[Path] = []
    with BackgroundWriter() as writer:
        for prepared, predictions in _predicted(model, paths, options):
            writer.submit(
                _write, written, out_dir / f"{prepared.path.stem}_mask.tif", prepared, predictions, model
            )
    return written


def _predicted(
    model: Any, paths: Sequence[str | Path], options: dict
) -> Iterator[tuple[PreparedImage, list]]:
    for _, future in read_ahead([Path(p) for p in paths], lambda p: prepare_file(model.meta, p)):
        prepared = future.result()
        yield prepared, model.predict_stack(prepared, **options)


def _write(written: list[Path], target: Path, prepared: PreparedImage, predictions: list, model: Any) -> None:
    from .io.atomic import unique_path
    from .io.write import binary_to_uint8, write_label_tiff, write_mask

    masks = np.stack([p.mask for p in predictions])
    resolution, unit = prepared.resolution, prepared.unit
    path = unique_path(target)
    if model.classes <= 1 or predictions[0].boundary:
        written.append(write_mask(path, binary_to_uint8(masks), resolution=resolution, unit=unit))
    else:
        written.append(
            write_label_tiff(
                path,
                masks,
                model.classes,
                resolution=resolution,
                unit=unit,
                colours=model.meta.get("palette"),
            )
        )
