"""`use_model.py` / `paulow predict`: segment every image in INPUT_IMAGES with a saved model.

The outputs one image gets are written by `paulow.segment_outputs`; this module runs the command:
the workspace, the model, the files in turn (each rank its share under torchrun), the run record."""

from __future__ import annotations

import datetime as _dt
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

from .. import distributed, run_records
from ..errors import ModelError, PaulowError
from ..io.listing import list_unusable
from ..predict import choose_threshold, match_channels, predict_pages  # noqa: F401 (re-exported)
from ..segment_outputs import (  # noqa: F401 (re-exported: SegmentOptions, FileResult, class_names)
    FileResult,
    SegmentOptions,
    class_names,
    save_attention,
    write_extras,
    write_mask_output,
)
from ..workspace import Workspace, fingerprint
from .common import choose_model, consume_inputs, file_error, main_lock, quiet, require_writable


def predict_stack(loaded, data: np.ndarray, opts: SegmentOptions, name: str = "image") -> list[np.ndarray]:
    """Probabilities (K, H, W) for every page of a (pages, C, H, W) stack."""
    return predict_pages(
        loaded.models,
        loaded.meta,
        data,
        tile=opts.tile,
        overlap=opts.overlap,
        batch_size=opts.batch_size,
        device=opts.device,
        tta=opts.tta,
        name=name,
        runtime=opts.runtime,
    )


def read_input(path: Path) -> tuple:
    """(fingerprint, stack) of an input; the fingerprint first: a file replaced from here on is never
    cleared. The stack is None for an image too large to hold (segmented chunk by chunk)."""
    from ..drop_chunked import too_large_to_hold
    from ..io.read import read_image

    read_as = fingerprint(path)
    return read_as, None if too_large_to_hold(path) else read_image(path)


def segment_file(loaded, path: Path, out_dir: Path, opts: SegmentOptions, read=None) -> FileResult:
    """Segment one file (all pages) and write its outputs atomically; raise on a bad file. `read`:
    a future of `read_input(path)` started in the background (`paulow.background.read_ahead`)."""
    from ..boundaries import is_boundary_model, object_mask
    from ..io.read import read_mask
    from ..object_size import choose_min_size, mask_without_small
    from ..postprocess import to_mask

    read_as, stack = read.result() if read is not None else read_input(path)
    if stack is None:  # too large to hold: the chunked engine of `paulow predict --input`
        from ..drop_chunked import segment_large

        return segment_large(loaded, path, out_dir, opts, read_as)
    probs = predict_stack(loaded, stack.data, opts, path.name)
    threshold = choose_threshold(loaded.meta, opts.threshold)
    boundary = is_boundary_model(loaded.meta)  # its mask: the objects, interior and boundary ring together
    masks = [object_mask(p, threshold) if boundary else to_mask(p, threshold) for p in probs]
    opts = replace(opts, min_size=choose_min_size(loaded.meta, opts.min_size))
    if opts.min_size and (loaded.classes <= 1 or boundary):  # specks smaller than any object it learnt
        masks = [mask_without_small(m, opts.min_size) for m in masks]
    result = FileResult(source=path, read_as=read_as)
    out = np.stack(masks)
    mask_path = write_mask_output(loaded, stack, out, path, out_dir, boundary)
    result.written.append(mask_path)
    write_extras(stack, probs, masks, out_dir, opts, result, loaded.meta)
    if opts.save_attention:
        save_attention(loaded, stack, opts, out_dir, result)
    check = read_mask(mask_path)
    if check.shape != out.shape:
        raise ModelError(f"output '{mask_path}' did not read back correctly: check the disk")
    return result


def options_from_args(args, device: str) -> SegmentOptions:
    return SegmentOptions(
        tile=args.tile,
        overlap=args.overlap,
        batch_size=args.batch_size or 8,
        threshold=args.threshold,
        tta=args.tta,
        device=device,
        save_prob=args.save_prob,
        overlay=args.overlay,
        instances=args.instances or getattr(args, "rois", False) or getattr(args, "geojson", False),
        per_page=bool(getattr(args, "per_page", False)),
        split_touching=args.split_touching,
        rois=getattr(args, "rois", False),
        geojson=getattr(args, "geojson", False),
        save_attention=args.save_attention,
        compile=bool(getattr(args, "compile", False)),
        min_size=getattr(args, "min_size", None),
        runtime=getattr(args, "runtime", "torch"),
    )


