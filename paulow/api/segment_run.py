"""Segmenting a drop folder's files with a loaded `Model`: one file, the folder's files in turn
(`segment_all`), and the settings for a folder.

`segment_file` reads a file, predicts every page, makes masks through the API's one path
(`predictions_from`: the same masks as `Model.predict_stack`) and writes the outputs the options ask
for (`paulow.segment_outputs`); an image too large to hold goes through the chunked engine. No
prompts, no workspace, no printing (the settings' reasons go to `echo`)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ModelError
from ..segment_outputs import (
    FileResult,
    SegmentOptions,
    class_names,
    save_attention,
    write_extras,
    write_mask_output,
)
from ..workspace import Fingerprint, fingerprint
from .model import Model
from .prediction import Prediction, predictions_from

if TYPE_CHECKING:
    from ..io.stack import ImageStack

Echo = Callable[[str], None]

__all__ = [
    "FileResult",
    "SegmentOptions",
    "boundary_hint",
    "class_names",
    "choose_folder_settings",
    "predict_pages_of",
    "read_input",
    "segment_all",
    "segment_file",
]


def read_input(path: Path) -> tuple[Fingerprint, ImageStack | None]:
    """(fingerprint, stack) of an input; the fingerprint first: a file replaced from here on is never
    cleared. The stack is None for an image too large to hold (segmented chunk by chunk)."""
    from ..drop_chunked import too_large_to_hold
    from ..io.read import read_image

    read_as = fingerprint(path)
    return read_as, None if too_large_to_hold(path) else read_image(path)


def predict_pages_of(
    model: Model, data: np.ndarray, opts: SegmentOptions, name: str = "image"
) -> list[Prediction]:
    """One `Prediction` per page of a raw (pages, C, H, W) stack, with the options' tiles, device,
    runtime, threshold and smallest object (masks as `Model.predict_stack` makes them)."""
    from ..predict import predict_pages

    probs = predict_pages(
        model.networks,
        model.meta,
        data,
        tile=opts.tile,
        overlap=opts.overlap,
        batch_size=opts.batch_size,
        device=opts.device,
        tta=opts.tta,
        name=name,
        runtime=opts.runtime,
    )
    return predictions_from(model.meta, probs, data, opts.threshold, opts.min_size)


def segment_file(
    model: Model, path: Path, out_dir: Path, opts: SegmentOptions, read: Future | None = None
) -> FileResult:
    """Segment one file (all pages) and write its outputs atomically into `out_dir`; raise on a bad
    file. `read`: a future of `read_input(path)` started in the background (`paulow.background`)."""
    from ..boundaries import is_boundary_model
    from ..io.read import read_mask
    from ..object_size import choose_min_size

    read_as, stack = read.result() if read is not None else read_input(path)
    if stack is None:  # too large to hold: the chunked engine of `paulow predict --input`
        from ..drop_chunked import segment_large

        return segment_large(model, path, out_dir, opts, read_as)
    preds = predict_pages_of(model, stack.data, opts, path.name)
    probs, masks = [p.probabilities for p in preds], [p.mask for p in preds]
    opts = replace(opts, min_size=choose_min_size(model.meta, opts.min_size))
    result = FileResult(source=path, read_as=read_as)
    out = np.stack(masks)
    mask_path = write_mask_output(model, stack, out, path, out_dir, is_boundary_model(model.meta))
    result.written.append(mask_path)
    write_extras(stack, probs, masks, out_dir, opts, result, model.meta)
    if opts.save_attention:
        save_attention(model, stack, opts, out_dir, result)
    check = read_mask(mask_path)
    if check.shape != out.shape:
        raise ModelError(f"output '{mask_path}' did not read back correctly: check the disk")
    return result


def choose_folder_settings(
    model: Model, opts: SegmentOptions, images: list[Path], given_batch: int | None, echo: Echo
) -> SegmentOptions:
    """`opts` with the device probe's tile and batch size for segmenting `images` (`--tile` and
    `given_batch` kept; the reason goes to `echo`); the model's networks are replaced by the tuned
    ones, compiled with `opts.compile`."""
    from ..device_probe import tune_options

    opts, model.networks = tune_options(opts, model.networks, model.meta, images, given_batch, echo)
    if opts.compile:
        from ..inference_networks import compile_for_inference

        model.networks = [compile_for_inference(m) for m in model.networks]
        echo("--compile: the network compiles on the first batch (20-60 s)")
    return opts


def boundary_hint(model: Model, instances: bool) -> str | None:
    """What to say when a boundary model segments without labelled objects asked for."""
    from ..boundaries import is_boundary_model

    if is_boundary_model(model.meta) and not instances:
        return (
            "this model learnt object boundaries: add --instances for labelled objects (touching ones "
            "separated) beside the masks"
        )
    return None


def segment_all(
    model: Model,
    images: list[Path],
    out_dir: Path,
    opts: SegmentOptions,
    earlier: dict,
    results: list[FileResult],
    write_record: Callable[[list[FileResult], bool], Path],
    on_error: Callable[[Path, str], None],
    echo: Echo,
) -> list[FileResult]:
    """Segment this rank's share of `images` in turn (round robin by stem under torchrun), appended
    to `results`: outputs a killed run left for exactly this input are kept (`earlier`), a file's
    own failure goes to `on_error` and the run goes on. Rank 0 rewrites the run record
    (`write_record(results, finished=False)`) before each output is renamed into place and after
    every file, so a killed run's masks stay known."""
    from tqdm.auto import tqdm

    from .. import distributed, run_records
    from ..background import read_ahead
    from ..errors import PaulowError

    main = distributed.is_main()
    mine = distributed.shard(images, key=lambda p: p.stem)  # same stem, same rank: no name races
    reads = read_ahead(mine, read_input)  # the next file is read while this one is predicted
    for path, read in tqdm(
        reads, total=len(mine), desc="segmenting", unit="file", disable=None if main else True
    ):
        note = (lambda pending: write_record(results + [pending], False)) if main else None
        try:
            with run_records.recording(FileResult(source=path), out_dir, note):
                results.append(
                    _reuse(path, earlier, out_dir, echo) or segment_file(model, path, out_dir, opts, read)
                )
        except (PaulowError, OSError) as exc:
            why = str(exc) if isinstance(exc, PaulowError) else _refused_alone(path, exc)
            on_error(path, why)
            results.append(FileResult(source=path, error=why))
        if main:
            write_record(results, False)
    return results


def _refused_alone(path: Path, exc: OSError) -> str:
    """Why one file failed for a reason of its own (a name too long for its outputs, the file removed
    mid-run); anything else (a full disk, a read-only folder) re-raised, to stop the run."""
    import errno

    if exc.errno == errno.ENAMETOOLONG:
        return (
            f"the name is too long for its output names ({len(path.name.encode())} bytes; file names may "
            "have 255) - rename it shorter"
        )
    if exc.errno == errno.ENOENT and not path.exists():
        return "it was removed while the run went on - put it back and rerun to segment it"
    raise exc


def _reuse(path: Path, earlier: dict, out_dir: Path, echo: Echo) -> FileResult | None:
    """The outputs a killed run already wrote for exactly this input, instead of segmenting it again
    (only while each is still the file, with the content, that run recorded)."""
    from .. import run_records

    if not earlier:
        return None
    read_as = fingerprint(path)
    found = earlier.get(read_as.sha256)
    if found is None or not run_records.still_there(found):
        return None
    echo(
        f"{path.name}: kept {', '.join(o.name for o in found.outputs)} from an interrupted run (same input, "
        "model and options)"
    )
    return FileResult(
        source=path, written=list(found.outputs), read_as=read_as, written_sha256=list(found.sha256)
    )
