"""A chunked run over one file: plan, resume, the three phases on a `TaskRunner`, outputs, record.

1. predict: every chunk core's probabilities (tiles over the whole image's grid, a halo of under
   one tile) -> the probability image, and the mask (classes) or the chunk's local objects;
2. stitch: local objects joined across seams (`paulow.chunk_stitch`), one small table per page;
   boundary models then run the seeded watershed on each core plus a halo (`paulow.chunk_watershed`);
3. label: every chunk's global objects and its mask without objects under `min_size`;
then the pyramid levels, and for `--format tiff` tiled TIFFs (`ome-tiff`: pyramidal OME-TIFFs). Markers
record finished chunks, so the same command after a kill finishes only what is missing and gives the
same bytes. The phases: `paulow.chunk_phases`; the TIFFs and the objects table: `paulow.chunk_outputs`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .chunk_outputs import finish_outputs, write_objects_csv
from .chunk_phases import run_phases
from .chunk_spec import RunSpec
from .chunking import ChunkGrid, check_chunk
from .errors import UsageError
from .heap import tune_heap

FORMATS = ("ome-zarr", "tiff", "ome-tiff")
# above this many input bytes an image is "too large to hold": OME-Zarr output by default
LARGE_IMAGE_BYTES = 1 << 30


def output_stem(path: Path) -> str:
    """`big.ome.zarr` -> `big`, `scan.ome.tif` -> `scan`."""
    name = Path(path).name
    for suffix in (".ome.zarr", ".ome.tiff", ".ome.tif", ".zarr", ".tiff", ".tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def default_chunk(tile: int, channels: int, classes: int) -> int:
    """Chunk core side from the memory available: the core plus its halo as float32 input,
    probabilities and weights should take at most 1/16 of the available memory; 512..2048 px,
    at least one tile."""
    import psutil

    budget = psutil.virtual_memory().available / 16
    per_px = 4 * (channels + 2 * classes + 2)
    side = 2048
    while side > 512 and (side + 2 * tile) ** 2 * per_px > budget:
        side //= 2
    return max(side, tile)


def model_digest(networks: list) -> str:
    """SHA-256 of the networks' weights (names, shapes, values)."""
    digest = hashlib.sha256()
    for net in networks:
        for name, tensor in sorted(net.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _mode(meta: dict) -> str:
    from .boundaries import is_boundary_model

    if is_boundary_model(meta):
        return "boundary"
    return "classes" if int(meta.get("classes", 1)) > 1 else "binary"


def _check_resume(record_path: Path, output: Path, settings: dict) -> dict | None:
    """The earlier record of the same run (to resume or to report done), None for a fresh start;
    outputs of another run are never overwritten."""
    if record_path.exists():
        earlier = json.loads(record_path.read_text())
        if earlier.get("settings") != settings:
            raise UsageError(
                f"{record_path}: the outputs of '{output.name}' there come from a run with other "
                "settings - choose another --output folder or move them away"
            )
        return earlier
    if output.exists():
        raise UsageError(
            f"{output}: exists and was not written by this run - choose another --output folder "
            "or move it away (nothing is overwritten)"
        )
    return None


def predict_file(
    model: Any,
    path: Path,
    out_dir: Path,
    *,
    chunk: int | None = None,
    fmt: str | None = None,
    runner: Any = None,
    threshold: float | None = None,
    min_size: int | None = None,
    tile: int | None = None,
    overlap: float | None = None,
    halo: int | None = None,
    batch_size: int = 8,
    tta: bool = False,
    device: str = "cpu",
    progress: bool = False,
    echo: Callable[[str], None] | None = None,
) -> dict:
    """Segment one file chunk by chunk; returns the run record (outputs under "outputs")."""
    from .lazy import page_stats

    tune_heap()  # the driver's memory (and in-process workers'): see paulow.heap
    say = echo or (lambda _: None)
    plan = _plan(model.meta, Path(path), Path(out_dir), chunk, fmt, tile, halo, device)
    settings = _settings(plan, model, overlap, threshold, min_size, tta, batch_size)
    earlier = _check_resume(plan.record_path, plan.output, settings)
    if earlier and earlier.get("complete"):
        say(f"{plan.path.name}: already segmented ({plan.record_path.name}); nothing to do")
        return earlier
    image = plan.image
    stats = [page_stats(image, p, plan.meta.get("normalisation", {})) for p in range(image.pages)]
    spec = _run_spec(plan, settings, stats, device)
    record = _new_record(plan, settings, stats, earlier)
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    _write_json(plan.record_path, record)
    _run_chunks(runner, device, plan, spec, model, progress, record, say)
    _finish(plan, spec, record)
    return record


@dataclass
class _Plan:
    """One file's run as planned: the opened input, the model's metadata and the chosen sizes."""

    path: Path
    out_dir: Path
    image: Any  # a `paulow.lazy` image
    meta: dict
    tile: int
    chunk: int
    mode: str
    halo: int | None
    fmt: str

    @property
    def stem(self) -> str:
        return output_stem(self.path)

    @property
    def work(self) -> Path:
        return self.out_dir / f".{self.stem}.paulow-work"

    @property
    def output(self) -> Path:
        """The OME-Zarr group: the output itself, or (TIFF formats) the one they are written from."""
        if self.fmt == "ome-zarr":
            return self.out_dir / f"{self.stem}.ome.zarr"
        return self.work / "output.ome.zarr"

    @property
    def record_path(self) -> Path:
        return self.out_dir / f"{self.stem}.paulow-run.json"

    @property
    def classes(self) -> int:
        return int(self.meta.get("classes", 1))


def _plan(
    meta: dict,
    path: Path,
    out_dir: Path,
    chunk: int | None,
    fmt: str | None,
    tile: int | None,
    halo: int | None,
    device: str,
) -> _Plan:
    """Open the input; choose the tile, the chunk, the mode, the watershed's halo and the format."""
    from .infer import suggest_tile
    from .lazy import is_lazy_input, open_lazy
    from .predict import match_channels

    image = open_lazy(path)
    match_channels(image.read(0, slice(0, 1), slice(0, 1))[None], int(meta["in_channels"]), path.name)
    tile = int(tile or suggest_tile(int(meta.get("patch", 128)), device))
    chunk = int(chunk or default_chunk(tile, image.channels, int(meta.get("classes", 1))))
    check_chunk(chunk, tile)
    mode = _mode(meta)
    halo = _choose_halo(meta, mode, halo)
    large = (
        image.pages * image.height * image.width * image.channels * image.dtype.itemsize > LARGE_IMAGE_BYTES
    )
    fmt = fmt or ("ome-zarr" if is_lazy_input(path) or large else "tiff")
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return _Plan(path, out_dir, image, meta, tile, chunk, mode, halo, fmt)


def _settings(
    plan: _Plan,
    model: Any,
    overlap: float | None,
    threshold: float | None,
    min_size: int | None,
    tta: bool,
    batch_size: int,
) -> dict[str, Any]:
    """What makes two runs the same run: resuming needs the same settings."""
    from .object_size import choose_min_size
    from .predict import choose_threshold

    image, meta = plan.image, plan.meta
    return {
        "input": str(plan.path.resolve()),
        "input_shape": list(image.shape),
        "input_dtype": str(image.dtype),
        "model_sha256": model_digest(model.networks),
        "chunk": plan.chunk,
        "tile": plan.tile,
        "overlap": float(overlap if overlap is not None else meta.get("overlap", 0.5)),
        "threshold": choose_threshold(meta, threshold),
        "min_size": choose_min_size(meta, min_size),
        "tta": tta,
        "batch_size": batch_size,
        "format": plan.fmt,
        "mode": plan.mode,
        **({"halo": plan.halo} if plan.mode == "boundary" else {}),
    }


def _run_spec(plan: _Plan, settings: dict, stats: list, device: str) -> RunSpec:
    """The tasks' view of the run (small, picklable)."""
    image = plan.image
    return RunSpec(
        str(plan.path),
        str(plan.output),
        str(plan.work),
        image.height,
        image.width,
        image.pages,
        plan.chunk,
        plan.tile,
        settings["overlap"],
        settings["batch_size"],
        settings["tta"],
        device,
        settings["threshold"],
        settings["min_size"],
        int(plan.meta["in_channels"]),
        plan.mode,
        tuple(tuple(s) if s is not None else None for s, _ in stats),
        plan.halo or 0,
    )


def _new_record(plan: _Plan, settings: dict, stats: list, earlier: dict | None) -> dict[str, Any]:
    """The run record as it starts: settings, chunking and each page's normalisation."""
    image = plan.image
    return {
        "settings": settings,
        "started": f"{_dt.datetime.now():%Y-%m-%d %H:%M:%S}",
        "complete": False,
        "chunking": {
            "core_px": plan.chunk,
            "halo_px": f"up to {plan.tile - 1} (the tiles touching a core)",
            "grid": list(ChunkGrid(image.height, image.width, plan.chunk).shape),
            "pages": image.pages,
            **({"watershed_halo_px": plan.halo} if plan.mode == "boundary" else {}),
        },
        "normalisation": [{"page": p, "low_high": s, "from": how} for p, (s, how) in enumerate(stats)],
        "resumed": bool(earlier),
    }


def _run_chunks(
    runner: Any,
    device: str,
    plan: _Plan,
    spec: RunSpec,
    model: Any,
    progress: bool,
    record: dict,
    say: Callable[[str], None],
) -> None:
    """The phases on `runner` (a `TaskRunner` of its own when None, closed after);
    the workers and the object counts go into `record`."""
    from .dask_runner import TaskRunner

    own = runner is None
    runner = runner if runner is not None else TaskRunner(None, device)
    try:
        record["workers"] = runner.workers
        image = plan.image
        say(
            f"{plan.path.name}: {image.pages} page(s) of {image.height} x {image.width}, "
            f"chunks of {plan.chunk} px, {len(runner.workers)} worker(s)"
        )
        record["objects"] = run_phases(runner, spec, model, plan.classes, progress, record)
    finally:
        if own:
            runner.close()


def _finish(plan: _Plan, spec: RunSpec, record: dict) -> None:
    """Write the outputs and the objects table, mark the record complete, remove the work folder."""
    record["outputs"] = finish_outputs(spec, plan.fmt, plan.out_dir, plan.stem, record.get("objects"))
    if record.get("objects") is not None:
        table = plan.out_dir / f"{plan.stem}_objects.csv"
        record["outputs"].append(str(write_objects_csv(spec, table, record["objects"])))
    record.update(complete=True, finished=f"{_dt.datetime.now():%Y-%m-%d %H:%M:%S}")
    _write_json(plan.record_path, record)
    shutil.rmtree(plan.work, ignore_errors=True)


def _write_json(path: Path, data: dict) -> None:
    from .io import atomic_write_path

    with atomic_write_path(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=1, default=str))


def _choose_halo(meta: dict, mode: str, halo: int | None) -> int | None:
    """The watershed's halo of a boundary model: the user's, else from the model (None otherwise)."""
    from .chunk_watershed import default_halo

    if mode != "boundary":
        return None
    if halo is not None and (int(halo) != halo or halo < 1):
        raise UsageError(f"--halo {halo}: give a whole number of pixels of at least 1")
    return int(halo) if halo is not None else default_halo(meta)


__all__ = ["FORMATS", "default_chunk", "output_stem", "predict_file"]
