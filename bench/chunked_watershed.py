"""The chunked seeded watershed (`paulow.chunk_watershed.labels_in_chunks`) against the whole-image
one (`instances_from_boundaries`) on a synthetic confluent field of touching discs, as one mask
component that spans the whole image (the hard case for chunking).

    python bench/chunked_watershed.py [--sizes 2048 4096] [--chunk 1024] [--radius 9] [--json OUT]

Per size: objects, whether the chunked labels equal the whole-image labels (same IDs), the warning
(None expected: the default halo holds the largest disc), seconds and the tracemalloc peak of each
path (numpy and scikit-image buffers; one process, one path at a time; the chunked path's peak includes
its whole-image output and seed maps, which the engine keeps on disk), and the peak of one chunk's
watershed step per pixel of its read region.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout


def confluent_field(size: int, radius: int, seed: int = 0) -> tuple[np.ndarray, int]:
    """(3, size, size) float32 probabilities of touching discs on a jittered grid (1 px boundary
    target, 0.9 on the true class, noise), and the largest disc's bounding-box side."""
    from scipy import ndimage

    from paulow.boundaries import boundary_target

    rng = np.random.default_rng(seed)
    step = 2 * radius - 1  # neighbours overlap by a pixel: every disc touches its neighbours
    centres = np.zeros((size, size), dtype=np.int32)
    ys = np.arange(radius, size, step)
    grid = np.stack(np.meshgrid(ys, ys, indexing="ij"), -1).reshape(-1, 2)
    grid = np.clip(grid + rng.integers(-1, 2, grid.shape), 0, size - 1)
    centres[grid[:, 0], grid[:, 1]] = np.arange(1, len(grid) + 1)
    # each pixel joins its nearest centre within `radius`: touching discs, no overlaps
    distance, (iy, ix) = ndimage.distance_transform_edt(centres == 0, return_indices=True)
    labels = np.where(distance <= radius, centres[iy, ix], 0)
    target = boundary_target(labels, 1)
    probs = np.full((3, size, size), 0.05, dtype=np.float32)
    for k in range(3):
        probs[k][target == k] = 0.9
    probs += rng.uniform(0, 0.04, probs.shape).astype(np.float32)
    boxes = [b for b in ndimage.find_objects(labels) if b is not None]
    return probs, max(max(b[0].stop - b[0].start, b[1].stop - b[1].start) for b in boxes)


def measured(fn, *args, **kwargs):
    tracemalloc.start()
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, seconds, peak


def one_size(size: int, chunk: int, radius: int) -> dict:
    from scipy import ndimage

    from paulow.boundaries import instances_from_boundaries
    from paulow.chunk_watershed import labels_in_chunks

    probs, largest = confluent_field(size, radius)
    halo = largest + 1  # the default rule: the largest object + 1 px
    whole, whole_s, whole_peak = measured(instances_from_boundaries, probs, threshold=0.5)
    (chunked, warning), chunked_s, chunked_peak = measured(labels_in_chunks, probs, chunk, halo)
    components = ndimage.label(whole > 0, structure=np.ones((3, 3)))[1]
    window_px, one_peak = one_chunk(probs, chunk, halo)
    return {
        "size": size,
        "chunk": chunk,
        "halo": halo,
        "objects": int(whole.max()),
        "mask_components": int(components),
        "equal": bool(np.array_equal(whole, chunked)),
        "warning": warning,
        "whole_s": round(whole_s, 2),
        "chunked_s": round(chunked_s, 2),
        "whole_peak_mib": round(whole_peak / 2**20, 1),
        "chunked_peak_mib": round(chunked_peak / 2**20, 1),
        "one_chunk_window_px": window_px,
        "one_chunk_peak_mib": round(one_peak / 2**20, 1),
        "one_chunk_bytes_per_window_px": round(one_peak / window_px, 1),
    }


def one_chunk(probs: np.ndarray, chunk: int, halo: int) -> tuple[int, int]:
    """Pixels of the read region of the most central chunk, and the tracemalloc peak of its
    watershed step alone (`core_labels`: what a chunk task holds beyond its two input maps)."""
    from paulow.chunk_watershed import core_labels, read_window, seed_bits
    from paulow.chunking import ChunkGrid

    height, width = probs.shape[1:]
    grid = ChunkGrid(height, width, chunk)
    core = grid.core(grid.shape[0] // 2, grid.shape[1] // 2)
    window = read_window(core, halo, height, width)
    bits, surface = seed_bits(probs[:, window[0], window[1]], 0.5)
    _, _, peak = measured(core_labels, bits, surface, window, core, (height, width), chunk, halo)
    return bits.size, peak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096])
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument("--radius", type=int, default=9)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    one_size(64, 32, args.radius)  # warm-up: imports and first calls are not measured
    rows = []
    for size in args.sizes:
        rows.append(one_size(size, args.chunk, args.radius))
        print(json.dumps(rows[-1]), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if all(r["equal"] and r["warning"] is None for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
