"""A chunked run over one file: plan, resume, the three phases on a `TaskRunner`, outputs, record.

1. predict: every chunk core's probabilities (tiles over the whole image's grid, a halo of under
   one tile) -> the probability image, and the mask (classes) or the chunk's local objects;
2. stitch: local objects joined across seams (`paulow.chunk_stitch`), one small table per page;
   boundary models then run the seeded watershed on each core plus a halo (`paulow.chunk_watershed`);
3. label: every chunk's global objects and its mask without objects under `min_size`;
then the pyramid levels, and for `--format tiff` tiled TIFFs (`ome-tiff`: pyramidal OME-TIFFs). Markers record finished chunks, so the
same command after a kill finishes only what is missing and gives the same bytes.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import itertools
import json
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .chunk_tasks import RunSpec, label_chunk, marker, predict_chunk, pyramid_chunk
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
    from .dask_runner import TaskRunner
    from .infer import suggest_tile
    from .lazy import is_lazy_input, open_lazy, page_stats
    from .object_size import choose_min_size
    from .predict import choose_threshold, match_channels

    tune_heap()  # the driver's memory (and in-process workers'): see paulow.heap
    say = echo or (lambda _: None)
    path, out_dir = Path(path), Path(out_dir)
    image = open_lazy(path)
    meta = model.meta
    match_channels(image.read(0, slice(0, 1), slice(0, 1))[None], int(meta["in_channels"]), path.name)
    tile = int(tile or suggest_tile(int(meta.get("patch", 128)), device))
    classes = int(meta.get("classes", 1))
    chunk = int(chunk or default_chunk(tile, image.channels, classes))
    check_chunk(chunk, tile)
    mode = _mode(meta)
    halo = _choose_halo(meta, mode, halo)
    large = (
        image.pages * image.height * image.width * image.channels * image.dtype.itemsize > LARGE_IMAGE_BYTES
    )
    fmt = fmt or ("ome-zarr" if is_lazy_input(path) or large else "tiff")
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    stem = output_stem(path)
    work = out_dir / f".{stem}.paulow-work"
    output = out_dir / f"{stem}.ome.zarr" if fmt == "ome-zarr" else work / "output.ome.zarr"
    record_path = out_dir / f"{stem}.paulow-run.json"
    settings: dict[str, Any] = {
        "input": str(path.resolve()),
        "input_shape": list(image.shape),
        "input_dtype": str(image.dtype),
        "model_sha256": model_digest(model.networks),
        "chunk": chunk,
        "tile": tile,
        "overlap": float(overlap if overlap is not None else meta.get("overlap", 0.5)),
        "threshold": choose_threshold(meta, threshold),
        "min_size": choose_min_size(meta, min_size),
        "tta": tta,
        "batch_size": batch_size,
        "format": fmt,
        "mode": mode,
        **({"halo": halo} if mode == "boundary" else {}),
    }
    earlier = _check_resume(record_path, output, settings)
    if earlier and earlier.get("complete"):
        say(f"{path.name}: already segmented ({record_path.name}); nothing to do")
        return earlier
    stats = [page_stats(image, p, meta.get("normalisation", {})) for p in range(image.pages)]
    spec = RunSpec(
        str(path),
        str(output),
        str(work),
        image.height,
        image.width,
        image.pages,
        chunk,
        tile,
        settings["overlap"],
        batch_size,
        tta,
        device,
        settings["threshold"],
        settings["min_size"],
        int(meta["in_channels"]),
        mode,
        tuple(tuple(s) if s is not None else None for s, _ in stats),
        halo or 0,
    )
    record: dict[str, Any] = {
        "settings": settings,
        "started": f"{_dt.datetime.now():%Y-%m-%d %H:%M:%S}",
        "complete": False,
        "chunking": {
            "core_px": chunk,
            "halo_px": f"up to {tile - 1} (the tiles touching a core)",
            "grid": list(ChunkGrid(image.height, image.width, chunk).shape),
            "pages": image.pages,
            **({"watershed_halo_px": halo} if mode == "boundary" else {}),
        },
        "normalisation": [{"page": p, "low_high": s, "from": how} for p, (s, how) in enumerate(stats)],
        "resumed": bool(earlier),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_json(record_path, record)
    own = runner is None
    runner = runner if runner is not None else TaskRunner(None, device)
    try:
        record["workers"] = runner.workers
        say(
            f"{path.name}: {image.pages} page(s) of {image.height} x {image.width}, chunks of {chunk} px, "
            f"{len(runner.workers)} worker(s)"
        )
        record["objects"] = _run_phases(runner, spec, model, classes, progress, record)
    finally:
        if own:
            runner.close()
    record["outputs"] = _finish_outputs(spec, fmt, out_dir, stem, record.get("objects"))
    if record.get("objects") is not None:
        record["outputs"].append(
            str(_write_objects_csv(spec, out_dir / f"{stem}_objects.csv", record["objects"]))
        )
    record.update(complete=True, finished=f"{_dt.datetime.now():%Y-%m-%d %H:%M:%S}")
    _write_json(record_path, record)
    shutil.rmtree(work, ignore_errors=True)
    return record


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


def _run_phases(
    runner: Any, spec: RunSpec, model: Any, classes: int, progress: bool, record: dict
) -> list[int] | None:
    """Predict, stitch, label and the pyramid; returns the object count per page (None: classes);
    warnings go to the log and to `record["warnings"]`."""
    import zarr
    from tqdm.auto import tqdm

    from . import omezarr

    grid = ChunkGrid(spec.height, spec.width, spec.chunk)
    jobs = [(p, iy, ix) for p in range(spec.pages) for iy, ix in grid.indices()]
    instances = spec.mode != "classes"
    omezarr.create_outputs(
        Path(spec.output), spec.pages, spec.height, spec.width, spec.chunk, classes, instances
    )
    if spec.mode == "boundary":
        from .chunk_watershed import create_work_arrays

        create_work_arrays(spec)
    if instances:
        Path(spec.work).mkdir(parents=True, exist_ok=True)
        zarr.open_array(
            Path(spec.work) / "local.zarr",
            mode="a",
            shape=(spec.pages, spec.height, spec.width),
            chunks=(1, spec.chunk, spec.chunk),
            dtype="uint32",
            fill_value=0,
            zarr_format=2,
        )
    levels = omezarr.level_shapes(spec.height, spec.width, spec.chunk)
    pyramid = _pyramid_jobs(spec, levels, instances)
    phases = 1 + instances + (spec.mode == "boundary")
    total = len(jobs) * phases + sum(len(level) for level in pyramid)
    with tqdm(total=total, unit="chunk", desc=Path(spec.input).name, disable=not progress) as bar:
        todo = [j for j in jobs if not marker(spec, "predict", *j).exists()]
        bar.update(len(jobs) - len(todo))
        models = runner.shared((tuple(model.networks), model.meta))
        runner.run(predict_chunk, [(spec, models, *j) for j in todo], lambda: bar.update(1))
        counts = None
        if instances:
            tables = [_stitch_page(spec, grid, p) for p in range(spec.pages)]
            counts = [count for _, count in tables]
            split = _split_phase(runner, spec, jobs, bar, record) if spec.mode == "boundary" else None
            if split is not None:
                counts = [count for _, count in split]
            todo = [
                (p, iy, ix, *tables[p][0][(iy, ix)], split[p][0][(iy, ix)] if split else None)
                for p, iy, ix in jobs
                if not marker(spec, "label", p, iy, ix).exists()
            ]
            bar.update(len(jobs) - len(todo))
            runner.run(label_chunk, [(spec, *j) for j in todo], lambda: bar.update(1))
        for level in pyramid:  # cheap: always redone, level by level
            runner.run(pyramid_chunk, [(spec, *j) for j in level], lambda: bar.update(1))
    return counts


def _split_phase(runner: Any, spec: RunSpec, jobs: list, bar: Any, record: dict) -> list[tuple[dict, int]]:
    """Boundary models: every chunk's seeded watershed, then each page's table; warns (log and
    record) about objects that reach the edge of a chunk's read region."""
    import logging

    from .chunk_watershed import split_chunk, split_page

    todo = [j for j in jobs if not marker(spec, "split", *j).exists()]
    bar.update(len(jobs) - len(todo))
    runner.run(split_chunk, [(spec, *j) for j in todo], lambda: bar.update(1))
    pages = [split_page(spec, p) for p in range(spec.pages)]
    for _, _, warning in pages:
        if warning:
            logging.getLogger("paulow").warning(warning)
            record.setdefault("warnings", []).append(warning)
    return [(places, count) for places, count, _ in pages]


