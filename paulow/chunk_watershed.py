"""Boundary models' instances across chunks: the seeded watershed of `boundaries.instances_from_boundaries`
chunk by chunk, with global IDs that need no communication between chunks.

Each chunk reads its core plus `halo` px of the stored object mask, seed pixels (argmax = interior,
inside the objects) and boundary probability, runs the same seeded watershed there and keeps the
labels of its core. An object's raw ID is the raster index (+ 1) of its seed's first pixel, or, for
an object without a seed, `height * width` + the raster index (+ 1) of its first pixel: neighbouring
chunks give the same object the same ID, and sorting the IDs gives the whole-image numbering (seeds in
raster order, then the unseeded objects). The chunk whose core holds that first pixel owns the object
and reports its area; the driver keeps the owned IDs of objects of at least `min_size` px and
numbers them 1..N in ID order (a table of N entries, never one the size of the ID range).

The result equals the whole-image labels when every object lies inside the read region of each chunk
whose core it meets (for distinct probability values; exactly equal ones are flooded in an order
that may depend on what lies outside a read region). A chunk checks this for the objects it owns and
for every object of its core that reaches the edge of its read region: those are reported (never a
silent split) so that a larger `--halo` fixes them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .chunking import ChunkGrid

log = logging.getLogger("paulow")
OBJECT, SEED = 1, 2  # bits of the stored seed mask
EIGHT = np.ones((3, 3), dtype=bool)
FALLBACK_HALO = 128  # px, for models saved without `largest_object_px` and without a patch size


def default_halo(meta: dict) -> int:
    """The largest training object's bounding-box side + 1 px (the watershed's 3 x 3 step), else
    (older model files) the training patch size + 1."""
    largest = meta.get("largest_object_px") or meta.get("patch") or FALLBACK_HALO
    return int(largest) + 1


def read_window(core: tuple[slice, slice], halo: int, height: int, width: int) -> tuple[slice, slice]:
    """The read region of a chunk: its core plus `halo` px on each side, inside the page."""
    ys, xs = core
    return (
        slice(max(0, ys.start - halo), min(height, ys.stop + halo)),
        slice(max(0, xs.start - halo), min(width, xs.stop + halo)),
    )


def seed_bits(probs: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """From a core's `(3, h, w)` probabilities: the uint8 OBJECT | SEED bits and the float32 boundary
    probability inside the objects (0 outside, where the watershed never looks; it compresses)."""
    from .boundaries import BOUNDARY, INTERIOR, object_mask
    from .postprocess import to_mask

    objects = object_mask(probs, threshold).astype(bool)
    bits = objects.astype(np.uint8) * OBJECT
    bits[(to_mask(probs) == INTERIOR) & objects] |= SEED
    surface = np.where(objects, np.asarray(probs[BOUNDARY], dtype=np.float32), np.float32(0))
    return bits, surface


@dataclass
class CoreLabels:
    """A chunk's result: compact core labels, their raw IDs, the objects it owns, what it flags."""

    local: np.ndarray  # (h, w) uint32: 0, or 1 + index into `ids`
    ids: np.ndarray  # int64 raw IDs of the core's objects, ascending
    owned: np.ndarray  # int64 raw IDs of the objects whose first pixel lies in the core
    areas: np.ndarray  # int64 their whole areas (px)
    flagged: np.ndarray  # int64 raw IDs of objects that may differ from the whole-image labels
    extents: np.ndarray  # int64 their bounding boxes' longer sides (px) in the read region
    needs: np.ndarray  # int64 the halo that would hold each (cut objects: at least twice this one)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in ("ids", "owned", "areas", "flagged", "extents", "needs")}


def _first_pixels(labels: np.ndarray, count: int) -> np.ndarray:
    """Flat index of the first pixel (raster order) of each label 1..count."""
    flat = labels.ravel()
    where = np.flatnonzero(flat)
    first = np.full(count + 1, flat.size, dtype=np.int64)
    np.minimum.at(first, flat[where], where)
    return first[1:]


