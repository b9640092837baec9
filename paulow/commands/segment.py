"""`use_model.py` / `paulow predict`: segment every image in INPUT_IMAGES with a saved model.

The command holds the prompts, the workspace (folders, lock, clearing the inputs once every output is
verified) and the console; segmenting, the run record and torchrun's processes are `paulow.api`'s
(`paulow.api.segment_run`, `paulow.api.segment_folder`)."""

from __future__ import annotations

from pathlib import Path

from ..api import (  # noqa: F401 (SegmentOptions, FileResult, class_names, segment_file re-exported)
    FileResult,
    RunRecord,
    SegmentOptions,
    boundary_hint,
    choose_folder_settings,
    class_names,
    folder_inputs,
    gather_results,
    is_main,
    load_for_segmenting,
    main_first,
    on_main,
    other_processes,
    require_runs_folder,
    segment_all,
    segment_file,
    settle_run,
    start_processes,
    unfinished_outputs,
    use_threads,
    write_tables,
)
from ..workspace import Workspace
from .common import (
    choose_model,
    consume_inputs,
    effective_options,
    file_error,
    main_lock,
    quiet,
    require_writable,
)


def options_from_args(args, device: str) -> SegmentOptions:
    """The command line's segmenting options (tile and batch size measured later, on the device)."""
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
    ws, device = _open_workspace(args)
    main = is_main()
    echo = echo if main else quiet
    model_path = on_main(lambda: choose_model(ws.models, args.model, args.yes))
    model = load_for_segmenting(model_path, device)
    opts = options_from_args(args, device)
    hint = boundary_hint(model, opts.instances)
    if hint:
        echo(hint)
    images, unusable = folder_inputs(ws.use_inputs)
    for r in unusable:
        assert r.error is not None  # a file that is no image
        file_error(r.source, r.error)
    opts = choose_folder_settings(model, opts, images, args.batch_size, echo)
    others = other_processes()
    echo(
        f"model: {model_path.name} ({model.meta.get('arch')}, {len(model.networks)} member(s)); "
        f"{len(images)} file(s) to segment on {device}"
        + (f" and {others} more process(es)" if others is not None else "")
    )
    with main_lock(ws):
        record = RunRecord.begin(ws.use_outputs, model_path, model, opts, effective_options(args))
        # rank 0 reads the killed runs' records before anyone writes (the others get its answer)
        earlier = unfinished_outputs(ws.use_outputs, record.model_sha, opts)
        results = segment_all(
            model, images, ws.use_outputs, opts, earlier, list(unusable), record.write, file_error, echo
        )
        results = gather_results(results, images)
        if not main:
            return 0
        return _conclude(results, ws, opts, args, record, echo)


def _open_workspace(args) -> tuple[Workspace, str]:
    """The workspace and the device, the process group joined; rank 0 checks the folders first."""
    ws = Workspace(Path(args.root))
    device = start_processes(args.device)
    use_threads(device, getattr(args, "busy_cores", None))  # once, at the start
    main_first(lambda: ws.require(ws.use_inputs))
    on_main(lambda: require_runs_folder(ws.use_outputs))
    if is_main():
        ws.use_outputs.mkdir(parents=True, exist_ok=True)
    on_main(lambda: require_writable(ws, ws.use_outputs, [ws.use_inputs], args.keep_inputs))
    return ws, device


def _conclude(
    results: list[FileResult], ws: Workspace, opts: SegmentOptions, args, record: RunRecord, echo
) -> int:
    """Rank 0, every result in: the tables, the run record, the inputs cleared, the record finished
    and settled; returns the exit code."""
    tables = write_tables(results, ws.use_outputs, opts)
    tables.append(record.write(results, finished=False))
    code = _finish(results, tables, args, echo)
    # finished only once the inputs are cleared: a run killed while clearing is still resumable
    record.write(results, finished=True)
    settle_run(ws.use_outputs, record.path, results)
    return code


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
