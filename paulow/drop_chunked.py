"""The drop folder's route for an image too large to hold: `use_model.py` segments it with the
chunked engine of `paulow predict --input` (`paulow.chunked_run`) and puts the outputs where the
whole-image path puts them (`NAME_mask.tif`, with --instances `NAME_labels.tif` and its rows in
objects.csv / summary.csv), so the run record and the clearing of the inputs stay as they are.

An image counts as too large to hold by the rule `paulow predict` uses to default to OME-Zarr (its
pixels take more than `chunked_run.LARGE_IMAGE_BYTES`), or when reading it whole would not fit the
memory available (the bound `paulow.io.check_declared_size` refuses it by). Only TIFFs go this way: other
formats cannot be read in pieces. The engine's intermediate files live in a hidden folder of the
results folder, so a killed run resumes with the chunks it had finished."""

from __future__ import annotations

import contextlib
import csv
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import tifffile

from .errors import UnreadableImageError, UsageError

log = logging.getLogger("paulow")
WORK_FOLDER = ".paulow-chunked"  # in the results folder; removed once a file's outputs are in place
TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8")


def too_large_to_hold(path: Path) -> bool:
    """Whether `use_model.py` segments `path` chunk by chunk (see the module docstring), from the
    TIFF header alone; False for other files and for a header that does not parse (the whole-image
    path then reads the file or says why not). An untiled TIFF that is too large is routed too: the
    engine then refuses it with the conversion that makes it readable in pieces."""
    import math

    import tifffile

    from . import chunked_run
    from .io.declared_size import FLOAT32_COPIES, decode_limit
    from .tiff_guard import TiffBoundError, count_pages

    if Path(path).suffix.lower() not in TIFF_SUFFIXES:
        return False
    try:
        count_pages(path)  # a looping or endless page chain is refused by the whole-image reader
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            shape, axes, itemsize = tuple(series.shape), series.axes, series.dtype.itemsize
    except (TiffBoundError, OSError, ValueError, IndexError, tifffile.TiffFileError):
        return False
    if "Y" not in axes or "X" not in axes:
        return False
    sizes = dict(zip(axes, shape))
    decoded = math.prod(shape) * itemsize
    page = sizes["Y"] * sizes["X"] * math.prod(sizes.get(a, 1) for a in "CS")
    copies = page * 4 * FLOAT32_COPIES
    return decoded > chunked_run.LARGE_IMAGE_BYTES or decoded + copies > decode_limit()


def _refuse_options(opts: Any, meta: dict, pages: int) -> None:
    """The options the chunked engine cannot honour, as one `UsageError` (the input is kept)."""
    asked = [
        flag
        for flag, on in (
            ("--save-prob", opts.save_prob),
            ("--overlay", opts.overlay),
            ("--rois", opts.rois),
            ("--geojson", opts.geojson),
            ("--save-attention", opts.save_attention),
            ("--split-touching", opts.split_touching),
            ("--runtime onnxruntime", opts.runtime != "torch"),
            ("--instances on a multi-class model", opts.instances and int(meta.get("classes", 1)) > 1),
            ("--instances on a stack without --per-page", opts.instances and pages > 1 and not opts.per_page),
        )
        if on
    ]
    if asked:
        raise UsageError(
            f"too large to hold in memory, so it is segmented chunk by chunk, which does not offer "
            f"{', '.join(asked)} - rerun without them (mask, --instances labels and object table are "
            "written), or crop the image into smaller files"
        )