def _fits(lo: int, hi: int, chunk: int, halo: int, length: int) -> bool:
    """Along one axis: an object spanning [lo, hi) lies off the edge of the read region of every
    chunk whose core it meets (an edge at the image border is no edge)."""
    first, last = lo // chunk, (hi - 1) // chunk
    start, stop = last * chunk - halo, min((first + 1) * chunk, length) + halo
    return (lo > start or start <= 0) and (hi < stop or stop >= length)


def _watershed(bits: np.ndarray, surface: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """`postprocess.seeded_watershed` of a region: labels (seeds 1..n, then the unseeded objects),
    and the first pixels of the seeds and of the unseeded objects."""
    from scipy import ndimage
    from skimage.segmentation import watershed

    objects = (bits & OBJECT) > 0
    seeds, n = ndimage.label((bits & SEED) > 0, structure=EIGHT)
    split = watershed(surface, seeds, mask=objects, connectivity=2).astype(np.int32, copy=False)
    unseeded = objects & (split == 0)
    extra, m = ndimage.label(unseeded, structure=EIGHT)
    split[unseeded] = extra[unseeded] + n
    return split, _first_pixels(seeds, n), _first_pixels(extra, m), n


def core_labels(
    bits: np.ndarray,
    surface: np.ndarray,
    window: tuple[slice, slice],
    core: tuple[slice, slice],
    page_shape: tuple[int, int],
    chunk: int,
    halo: int,
) -> CoreLabels:
    """The watershed of one read region (`bits`, `surface` at `window`), kept on `core`."""
    from scipy import ndimage

    height, width = page_shape
    split, seed_first, free_first, n = _watershed(bits, surface)
    region_w = split.shape[1]
    anchors = np.concatenate([seed_first, free_first])
    gy, gx = anchors // region_w + window[0].start, anchors % region_w + window[1].start
    ids = np.concatenate([[0], gy * width + gx + 1]).astype(np.int64)
    ids[n + 1 :] += height * width  # unseeded objects after every seed, as the whole-image numbering
    inner = (slice(core[0].start - window[0].start, core[0].stop - window[0].start),
             slice(core[1].start - window[1].start, core[1].stop - window[1].start))  # fmt: skip
    core_split = split[inner]
    present = np.flatnonzero(np.bincount(core_split.ravel(), minlength=len(ids))[1:]) + 1
    present = present[np.argsort(ids[present], kind="stable")]
    lut = np.zeros(len(ids), dtype=np.uint32)
    lut[present] = np.arange(1, len(present) + 1, dtype=np.uint32)
    in_core = (gy >= core[0].start) & (gy < core[0].stop) & (gx >= core[1].start) & (gx < core[1].stop)
    owned = np.flatnonzero(in_core) + 1
    boxes = ndimage.find_objects(split, max_label=len(ids) - 1)
    cut = _edge_labels(split, window, page_shape)
    bad = cut & set(present.tolist())
    for label in owned.tolist():
        ys, xs = boxes[label - 1]
        y0, y1 = ys.start + window[0].start, ys.stop + window[0].start
        x0, x1 = xs.start + window[1].start, xs.stop + window[1].start
        if not (_fits(y0, y1, chunk, halo, height) and _fits(x0, x1, chunk, halo, width)):
            bad.add(label)
    flagged = np.array(sorted(bad), dtype=np.int64)
    extents = np.array(
        [max(b[0].stop - b[0].start, b[1].stop - b[1].start) for b in (boxes[i - 1] for i in flagged)],
        dtype=np.int64,
    )
    cut_ones = np.isin(flagged, list(cut))
    needs = np.where(cut_ones, np.maximum(extents + 1, 2 * halo), extents + 1)
    return CoreLabels(
        lut[core_split],
        ids[present],
        ids[owned],
        np.bincount(split.ravel(), minlength=len(ids))[owned].astype(np.int64),
        ids[flagged],
        extents,
        needs.astype(np.int64),
    )


def _edge_labels(split: np.ndarray, window: tuple[slice, slice], page_shape: tuple[int, int]) -> set[int]:
    """Labels on the edges of the read region that are not the image's edges."""
    lines = []
    if window[0].start > 0:
        lines.append(split[0])
    if window[0].stop < page_shape[0]:
        lines.append(split[-1])
    if window[1].start > 0:
        lines.append(split[:, 0])
    if window[1].stop < page_shape[1]:
        lines.append(split[:, -1])
    return set(np.unique(np.concatenate(lines)).tolist()) - {0} if lines else set()


def empty_core(core: tuple[slice, slice]) -> CoreLabels:
    """A core without objects in its read region."""
    none = np.zeros(0, dtype=np.int64)
    shape = (core[0].stop - core[0].start, core[1].stop - core[1].start)
    return CoreLabels(np.zeros(shape, dtype=np.uint32), none, none, none, none, none, none)


def global_table(results: list[dict[str, np.ndarray]], min_size: int) -> np.ndarray:
    """The raw IDs that become labels 1..N, ascending: owned objects of at least `min_size` px, and
    IDs no chunk owns (only where objects were flagged: kept rather than lost)."""
    owned = np.concatenate([r["owned"] for r in results] + [np.zeros(0, np.int64)])
    areas = np.concatenate([r["areas"] for r in results] + [np.zeros(0, np.int64)])
    seen = np.concatenate([r["ids"] for r in results] + [np.zeros(0, np.int64)])
    kept = owned[areas >= max(min_size, 1)]
    return np.union1d(kept, np.setdiff1d(seen, owned))


def to_labels(ids: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Labels 1..N (uint32) of raw `ids` in the ascending `table`; 0 for IDs not in it."""
    at = np.searchsorted(table, ids)
    found = at < len(table)
    found[found] = table[at[found]] == ids[found]
    return np.where(found, at + 1, 0).astype(np.uint32)


def flag_message(name: str, parts: list[dict[str, np.ndarray]], halo: int) -> str | None:
    """The warning for the objects the chunks flagged (None when there are none). An object cut by
    a read region may be larger than the extent seen there."""
    hit = [p for p in parts if len(p["flagged"])]
    if not hit:
        return None
    largest = int(max(p["extents"].max() for p in hit))
    need = int(max(p["needs"].max() for p in hit))
    return (
        f"{name}: objects reach the edge of the read region of {len(hit)} chunk(s) (--halo {halo} px; "
        f"the largest spans at least {largest} px): they may be split or cut at chunk seams - rerun "
        f"with --halo {need} or larger"
    )


def labels_in_chunks(
    probs: np.ndarray, chunk: int, halo: int, threshold: float = 0.5, min_size: int = 0
) -> tuple[np.ndarray, str | None]:
    """`instances_from_boundaries` + `remove_small` of an in-memory `(3, H, W)` map computed chunk by
    chunk (the engine without files or dask): the labels (uint32) and the warning, if any."""
    height, width = probs.shape[1:]
    grid = ChunkGrid(height, width, chunk)
    bits, surface = seed_bits(probs, threshold)
    results = {}
    for index in grid.indices():
        core = grid.core(*index)
        window = read_window(core, halo, height, width)
        results[index] = (
            core_labels(bits[window], surface[window], window, core, (height, width), chunk, halo)
            if bits[window].any()
            else empty_core(core)
        )
    parts = [r.to_arrays() for r in results.values()]
    table = global_table(parts, min_size)
    out = np.zeros((height, width), dtype=np.uint32)
    for index, r in results.items():
        lookup = np.concatenate([[0], to_labels(r.ids, table)]).astype(np.uint32)
        out[grid.core(*index)] = lookup[r.local]
    return out, flag_message("image", parts, halo)


# ---------------------------------------------------------------- the chunked engine's tasks
WORK_ARRAYS = {"split_bits.zarr": "uint8", "split_surface.zarr": "float32", "split_local.zarr": "uint32"}


def create_work_arrays(spec) -> None:
    """The work arrays of the boundary phase: seed bits, boundary probability, core labels."""
    import zarr

    for name, dtype in WORK_ARRAYS.items():
        zarr.open_array(
            Path(spec.work) / name,
            mode="a",
            shape=(spec.pages, spec.height, spec.width),
            chunks=(1, spec.chunk, spec.chunk),
            dtype=dtype,
            fill_value=0,
            zarr_format=2,
        )


def _work(spec, name: str, mode: str = "r"):
    import zarr

    return zarr.open_array(Path(spec.work) / name, mode=mode)


def store_inputs(spec, page: int, core: tuple[slice, slice], probs: np.ndarray) -> None:
    """Phase 1 (predict), boundary models: the core's seed bits and boundary probability."""
    bits, surface = seed_bits(probs, spec.threshold)
    _work(spec, "split_bits.zarr", "r+")[(page,) + core] = bits
    _work(spec, "split_surface.zarr", "r+")[(page,) + core] = surface


def split_chunk(spec, page: int, iy: int, ix: int) -> None:
    """Phase 2b: the seeded watershed of a chunk's read region; core labels into the work array,
    its IDs, owned objects and flags into its marker."""
    from .chunk_spec import marker, save_marker

    done = marker(spec, "split", page, iy, ix)
    if done.exists():
        return
    core = ChunkGrid(spec.height, spec.width, spec.chunk).core(iy, ix)
    window = read_window(core, spec.halo, spec.height, spec.width)
    bits = np.asarray(_work(spec, "split_bits.zarr")[(page,) + window])
    if bits.any():
        surface = np.asarray(_work(spec, "split_surface.zarr")[(page,) + window])
        found = core_labels(bits, surface, window, core, (spec.height, spec.width), spec.chunk, spec.halo)
    else:
        found = empty_core(core)
    if len(found.ids):  # an empty core leaves the array's fill value
        _work(spec, "split_local.zarr", "r+")[(page,) + core] = found.local
    save_marker(done, found.to_arrays())


def split_page(spec, page: int) -> tuple[dict, int, str | None]:
    """Driver, after every chunk's watershed: one page's labels 1..N; saves the page's table (each
    chunk's core IDs -> labels, chunks in row-major order) and returns (chunk -> (offset, count), N,
    the warning or None)."""
    from .chunk_spec import marker

    grid = ChunkGrid(spec.height, spec.width, spec.chunk)
    parts = {}
    for iy, ix in grid.indices():
        with np.load(marker(spec, "split", page, iy, ix)) as data:
            parts[(iy, ix)] = {key: data[key] for key in data.files}
    table = global_table(list(parts.values()), spec.min_size)
    places, offset, pieces = {}, 0, []
    for index in grid.indices():
        ids = parts[index]["ids"]
        places[index] = (offset, len(ids))
        pieces.append(to_labels(ids, table))
        offset += len(ids)
    folder = Path(spec.work) / "split_mapping"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{page}.tmp.npy"
    np.save(tmp, np.concatenate(pieces + [np.zeros(0, np.uint32)]))
    tmp.replace(folder / f"{page}.npy")
    name = Path(spec.input).name + (f" page {page}" if spec.pages > 1 else "")
    return places, len(table), flag_message(name, list(parts.values()), spec.halo)


def split_objects(spec, page: int, core: tuple[slice, slice], offset: int, count: int):
    """Phase 3: a chunk's compact core labels and their table to labels 1..N."""
    shape = (core[0].stop - core[0].start, core[1].stop - core[1].start)
    table = np.zeros(count + 1, dtype=np.uint32)
    if not count:
        return np.zeros(shape, dtype=np.uint32), table
    mapping = np.load(Path(spec.work) / "split_mapping" / f"{page}.npy", mmap_mode="r")
    table[1:] = mapping[offset : offset + count]
    return np.asarray(_work(spec, "split_local.zarr")[(page,) + core]), table


__all__ = ["core_labels", "default_halo", "global_table", "labels_in_chunks", "read_window", "seed_bits"]
