"""`use_model.py` / `paulow predict`: segment every image in INPUT_IMAGES with a saved model."""

from __future__ import annotations

import datetime as _dt
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .. import distributed, run_records
from ..errors import ModelError, PaulowError
from ..io import list_unusable
from ..predict import choose_threshold, match_channels, predict_pages  # noqa: F401 (re-exported)
from ..workspace import Fingerprint, Workspace, fingerprint
from .common import choose_model, consume_inputs, file_error, main_lock, quiet, require_writable

log = logging.getLogger("paulow")


@dataclass
class SegmentOptions:
    """How to segment (defaults come from the model file)."""

    tile: int | None = None
    overlap: float | None = None
    batch_size: int = 8
    threshold: float | None = None
    tta: bool = False
    device: str = "cpu"
    save_prob: bool = False
    overlay: bool = False
    instances: bool = False
    per_page: bool = False  # --instances on a stack: labels per section instead of linked through z
    split_touching: bool = False
    rois: bool = False
    geojson: bool = False  # X_objects.geojson for QuPath (implies instances)
    save_attention: bool = False
    compile: bool = False
    min_size: int | None = None  # px; None: the model's (tuned on validation in training)
    runtime: str = "torch"  # or "onnxruntime" (paulow.ort_runtime)


@dataclass
class FileResult:
    source: Path
    written: list[Path] = field(default_factory=list)
    objects: list[dict] = field(default_factory=list)
    summary: list[dict] = field(default_factory=list)
    error: str | None = None
    read_as: Fingerprint | None = None  # the input as it was read, so clearing can tell a changed file
    written_sha256: list[str] = field(default_factory=list)  # of `written`, for the run record
    chunked: dict | None = None  # how the chunked engine ran, for an image too large to hold


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


def class_names(meta: dict, classes: int) -> list[str]:
    """The model's class names (`--class-names` at training), else "class 0", "class 1", ...; one
    name ("foreground") for a binary model."""
    names = list(meta.get("class_names") or [])
    if classes <= 1:
        return ["foreground"]
    return [str(n) for n in names] if len(names) == classes else [f"class {i}" for i in range(classes)]


def _write_prob(path: Path, probs: list[np.ndarray], names: list[str], stack) -> Path:
    """Probabilities as float32 ImageJ TIFF. Binary: one plane per page. K >= 2: a hyperstack with
    one channel per class (C = K, class 0 first, channel labels = class names) and one Z plane per page."""
    from .. import io

    if len(names) < 2:
        prob = np.stack([p[0] for p in probs]).astype(np.float32)
        return io.write_tiff(
            path, prob, resolution=stack.resolution, unit=stack.unit, calibration=stack.calibration
        )
    prob = np.stack(probs).astype(np.float32)
    return io.write_tiff(
        path,
        prob if len(probs) > 1 else prob[0],
        axes="ZCYX" if len(probs) > 1 else "CYX",
        resolution=stack.resolution,
        unit=stack.unit,
        imagej_extra={"Labels": names * len(probs)},
        calibration=stack.calibration,
    )