def run(args, echo=print) -> int:
    """The whole predict command; returns the exit code (non-zero when any file failed).

    Under torchrun (see `paulow.distributed`) each rank segments its share of the files (round
    robin by sorted name); rank 0 alone prompts, holds the workspace lock, writes the tables and
    the run record and clears the inputs, once every rank's outputs are in and verified."""
    from ..checkpoint import load_checkpoint, sha256_file
    from ..io.atomic import unique_path
    from ..pair_loading import load_images

    ws, device = _open_workspace(args)
    main = distributed.is_main()
    echo = echo if main else quiet
    model_path = distributed.on_main(lambda: choose_model(ws.models, args.model, args.yes))
    loaded = distributed.main_first(lambda: load_checkpoint(model_path, device))
    _boundary_hint(loaded, args, echo)
    images = distributed.on_main(lambda: load_images(ws.use_inputs))
    unusable = [FileResult(source=p, error=why) for p, why in list_unusable(ws.use_inputs)] if main else []
    for r in unusable:
        assert r.error is not None  # set just above
        file_error(r.source, r.error)
    opts = _tuned_options(args, device, loaded, images, echo)
    echo(
        f"model: {model_path.name} ({loaded.meta.get('arch')}, {len(loaded.models)} member(s)); "
        f"{len(images)} file(s) to segment on {device}"
        + (f" and {distributed.world_size() - 1} more process(es)" if distributed.active() else "")
    )
    started = f"{_dt.datetime.now():%Y-%m-%d %H:%M:%S}"
    model_sha = sha256_file(model_path) if main else ""
    with main_lock(ws):
        record = unique_path(
            ws.use_outputs / "runs" / f"segment_{started.replace(':', '').replace(' ', '_')}.json"
        )
        write_record = partial(
            _write_run_record,
            path=record,
            model_path=model_path,
            model_sha=model_sha,
            loaded=loaded,
            opts=opts,
            args=args,
            started=started,
        )
        # rank 0 reads the killed runs' records before anyone writes (the others get its answer)
        earlier = distributed.on_main(lambda: _unfinished_outputs(ws.use_outputs, model_sha, opts))
        results = _segment_all(loaded, images, ws, opts, earlier, list(unusable), write_record, echo)
        if distributed.active():
            results = _collect(distributed.gather(results), images)
        if not main:
            return 0
        return _conclude(results, ws, opts, args, record, write_record, echo)


def _open_workspace(args) -> tuple[Workspace, str]:
    """The workspace and the device, the process group joined; rank 0 checks the folders first."""
    from ..device import pick_device, use_threads

    ws = Workspace(Path(args.root))
    device = distributed.local_device(pick_device(args.device or "auto"))
    use_threads(device, getattr(args, "busy_cores", None))  # once, at the start
    distributed.init(device)
    distributed.main_first(lambda: ws.require(ws.use_inputs))
    distributed.on_main(lambda: run_records.require_runs_folder(ws.use_outputs))
    if distributed.is_main():
        ws.use_outputs.mkdir(parents=True, exist_ok=True)
    distributed.on_main(lambda: require_writable(ws, ws.use_outputs, [ws.use_inputs], args.keep_inputs))
    return ws, device


def _boundary_hint(loaded, args, echo) -> None:
    from ..boundaries import is_boundary_model

    if is_boundary_model(loaded.meta) and not (
        args.instances or getattr(args, "rois", False) or getattr(args, "geojson", False)
    ):
        echo(
            "this model learnt object boundaries: add --instances for labelled objects (touching ones "
            "separated) beside the masks"
        )


def _tuned_options(args, device: str, loaded, images: list[Path], echo) -> SegmentOptions:
    """The command line's options with the device probe's tile and batch size (and the network
    compiled with --compile); `loaded.models` is replaced by the tuned (compiled) networks."""
    from ..device_probe import tune_options

    opts = options_from_args(args, device)
    opts, loaded.models = tune_options(opts, loaded.models, loaded.meta, images, args.batch_size, echo)
    if opts.compile:
        from ..inference_networks import compile_for_inference

        loaded.models = [compile_for_inference(m) for m in loaded.models]
        echo("--compile: the network compiles on the first batch (20-60 s)")
    return opts


def _segment_all(
    loaded, images: list[Path], ws: Workspace, opts: SegmentOptions, earlier, results, write_record, echo
) -> list[FileResult]:
    """Segment this rank's share of `images` in turn, appended to `results`; a file's own failure
    is recorded and the run goes on. Rank 0 rewrites the run record after every file."""
    from tqdm.auto import tqdm

    from ..background import read_ahead

    main = distributed.is_main()
    mine = distributed.shard(images, key=lambda p: p.stem)  # same stem, same rank: no name races
    reads = read_ahead(mine, read_input)  # the next file is read while this one is predicted
    for path, read in tqdm(
        reads, total=len(mine), desc="segmenting", unit="file", disable=None if main else True
    ):
        note = (lambda pending: write_record(results + [pending], finished=False)) if main else None
        try:
            with run_records.recording(FileResult(source=path), ws.use_outputs, note):
                results.append(
                    _reuse(path, earlier, ws.use_outputs, echo)
                    or segment_file(loaded, path, ws.use_outputs, opts, read)
                )
        except (PaulowError, OSError) as exc:
            why = str(exc) if isinstance(exc, PaulowError) else _refused_alone(path, exc)
            file_error(path, why)
            results.append(FileResult(source=path, error=why))
        if main:  # after every file: a killed run's masks stay known (see _unfinished_outputs)
            write_record(results, finished=False)
    return results


