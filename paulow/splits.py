"""Image-level splits: the test share, cross-validation folds and fine-tuning's held-out share.

A split never cuts a page, and it keeps a stack's neighbouring sections together:
- **by file** when every file is a single image, or when there are at least as many files as the
  split has parts (`parts_for(fraction)` for a held-out share, K for K folds): whole files (all
  their pages) are drawn with the seed, so a stack is entirely on one side;
- otherwise (too few files, some of them stacks) **in contiguous page blocks**: the page sequence
  (files in their order, each file's pages in page order) is cut into blocks, and each part is one
  block, so a held-out block never interleaves with training pages (a stack meets the other side
  only at a block's two edges).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .slices import Slice

log = logging.getLogger("paulow")

Key = tuple[str, int]


def _files(slices: Sequence[Slice]) -> dict[str, list[Key]]:
    """Each file's page keys (pages in order), files in their order of appearance."""
    files: dict[str, list[Key]] = {}
    for key in dict.fromkeys(s.key for s in slices):
        files.setdefault(key[0], []).append(key)
    return {name: sorted(keys, key=lambda k: k[1]) for name, keys in files.items()}


def parts_for(fraction: float) -> int:
    """The parts a held-out share of `fraction` implies (0.1 -> 10, 0.25 -> 4; at least 2)."""
    return max(2, round(1 / fraction)) if fraction > 0 else 2


def splits_by_file(files: dict[str, list[Key]], parts: int) -> bool:
    """Whole files are the units when every file is one image or there are `parts` files or more."""
    return len(files) >= parts or all(len(keys) == 1 for keys in files.values())


def _file_order(files: dict[str, list[Key]], seed: int) -> list[str]:
    names = list(files)
    return [names[i] for i in np.random.default_rng(seed).permutation(len(names))]


def _block(sequence: list[Key], n: int, seed: int) -> list[Key]:
    """`n` contiguous keys: slot `seed % slots` of the sequence cut into slots of `n` from its start."""
    slots = max(1, len(sequence) // n)
    start = (seed % slots) * n
    return sequence[start : start + n]


def held_out(slices: Sequence[Slice], fraction: float, seed: int, keep: int = 1) -> set[Key]:
    """The keys of a held-out share: `max(1, round(fraction * files))` whole files drawn with the
    seed, or one contiguous block of `max(1, round(fraction * pages))` pages; at least `keep` files
    (or pages) stay on the other side."""
    files = _files(slices)
    if splits_by_file(files, parts_for(fraction)):
        n = min(max(1, round(fraction * len(files))), len(files) - keep)
        return {k for name in _file_order(files, seed)[:n] for k in files[name]}
    sequence = [k for keys in files.values() for k in keys]
    n = min(max(1, round(fraction * len(sequence))), len(sequence) - keep)
    return set(_block(sequence, n, seed))


def split_test(
    slices: Sequence[Slice], fraction: float, seed: int, keep: int = 1
) -> tuple[list[Slice], list[Slice]]:
    """Hold out a share of the slices (whole pages, at least one when there are 3 or more) as the
    test set, by file or in one contiguous page block (see the module docstring); at least `keep`
    files (or pages) are left for training."""
    if fraction <= 0 or len({s.key for s in slices}) < 3:
        return list(slices), []
    held = held_out(slices, fraction, seed, keep)
    return [s for s in slices if s.key not in held], [s for s in slices if s.key in held]


def fold_parts(slices: Sequence[Slice], k: int, seed: int) -> list[list[Key]]:
    """The validation keys of each of `k` folds (k >= 2, at most the pages): whole files dealt out
    in a seeded order, or the page sequence cut into `k` contiguous blocks (sizes differ by one at
    most, the larger first)."""
    files = _files(slices)
    if splits_by_file(files, k):
        order = _file_order(files, seed)
        return [[key for name in order[i::k] for key in files[name]] for i in range(k)]
    sequence = [key for keys in files.values() for key in keys]
    return [[sequence[j] for j in block] for block in np.array_split(np.arange(len(sequence)), k)]


def kfold(
    slices: Sequence[Slice], k: int, seed: int, val_fraction: float = 0.2
) -> list[tuple[list[Slice], list[Slice]]]:
    """K folds over pages (k == 1: one train/validation split of `val_fraction`). Returns (train,
    val) per fold."""
    keys = {s.key for s in slices}
    if len(keys) < 2:
        log.warning(
            "only one image: it is used for training AND validation, so validation Dice is "
            "optimistic — add more annotated images"
        )
        return [(list(slices), list(slices))]
    parts = (
        [held_out(slices, val_fraction, seed)]
        if k <= 1
        else [set(p) for p in fold_parts(slices, min(k, len(keys)), seed)]
    )
    return [
        ([s for s in slices if s.key not in part], [s for s in slices if s.key in part]) for part in parts
    ]


def _how(files: dict[str, list[Key]], parts: int) -> str:
    return "by file" if splits_by_file(files, parts) else "in contiguous page blocks"


def describe(
    slices: Sequence[Slice],
    rest: Sequence[Slice],
    test: Sequence[Slice],
    folds: int,
    test_fraction: float,
    val_fraction: float = 0.2,
) -> str:
    """How the split was made, for the plan line: e.g. `split: test share by file, 5 folds by file
    (12 files)` or `... in contiguous page blocks (1 file of 30 pages: too few files to split by
    file)`."""
    files, rest_files = _files(slices), _files(rest)
    fold_parts_ = folds if folds > 1 else parts_for(val_fraction)
    test_how = _how(files, parts_for(test_fraction)) if test else "none (too few images)"
    fold_how = _how(rest_files, fold_parts_)
    pages = sum(len(k) for k in files.values())
    text = (
        f"split: test share {test_how}, {'validation' if folds <= 1 else f'{folds} folds'} {fold_how} "
        f"({len(files)} file(s), {pages} page(s)"
    )
    if "blocks" in test_how + fold_how:
        text += ": too few files to split by file, a stack's pages are never interleaved"
    return text + ")"