def _write_extras(
    stack, probs, masks, out_dir: Path, opts: SegmentOptions, result: FileResult, meta: dict
) -> None:
    from .. import io
    from ..boundaries import instances_from_boundaries, is_boundary_model
    from ..postprocess import class_overlay, label_instances, object_classes, object_table, outline_overlay
    from ..volumes import volume_stem

    stem = volume_stem(stack.path)  # case1.nii.gz -> case1
    boundary = is_boundary_model(meta)  # masks are already its objects (interior + boundary)
    names = class_names(meta, 1 if boundary else probs[0].shape[0])
    if opts.save_prob:
        result.written.append(
            _write_prob(
                io.unique_path(out_dir / f"{stem}_prob.tif"),
                probs,
                class_names(meta, probs[0].shape[0]),
                stack,
            )
        )
    if opts.overlay:
        for page, mask in enumerate(masks):
            grey = _display(stack.data[page])
            suffix = f"_p{page:03d}" if len(masks) > 1 else ""
            path = io.unique_path(out_dir / f"{stem}{suffix}_overlay.png")
            drawn = class_overlay(grey, mask, names) if len(names) >= 2 else outline_overlay(grey, mask)
            result.written.append(io.write_png(path, drawn))
    if opts.instances:
        from ..object_size import remove_small

        small = opts.min_size or 0
        cut = choose_threshold(meta, opts.threshold)
        labels = (
            [remove_small(instances_from_boundaries(p, threshold=cut), small) for p in probs]
            if boundary
            else [label_instances(m, split_touching=opts.split_touching, min_size=small) for m in masks]
        )
        from ..stitch import links_through_z, stitch_sections, volume_rows

        through_z = links_through_z(stack, opts.per_page) and len(names) < 2  # K >= 2: per-page class rows
        labels = list(stitch_sections(np.stack(labels))) if through_z else labels
        result.written.append(
            _write_labels(io.unique_path(out_dir / f"{stem}_labels.tif"), np.stack(labels), stack)
        )
        if opts.rois:
            from ..rois import write_roi_zip

            result.written.append(
                write_roi_zip(np.stack(labels), io.unique_path(out_dir / f"{stem}_rois.zip"))
            )
        if through_z:  # one row per 3-D object: volume, z-extent, centroid in 3-D
            rows, summary = volume_rows(stack, np.stack(labels), masks)
            result.objects += rows
            result.summary.append(summary)
        features: list[dict] = []
        for page, lab in enumerate(labels if opts.geojson or not through_z else []):
            rows = object_table(lab, stack.data[page, 0], pixel_size=stack.pixel_size, unit=stack.unit)
            summary = {
                "file": stack.path.name,
                "page": page,
                "objects": len(rows),
                "foreground_fraction": float(np.count_nonzero(masks[page])) / masks[page].size,
            }
            if len(names) >= 2:  # class column, and the object count of every foreground class
                rows = object_classes(rows, lab, masks[page], names)
                summary.update(
                    {
                        f"objects_{n.replace(' ', '_')}": sum(r["class_index"] == c for r in rows)
                        for c, n in enumerate(names)
                        if c
                    }
                )
            if not through_z:  # (a 3-D object's rows are above; its GeoJSON outlines stay per page)
                result.objects += [{"file": stack.path.name, "page": page, **r} for r in rows]
                result.summary.append(summary)
            if opts.geojson:
                features += _features(lab, rows, names, meta, page if len(labels) > 1 else None)
        if opts.geojson:
            from ..geojson import write_geojson

            result.written.append(
                write_geojson(io.unique_path(out_dir / f"{stem}_objects.geojson"), features)
            )


def _features(
    labels: np.ndarray, rows: list[dict], names: list[str], meta: dict, page: int | None
) -> list[dict]:
    """QuPath detections of one page, each classified by its class name in the mask's colour."""
    from ..geojson import page_features
    from ..io import class_lut

    lut = class_lut(max(len(names), 2), meta.get("palette") if len(names) >= 2 else None)
    colours = {name: lut[:, max(index, 1)].tolist() for index, name in enumerate(names)}
    return page_features(labels, rows, class_name=names[-1], colours=colours, page=page)


def _write_labels(path: Path, labels: np.ndarray, stack) -> Path:
    """uint16 label images (ImageJ) with a distinct-colour lookup table (labels 1-255, shown over
    0..255); above 65,535 objects float32, which ImageJ also reads exactly."""
    from .. import io
    from ..label_lut import label_display

    if stack.geometry is not None:  # NIfTI / DICOM in: NIfTI labels on the input's grid
        from ..volumes import write_volume_mask

        return write_volume_mask(path.parent, stack, labels, "_labels")
    if labels.max(initial=0) <= np.iinfo(np.uint16).max:
        return io.write_mask(
            path,
            labels.astype(np.uint16),
            resolution=stack.resolution,
            unit=stack.unit,
            calibration=stack.calibration,
            imagej_extra=label_display(),
        )
    log.warning("'%s' has more than 65,535 objects: labels written as float32", stack.path.name)
    return io.write_tiff(
        path,
        labels.astype(np.float32),
        resolution=stack.resolution,
        unit=stack.unit,
        calibration=stack.calibration,
    )