def _conclude(
    results: list[FileResult], ws: Workspace, opts: SegmentOptions, args, record: Path, write_record, echo
) -> int:
    """Rank 0, every result in: the tables, the run record, the inputs cleared, the record finished
    and settled; returns the exit code."""
    tables = _write_tables(results, ws.use_outputs, opts)
    tables.append(write_record(results, finished=False))
    code = _finish(results, tables, args, echo)
    # finished only once the inputs are cleared: a run killed while clearing is still resumable
    write_record(results, finished=True)
    ok = [r for r in results if r.error is None]
    run_records.settle(
        ws.use_outputs,
        record,
        [r.read_as.sha256 for r in ok if r.read_as],
        [w.name for r in ok for w in r.written],
    )
    return code


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


def _unfinished_outputs(
    out_dir: Path, model_sha: str, opts: SegmentOptions
) -> dict[str, run_records.Earlier]:
    """Outputs of runs that were killed before finishing, with the same model and options, by the
    SHA-256 of the input that made them (see `paulow.run_records`)."""
    if opts.instances:  # their object tables died with the run: segment again
        return {}
    return run_records.unfinished_outputs(out_dir, model_sha, _options_record(opts))


def _reuse(path: Path, earlier: dict[str, run_records.Earlier], out_dir: Path, echo) -> FileResult | None:
    """The outputs a killed run already wrote for exactly this input, instead of segmenting it again
    (only while each is still the file, with the content, that run recorded)."""
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


def _options_record(opts: SegmentOptions) -> dict:
    from dataclasses import asdict

    return {k: v for k, v in asdict(opts).items() if k != "device"}


def _collect(shares: list[list[FileResult]], images: list[Path]) -> list[FileResult]:
    """Every rank's results in the order of `images`; a result whose outputs are not all on disk
    (as rank 0 sees them) becomes an error, so its input is kept."""
    order = {path: i for i, path in enumerate(images)}  # files that are no images first, as without torchrun
    results = sorted((r for share in shares for r in share), key=lambda r: order.get(r.source, -1))
    for r in results:
        missing = [w.name for w in r.written if not w.is_file()]
        if r.error is None and missing:
            r.error = f"output(s) {', '.join(missing)} missing after segmenting: check the disk"
    return results


def _write_run_record(
    results: list[FileResult],
    path: Path,
    model_path: Path,
    model_sha: str,
    loaded,
    opts: SegmentOptions,
    args,
    started: str,
    finished: bool,
) -> Path:
    """`runs/segment_<time>.json`: which model (and its SHA-256), threshold and options made which
    outputs from which inputs, so a mask can be traced back long after the inputs were cleared.
    Rewritten (atomically) after every file; `finished` is null until the run ends."""
    from .. import __version__
    from ..report import write_json
    from .common import effective_options

    meta = loaded.meta
    threshold = choose_threshold(meta, opts.threshold)
    record = {
        "started": started,
        "finished": f"{_dt.datetime.now():%Y-%m-%d %H:%M:%S}" if finished else None,
        "paulow_version": __version__,
        "model": {
            "file": model_path.name,
            "sha256": model_sha,
            "name": meta.get("name"),
            "arch": meta.get("arch"),
            "saved": meta.get("date"),
            "members": len(loaded.models),
        },
        "threshold": threshold,
        "device": opts.device,
        "options": effective_options(args),
        "segment_options": _options_record(opts),
        "files": [
            {
                "input": r.source.name,
                "input_sha256": r.read_as.sha256 if r.read_as else None,
                "outputs": [w.name for w in r.written],
                "outputs_sha256": run_records.output_hashes(r),
                "error": r.error,
                **({"chunked": r.chunked} if r.chunked else {}),
            }
            for r in results
        ],
    }
    return write_json(path, record)


def _write_tables(results: list[FileResult], out_dir: Path, opts: SegmentOptions) -> list[Path]:
    """The per-object and per-image CSVs of this run (with --instances)."""
    from ..io.atomic import unique_path
    from ..report import write_csv

    if not opts.instances:
        return []
    written = []
    for name, key in (("objects.csv", "objects"), ("summary.csv", "summary")):
        path = unique_path(out_dir / name)
        write_csv(path, [row for r in results for row in getattr(r, key)])
        written.append(path)
    return written


def _finish(results: list[FileResult], tables: list[Path], args, echo) -> int:
    ok = [r for r in results if r.error is None]
    failed = [r for r in results if r.error is not None]
    written = [w for r in ok for w in r.written] + tables
    echo(f"wrote {len(written)} file(s):")
    for w in written:
        echo(f"  {w}")
    consume_inputs({r.source: r.read_as for r in ok}, args.keep_inputs, "INPUT_IMAGES", echo)
    if failed:
        echo(f"{len(failed)} file(s) failed and were kept in INPUT_IMAGES:")
        for r in failed:
            echo(f"  {r.source.name}: {r.error}")
        return 1
    return 0