def segment_large(model: Any, path: Path, out_dir: Path, opts: Any, read_as: Any) -> Any:
    """Segment `path` with the chunked engine (`model`: a `paulow.api.Model`); returns the drop folder's `FileResult` with the
    outputs under the whole-image path's names (free names: nothing is overwritten)."""
    from .lazy import open_lazy
    from .segment_outputs import FileResult

    try:
        image = open_lazy(Path(path))
    except UnreadableImageError as exc:  # e.g. untiled: the fix names the conversion
        raise UnreadableImageError(str(exc).removeprefix(f"{path}: ")) from None
    _refuse_options(opts, model.meta, image.pages)
    work = out_dir / WORK_FOLDER / Path(path).stem
    log.info(
        "%s: too large to hold in memory (%d x %d x %d px): segmented chunk by chunk",
        path.name,
        image.pages,
        image.height,
        image.width,
    )
    try:
        record = _run_engine(model, path, work, opts)
    except tifffile.TiffFileError as exc:  # a header that promises more than the file holds
        shutil.rmtree(work, ignore_errors=True)
        with contextlib.suppress(OSError):
            work.parent.rmdir()
        raise UnreadableImageError(
            f"cannot read: it declares {image.height} x {image.width} pixels but its pixel data is "
            f"damaged ({exc}) - copy or export the file again"
        ) from None
    settings = {k: record["settings"][k] for k in ("chunk", "tile", "overlap", "threshold", "min_size")}
    chunked = {**settings, "chunking": record["chunking"], "normalisation": record["normalisation"]}
    result = FileResult(source=path, read_as=read_as, chunked=chunked)
    outputs = [Path(p) for p in record["outputs"]]
    result.written.append(_move(outputs[0], out_dir / f"{path.stem}_mask.tif", image))
    if opts.instances:
        result.written.append(_move(outputs[1], out_dir / f"{path.stem}_labels.tif", image))
        result.objects, result.summary = _tables(outputs[2], path.name, image)
    shutil.rmtree(work, ignore_errors=True)
    with contextlib.suppress(OSError):  # other files' unfinished runs may still be in there
        work.parent.rmdir()
    return result


def _run_engine(model: Any, path: Path, work: Path, opts: Any) -> dict:
    """The engine's run into `work` (TIFF outputs, one process); a leftover of a run with other
    settings (another model or options) is discarded first, a killed run's chunks are kept."""
    from .chunked_run import predict_file
    from .dask_runner import TaskRunner

    def engine() -> dict:
        return predict_file(
            model,
            path,
            work,
            fmt="tiff",
            runner=TaskRunner("sync"),  # this process: the drop folder runs one file at a time
            threshold=opts.threshold,
            min_size=opts.min_size,
            tile=opts.tile,
            overlap=opts.overlap,
            batch_size=opts.batch_size,
            tta=opts.tta,
            device=opts.device,
            progress=True,
        )

    try:
        record = engine()
    except UsageError:
        if not work.exists():
            raise
        shutil.rmtree(work)  # only the engine's own intermediate files are there
        return engine()
    if not all(Path(p).exists() for p in record["outputs"]):  # killed while moving them: again
        shutil.rmtree(work)
        record = engine()
    return record


def _move(source: Path, target: Path, image: Any) -> Path:
    """Move an engine output to a free name beside the other results, after checking its header."""
    import tifffile

    from .errors import ModelError
    from .io.atomic import unique_path

    expected = (image.pages, image.height, image.width) if image.pages > 1 else (image.height, image.width)
    with tifffile.TiffFile(source) as tif:
        shape = tuple(tif.series[0].shape)
    if shape != expected:
        raise ModelError(f"output '{source.name}' did not read back correctly ({shape}): check the disk")
    final = unique_path(target)
    os.replace(source, final)
    return final


def _tables(csv_path: Path, name: str, image: Any) -> tuple[list[dict], list[dict]]:
    """objects.csv rows (the file and page first) and one summary.csv row per page."""
    with open(csv_path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    objects, area = [], [0] * image.pages
    for row in rows:
        page = int(row.pop("page", 0) or 0)
        area[page] += int(row["area_px"])
        objects.append({"file": name, "page": page, **row})
    counts = [sum(row["page"] == p for row in objects) for p in range(image.pages)]
    summary = [
        {
            "file": name,
            "page": p,
            "objects": counts[p],
            "foreground_fraction": area[p] / (image.height * image.width),
        }
        for p in range(image.pages)
    ]
    return objects, summary


__all__ = ["too_large_to_hold", "segment_large", "WORK_FOLDER"]
