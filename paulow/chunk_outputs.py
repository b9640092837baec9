"""The outputs of a chunked run from its OME-Zarr group: tiled TIFFs or pyramidal OME-TIFFs, and
the objects table merged from the chunks' parts."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .chunk_spec import RunSpec, marker
from .chunking import ChunkGrid


def finish_outputs(spec: RunSpec, fmt: str, out_dir: Path, stem: str, objects: list[int] | None) -> list[str]:
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


def write_objects_csv(spec: RunSpec, path: Path, counts: list[int]) -> Path:
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
