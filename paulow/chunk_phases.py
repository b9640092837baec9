"""The phases of a chunked run on a `TaskRunner` (see `paulow.chunked_run`): predict every chunk,
stitch each page's local objects across seams (boundary models: the seeded watershed per chunk),
label every chunk, then the pyramid levels. Chunks with a marker are done and skipped."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .chunk_spec import RunSpec, marker
from .chunk_tasks import label_chunk, predict_chunk, pyramid_chunk
from .chunking import ChunkGrid


def run_phases(
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