def _stitch_page(spec: RunSpec, grid: ChunkGrid, page: int) -> tuple[dict, int]:
    """Join one page's chunk objects; save its table; return (chunk -> (offset, count), objects)."""
    from .chunk_stitch import global_mapping

    chunks = _SavedChunks(spec, grid, page)
    offsets, mapping = global_mapping(chunks, spec.min_size)
    folder = Path(spec.work) / "mapping"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{page}.tmp.npy"
    np.save(tmp, mapping)
    tmp.replace(folder / f"{page}.npy")
    places = {index: (offsets[index], chunks[index].count) for index in chunks}
    return places, int(mapping.max(initial=0))


class _SavedChunks(Mapping):
    """One page's chunk records (`ChunkObjects`), read from their markers when asked, two rows of
    chunks cached: `global_mapping` walks them in row-major order, so the driver never holds
    every chunk's border lines at once."""

    def __init__(self, spec: RunSpec, grid: ChunkGrid, page: int) -> None:
        self._spec, self._page = spec, page
        self._indices = list(grid.indices())
        self._known = set(self._indices)
        self._load = functools.lru_cache(maxsize=2 * grid.shape[1] + 2)(self._read)

    def _read(self, index: tuple[int, int]) -> Any:
        from .chunk_stitch import ChunkObjects

        with np.load(marker(self._spec, "predict", self._page, *index)) as data:
            return ChunkObjects.from_arrays({key: data[key] for key in data.files})

    def __getitem__(self, index: tuple[int, int]) -> Any:
        if index not in self._known:
            raise KeyError(index)
        return self._load(index)

    def __contains__(self, index: object) -> bool:
        return index in self._known

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return iter(self._indices)

    def __len__(self) -> int:
        return len(self._indices)