def _display(page: np.ndarray) -> np.ndarray:
    """A (C, H, W) page as 8-bit grey for overlays (percentile-scaled)."""
    from ..data import normalise

    grey = normalise(page[:1].astype(np.float32))[0]
    return (np.clip(grey, 0, 1) * 255).astype(np.uint8)


def _save_attention(loaded, stack, opts: SegmentOptions, out_dir: Path, result: FileResult) -> None:
    from .. import io
    from ..attention import attention_maps, heatmap_overlay

    for page in range(stack.data.shape[0]):
        grey = _display(stack.data[page])
        for level, amap in enumerate(attention_maps(loaded, stack.data[page], opts)):
            suffix = f"_p{page:03d}" if stack.data.shape[0] > 1 else ""
            stem = f"{stack.path.stem}{suffix}_attention{level + 1}"
            path = io.unique_path(out_dir / f"{stem}.png")  # heat map over the image, for viewing
            result.written.append(io.write_png(path, heatmap_overlay(grey, amap)))
            raw = io.unique_path(out_dir / f"{stem}.tif")  # the float map, for analysis
            result.written.append(io.write_tiff(raw, amap.astype(np.float32)))


def read_input(path: Path) -> tuple:
    """(fingerprint, stack) of an input; the fingerprint first: a file replaced from here on is never
    cleared. The stack is None for an image too large to hold (segmented chunk by chunk)."""
    from .. import io
    from ..drop_chunked import too_large_to_hold

    read_as = fingerprint(path)
    return read_as, None if too_large_to_hold(path) else io.read_image(path)


