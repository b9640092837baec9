"""The tasks of a chunked run, as plain functions of picklable arguments so that any dask worker
(threads, processes, another machine) can run them. Each task writes whole chunks of its own, then
a marker file: no locks, and a killed run knows which chunks are done."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .chunk_spec import RunSpec, marker, save_marker
from .heap import tune_heap  # once per worker process: see paulow.heap


@functools.lru_cache(maxsize=4)
def _lazy(path: str):
    """One open reader per input per worker process."""
    from .lazy import open_lazy

    return open_lazy(Path(path))


@contextlib.contextmanager
def _quiet_log() -> Iterator[None]:
    """Channel conversions are announced once by the driver, not once per chunk."""
    logger = logging.getLogger("paulow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def chunk_probabilities(
    spec: RunSpec, models: tuple, page: int, iy: int, ix: int
) -> tuple[np.ndarray, tuple[slice, slice]]:
    """Blended probabilities `(K, h, w)` of one chunk core, and the core's slices."""
    from .chunking import (
        AxisPlan,
        ChunkGrid,
        normalise_fixed,
        predict_core,
        read_region,
    )
    from .predict import match_channels

    networks, _meta = models
    image = _lazy(spec.input)
    core = ChunkGrid(spec.height, spec.width, spec.chunk).core(iy, ix)
    y, x = AxisPlan(spec.height, spec.tile, spec.step), AxisPlan(spec.width, spec.tile, spec.step)
    region, ys, xs, inner = read_region(lambda a, b: image.read(page, a, b), y, x, core)
    with _quiet_log():
        region = match_channels(region[None], spec.in_channels, image.path.name)[0]
    stats = spec.stats[page]
    region = normalise_fixed(region, list(stats) if stats is not None else None)
    probs = predict_core(
        list(networks),
        region,
        ys,
        xs,
        inner,
        tile=spec.tile,
        batch_size=spec.batch_size,
        device=spec.device,
        tta=spec.tta,
    )
    return probs, core


def predict_chunk(spec: RunSpec, models: tuple, page: int, iy: int, ix: int) -> None:
    """Phase 1: probabilities (uint8 0..255) into the output; the mask (classes) or the chunk's local
    objects and their record (binary, boundary) into the work folder."""
    import zarr

    from . import omezarr
    from .chunk_stitch import local_components
    from .postprocess import to_mask

    tune_heap()
    done = marker(spec, "predict", page, iy, ix)
    if done.exists():
        return
    probs, core = chunk_probabilities(spec, models, page, iy, ix)
    out = omezarr.arrays(Path(spec.output))
    key = spec.page_key(page)
    omezarr.write_block(out["probability"], key, *core, np.round(probs * 255).astype(np.uint8))
    if spec.mode == "classes":
        omezarr.write_block(out["mask"], key, *core, to_mask(probs, spec.threshold))
        save_marker(done, {})
        return
    if spec.mode == "boundary":
        from .boundaries import object_mask
        from .chunk_watershed import store_inputs

        mask = object_mask(probs, spec.threshold)
        store_inputs(spec, page, core, probs)
    else:
        mask = to_mask(probs, spec.threshold)
    labels, record = local_components(mask)
    local = zarr.open_array(Path(spec.work) / "local.zarr", mode="r+")
    local[(page,) + core] = labels
    save_marker(done, record.to_arrays())


def label_chunk(
    spec: RunSpec, page: int, iy: int, ix: int, offset: int, count: int, split: tuple | None = None
) -> None:
    """Phase 3: global objects and the mask without objects under `min_size`, into the output;
    with `split` (boundary models: offset, count in the watershed's table) the objects are the
    seeded watershed's (`paulow.chunk_watershed`), the mask stays the connected components'."""
    import zarr

    from . import omezarr
    from .chunk_objects import object_parts
    from .chunking import ChunkGrid

    tune_heap()
    done = marker(spec, "label", page, iy, ix)
    if done.exists():
        return
    core = ChunkGrid(spec.height, spec.width, spec.chunk).core(iy, ix)
    local = np.zeros((core[0].stop - core[0].start, core[1].stop - core[1].start), dtype=np.uint32)
    table = np.zeros(count + 1, dtype=np.uint32)
    if count:
        mapping = np.load(Path(spec.work) / "mapping" / f"{page}.npy", mmap_mode="r")
        local = np.asarray(zarr.open_array(Path(spec.work) / "local.zarr", mode="r")[(page,) + core])
        table[1:] = mapping[offset : offset + count]
    objects = table[local]
    mask = (objects > 0).astype(np.uint8)
    if split is not None:
        from .chunk_watershed import split_objects

        local, table = split_objects(spec, page, core, *split)
        objects = table[local]
    out = omezarr.arrays(Path(spec.output))
    key = spec.page_key(page)
    omezarr.write_block(out["objects"], key, *core, objects)
    omezarr.write_block(out["mask"], key, *core, mask)
    raw = _lazy(spec.input).read(page, *core)
    # this chunk's share of each object, from its compact local labels (no sort of the chunk)
    save_marker(done, object_parts(local, raw, core[0].start, core[1].start, table))


def pyramid_chunk(spec: RunSpec, role: str, level: int, page: int, ys: slice, xs: slice) -> None:
    """One chunk of pyramid level `level` (>= 1) of `role` from level `level - 1`."""
    from . import omezarr

    tune_heap()
    levels = omezarr.level_arrays(Path(spec.output), role)
    omezarr.downsample_block(levels[level - 1], levels[level], spec.page_key(page), ys, xs)