def _write_objects_csv(spec: RunSpec, path: Path, counts: list[int]) -> Path:
    """One row per object (a `page` column for stacks), merged from the chunks' parts and
    streamed to the file: the driver holds one page's merged arrays, not a dict per object."""
    from .io import unique_path
    from .report import write_csv

    rows = _object_rows(spec, counts)
    first = next(rows, None)
    if first is None:
        return write_csv(unique_path(path), [])
    return write_csv(unique_path(path), itertools.chain([first], rows), header=list(first))


def _object_rows(spec: RunSpec, counts: list[int]) -> Iterator[dict]:
    """The object rows of every page in order (all rows have the same columns)."""
    from .chunk_objects import iter_merged

    grid = ChunkGrid(spec.height, spec.width, spec.chunk)
    for page, count in enumerate(counts):
        parts = []
        for iy, ix in grid.indices():
            with np.load(marker(spec, "label", page, iy, ix)) as data:
                parts.append({key: data[key] for key in data.files})
        yield from iter_merged(parts, count, page if spec.pages > 1 else None)


def _pyramid_jobs(spec: RunSpec, levels: list[tuple[int, int]], instances: bool) -> list[list[tuple]]:
    """Per level >= 1, the (role, level, page, ys, xs) chunks to fill."""
    roles = ["probability", "mask"] + (["objects"] if instances else [])
    out = []
    for n, (h, w) in enumerate(levels[1:], start=1):
        grid = ChunkGrid(h, w, spec.chunk)
        out.append(
            [
                (role, n, p, *grid.core(iy, ix))
                for role in roles
                for p in range(spec.pages)
                for iy, ix in grid.indices()
            ]
        )
    return out


def _finish_outputs(
    spec: RunSpec, fmt: str, out_dir: Path, stem: str, objects: list[int] | None
) -> list[str]:
    """The OME-Zarr path, or the TIFFs written from it (tiled, BigTIFF when large; `ome-tiff`:
    pyramidal OME-TIFFs, see `paulow.ome_tiff`)."""
    if fmt == "ome-zarr":
        return [spec.output]
    from . import omezarr
    from .ome_tiff import input_pixel_size, write_ome_tiff
    from .tiff_out import write_tiled_tiff

    arrays, size = omezarr.arrays(Path(spec.output)), input_pixel_size(Path(spec.input))
    roles: list[tuple[str, Any, int]] = [("mask", np.uint8, 255 if spec.mode != "classes" else 1)]
    if "objects" in arrays:
        most = max(objects or [0])
        wide = np.uint32 if fmt == "ome-tiff" else np.float32  # ImageJ reads float32, OME uint32
        roles.append(("labels", np.uint16 if most <= np.iinfo(np.uint16).max else wide, 1))
    written = []
    for role, dtype, scale in roles:
        key = "objects" if role == "labels" else role
        if fmt == "ome-tiff":
            levels = omezarr.level_arrays(Path(spec.output), key)
            where = out_dir / f"{stem}_{role}.ome.tif"
            written.append(
                write_ome_tiff(where, levels, spec.pages, scale=scale, dtype=dtype, pixel_size=size)
            )
        else:
            where = out_dir / f"{stem}_{role}.tif"
            written.append(
                write_tiled_tiff(where, arrays[key], spec.pages, scale=scale, dtype=dtype, pixel_size=size)
            )
    return [str(p) for p in written]


__all__ = ["FORMATS", "default_chunk", "output_stem", "predict_file"]
