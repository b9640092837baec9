"""A fixed, representative subset of validation tiles for the between-epoch validations.

Whole-image validation of many large images is slow on a CPU (6 images of 768x1024 are 210 tiles
of 256 px at half overlap: tens of seconds on 2 cores), so the pacer runs it rarely and best-epoch
selection gets coarse. Above a cap of inference tiles, the between-epoch validations score a fixed
sample of those very tiles instead, each cut out as an ordinary `Slice` (one tile to predict):

- the same crops at every validation (seeded): scores of different epochs are comparable;
- stratified by foreground fraction — background-only, sparse (under `DENSE_FRACTION`, the
  dynamic loss's small/large boundary) and dense crops in proportion to their share of the tiles,
  at least one of each stratum present — so the score sees empty areas (false positives) as often
  as the whole images do;
- K >= 2: every foreground class present in the validation images is in some crop (the crop with
  the most pixels of each class is reserved first, rarest class first);
- spread over the images: each next crop of a stratum comes from the image with the fewest crops.

The default cap (`TrainConfig.val_tiles`): 24 tiles of 256 px on a CPU (1.6 M pixels, 96 tiles of
128 px on a GPU): a 256 px tile's forward pass costs about a sixth of a training step of 8 patches
of 128 px, so one validation costs about 4 steps (against ~35 for the 210-tile example) and can
run every epoch, while 24 crops still hold thousands of objects' worth of pixels for the Dice.
Threshold tuning, the final scores, the test score and panels keep using whole images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import cast

import numpy as np

from .slices import Slice, foreground_fraction, snr

DENSE_FRACTION = 0.0625  # the dynamic loss's `high`: crops above it are "dense"
STRATA = ("background", "sparse", "dense")


def tile_positions(shape: Sequence[int], tile: int, overlap: float) -> list[tuple[int, int]]:
    """(y, x) of the tiles `paulow.infer.predict_slice` runs over an (H, W) slice."""
    from .infer import tile_starts

    step = max(1, round(tile * (1 - overlap)))
    ys, xs = (tile_starts(max(int(n), tile), tile, step) for n in shape[-2:])
    return [(y, x) for y in ys for x in xs]


def checked_tiles(whole_tiles: float, cap: int) -> float:
    """Tiles one between-epoch validation predicts: all of them up to `cap` (0: no cap), else `cap`."""
    return whole_tiles if cap <= 0 or whole_tiles <= cap else float(cap)


def stratum(fraction: float, dense: float = DENSE_FRACTION) -> int:
    """0 background-only, 1 sparse (under `dense`), 2 dense."""
    return 0 if fraction == 0 else (1 if fraction < dense else 2)


def allocate(sizes: Sequence[int], n: int, floors: Sequence[int]) -> list[int]:
    """`n` picks over strata of `sizes` candidates, proportional to the sizes: start from `floors`,
    then one pick at a time to the stratum furthest below its share `n * size / total` (ties: the
    first), never more than a stratum holds."""
    total = sum(sizes)
    alloc = list(floors)
    while sum(alloc) < min(n, total):
        open_ = [s for s in range(len(sizes)) if alloc[s] < sizes[s]]
        alloc[max(open_, key=lambda s: (n * sizes[s] / total - alloc[s], -s))] += 1
    return alloc


def crop_slice(s: Slice, y: int, x: int, tile: int) -> Slice:
    """The `tile` x `tile` crop of `s` at (y, x) (clipped to the slice) as a `Slice`: image, mask and
    instance labels cut alike; `info` gets the crop's `shape`, `foreground_fraction`, `snr` (affine
    normalisation keeps it) and `crop` [y, x, h, w]; its min/max stay those of the whole slice."""
    image = np.ascontiguousarray(s.image[:, y : y + tile, x : x + tile])
    mask = np.ascontiguousarray(cast(np.ndarray, s.mask)[y : y + tile, x : x + tile])  # validation: labelled
    labels = None if s.labels is None else np.ascontiguousarray(s.labels[y : y + tile, x : x + tile])
    marked = None if s.labelled is None else np.ascontiguousarray(s.labelled[y : y + tile, x : x + tile])
    h, w = mask.shape
    info = {**s.info, "shape": [h, w], "foreground_fraction": foreground_fraction(mask), "crop": [y, x, h, w]}
    if "snr" in s.info:
        info["snr"] = snr(image[0].astype(np.float64), mask)
    return replace(s, image=image, mask=mask, labels=labels, info=info, labelled=marked)


def validation_subset(
    val: Sequence[Slice],
    tile: int,
    overlap: float,
    cap: int,
    seed: int = 0,
    classes: int = 1,
    dense: float = DENSE_FRACTION,
) -> list[Slice]:
    """The slices the between-epoch validations score (see the module docstring): `val` itself when
    its inference tiles (of `tile` px at `overlap`) are at most `cap` or `cap` is 0, else exactly
    `cap` of those tiles as crops, sorted by image then position. Deterministic for a `seed`."""
    candidates = [
        (i, y, x) for i, s in enumerate(val) for y, x in tile_positions(s.image.shape, tile, overlap)
    ]
    if cap <= 0 or len(candidates) <= cap:
        return list(val)
    masks = [cast(np.ndarray, val[i].mask)[y : y + tile, x : x + tile] for i, y, x in candidates]
    strata = [stratum(foreground_fraction(m), dense) for m in masks]
    chosen = _class_crops(masks, classes, cap) if classes >= 2 else []
    sizes = [strata.count(k) for k in range(len(STRATA))]
    reserved = [sum(strata[c] == k for c in chosen) for k in range(len(STRATA))]
    floors = [max(r, 1 if size else 0) for r, size in zip(reserved, sizes)]
    alloc = allocate(sizes, cap, floors if sum(floors) <= cap else reserved)
    rng = np.random.default_rng(seed)
    rank = rng.permutation(len(val))  # tie-break between images with as many crops
    per_image = np.bincount([candidates[c][0] for c in chosen], minlength=len(val))
    taken = set(chosen)
    for k in range(len(STRATA)):
        pools: dict[int, list[int]] = {}
        for c in rng.permutation(len(candidates)):  # each image's crops of this stratum, shuffled
            if strata[c] == k and int(c) not in taken:
                pools.setdefault(candidates[c][0], []).append(int(c))
        for _ in range(alloc[k] - reserved[k]):
            i = min((i for i in pools if pools[i]), key=lambda i: (per_image[i], rank[i]))
            c = pools[i].pop()
            chosen.append(c)
            taken.add(c)
            per_image[i] += 1
    return [crop_slice(val[i], y, x, tile) for i, y, x in sorted(candidates[c] for c in chosen)]


def _class_crops(masks: Sequence[np.ndarray], classes: int, cap: int) -> list[int]:
    """K >= 2: for each foreground class present (rarest first) and not yet in a chosen crop, the
    crop with the most pixels of it (the first of equals); at most `cap` crops."""
    counts = np.stack([np.bincount(m.ravel().astype(np.int64), minlength=classes)[:classes] for m in masks])
    chosen: list[int] = []
    for c in sorted(range(1, classes), key=lambda c: (counts[:, c].sum(), c)):
        if counts[:, c].sum() == 0 or any(counts[j, c] for j in chosen):
            continue
        if len(chosen) == cap:
            break
        chosen.append(int(np.argmax(counts[:, c])))
    return chosen


def describe(vals: Sequence[Sequence[Slice]], tile: int, overlap: float, cap: int) -> str:
    """The plan's validation line for folds' validation sets, e.g.
    "validation: 24 tiles of 6 images (subset)" (ranges like "5-6" when the folds differ)."""
    whole = [sum(len(tile_positions(s.image.shape, tile, overlap)) for s in v) for v in vals]
    used = [int(checked_tiles(t, cap)) for t in whole]
    subset = [u < t for u, t in zip(used, whole)]
    how = "subset" if all(subset) else "whole images" if not any(subset) else f"subset where over {cap} tiles"
    return f"validation: {_span(used)} tiles of {_span([len(v) for v in vals])} images ({how})"


def _span(values: Sequence[int]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


__all__ = ["validation_subset", "checked_tiles", "tile_positions", "crop_slice", "describe", "allocate"]