def segment_file(loaded, path: Path, out_dir: Path, opts: SegmentOptions, read=None) -> FileResult:
    """Segment one file (all pages) and write its outputs atomically; raise on a bad file. `read`:
    a future of `read_input(path)` started in the background (`paulow.background.read_ahead`)."""
    from .. import io
    from ..boundaries import is_boundary_model, object_mask
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
    mask_out = io.unique_path(out_dir / f"{path.stem}_mask.tif")
    if stack.geometry is not None:  # NIfTI / DICOM in: a NIfTI mask on the input's grid
        from ..volumes import write_volume_mask

        binary = loaded.classes <= 1 or boundary  # 0/1 (a label volume), class indices for K >= 2
        mask_path = write_volume_mask(out_dir, stack, (out != 0) if binary else out, "_mask")
    elif loaded.classes <= 1 or boundary:
        mask_path = io.write_mask(
            mask_out,
            io.binary_to_uint8(out),
            resolution=stack.resolution,
            unit=stack.unit,
            calibration=stack.calibration,
        )
    else:  # class indices with a colour lookup table (Fiji)
        mask_path = io.write_label_tiff(
            mask_out,
            out,
            loaded.classes,
            resolution=stack.resolution,
            unit=stack.unit,
            colours=loaded.meta.get("palette"),
            calibration=stack.calibration,
        )
    result.written.append(mask_path)
    _write_extras(stack, probs, masks, out_dir, opts, result, loaded.meta)
    if opts.save_attention:
        _save_attention(loaded, stack, opts, out_dir, result)
    check = io.read_mask(mask_path)
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
    from tqdm.auto import tqdm

    from ..background import read_ahead
    from ..checkpoint import load_checkpoint
    from ..data import load_images
    from ..device import pick_device

    ws = Workspace(Path(args.root))
    device = distributed.local_device(pick_device(args.device or "auto"))
    distributed.init(device)
    main = distributed.is_main()
    echo = echo if main else quiet
    distributed.main_first(lambda: ws.require(ws.use_inputs))
    distributed.on_main(lambda: run_records.require_runs_folder(ws.use_outputs))
    if main:
        ws.use_outputs.mkdir(parents=True, exist_ok=True)
    distributed.on_main(lambda: require_writable(ws, ws.use_outputs, [ws.use_inputs], args.keep_inputs))
    model_path = distributed.on_main(lambda: choose_model(ws.models, args.model, args.yes))
    loaded = distributed.main_first(lambda: load_checkpoint(model_path, device))
    from ..boundaries import is_boundary_model

    if is_boundary_model(loaded.meta) and not (
        args.instances or getattr(args, "rois", False) or getattr(args, "geojson", False)
    ):
        echo(
            "this model learnt object boundaries: add --instances for labelled objects (touching ones "
            "separated) beside the masks"
        )
    images = distributed.on_main(lambda: load_images(ws.use_inputs))
    unusable = [FileResult(source=p, error=why) for p, why in list_unusable(ws.use_inputs)] if main else []
    for r in unusable:
        assert r.error is not None  # set just above
        file_error(r.source, r.error)
    opts = options_from_args(args, device)
    from ..device_probe import tune_options

    opts, loaded.models = tune_options(opts, loaded.models, loaded.meta, images, args.batch_size, echo)
    if opts.compile:
        from ..infer import compile_for_inference

        loaded.models = [compile_for_inference(m) for m in loaded.models]
        echo("--compile: the network compiles on the first batch (20-60 s)")
    echo(
        f"model: {model_path.name} ({loaded.meta.get('arch')}, {len(loaded.models)} member(s)); "
        f"{len(images)} file(s) to segment on {device}"
        + (f" and {distributed.world_size() - 1} more process(es)" if distributed.active() else "")
    )
    results = list(unusable)
    started = f"{_dt.datetime.now():%Y-%m-%d %H:%M:%S}"
    from .. import io
    from ..checkpoint import sha256_file

    model_sha = sha256_file(model_path) if main else ""
    with main_lock(ws):
        record = io.unique_path(
            ws.use_outputs / "runs" / f"segment_{started.replace(':', '').replace(' ', '_')}.json"
        )
        # rank 0 reads the killed runs' records before anyone writes (the others get its answer)
        earlier = distributed.on_main(lambda: _unfinished_outputs(ws.use_outputs, model_sha, opts))
        mine = distributed.shard(images, key=lambda p: p.stem)  # same stem, same rank: no name races
        reads = read_ahead(mine, read_input)  # the next file is read while this one is predicted
        for path, read in tqdm(
            reads, total=len(mine), desc="segmenting", unit="file", disable=None if main else True
        ):
            note = (
                (
                    lambda pending: _write_run_record(
                        results + [pending], record, model_path, model_sha, loaded, opts, args, started, False
                    )
                )
                if main
                else None
            )
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
                _write_run_record(results, record, model_path, model_sha, loaded, opts, args, started, False)
        if distributed.active():
            results = _collect(distributed.gather(results), images)
        if not main:
            return 0
        tables = _write_tables(results, ws.use_outputs, opts)
        tables.append(
            _write_run_record(results, record, model_path, model_sha, loaded, opts, args, started, False)
        )
        code = _finish(results, tables, args, echo)
        # finished only once the inputs are cleared: a run killed while clearing is still resumable
        _write_run_record(results, record, model_path, model_sha, loaded, opts, args, started, True)
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
    from .. import io
    from ..report import write_csv

    if not opts.instances:
        return []
    written = []
    for name, key in (("objects.csv", "objects"), ("summary.csv", "summary")):
        path = io.unique_path(out_dir / name)
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
