"""The benchmark datasets of `../shared/data` with their fixed train/test splits.

    from datasets import load_dataset          # from bench/, or with bench/ on sys.path
    train, test = load_dataset("paulow_filaments")

Splits (see `../shared/data/README.md`; the README's result tables depend on them):
- `isbi2012_em_cells`: `train-volume.tif` pages 0-19 train, 20-29 test (`train-labels.tif`).
- `paulow_filaments`: `image1..10.tif` train, `image11..14.tif` test (`MaskN.tif`).
- `nih3t3_nuclei`: `dna-N.png` (`N.png` masks), the first 12 in natural order of N train, the
  last 6 (42, 44, 45, 46, 47, 49) test.
- `drosophila_vnc_sstem` (multi-class, not in the default `DATASETS`): `images/00..19.tif`,
  `masks/00..19.png` with class indices 0..4 (`CLASS_NAMES`), 00-15 train, 16-19 test.
- `vnc_mitochondria` (binary, not in the default `DATASETS`): the same files and split, the mask
  being class 2 (mitochondria) of `drosophila_vnc_sstem`: EM mitochondria of 1024 x 1024, a binary
  set that no default was chosen on (`BINARY_VIEWS`).

Each split is a list of `paulow.slices.Slice` normalised like training does (`NORMALISATION`), masks
binarised to 0/1 (class indices kept for the datasets of `CLASS_NAMES`), with the `info` dict `paulow.pair_loading.load_pairs` makes plus `info["raw"]`, the
page's first channel as read (file dtype), for baselines that work on raw intensities.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from paulow.api import image_pairs, read_image, read_mask  # noqa: E402
from paulow.errors import EmptyFolderError, PairingError, ShapeMismatchError, UsageError  # noqa: E402
from paulow.mask_classes import binarise_mask  # noqa: E402
from paulow.normalisation import NORMALISATION, normalise  # noqa: E402
from paulow.slices import Slice, foreground_fraction, snr  # noqa: E402

DEFAULT_ROOT = REPO.parent / "shared" / "data"
DATASETS = ("isbi2012_em_cells", "paulow_filaments", "nih3t3_nuclei")
# multi-class datasets: their class names, class 0 first (K = the number of names)
CLASS_NAMES = {"drosophila_vnc_sstem": ("intracellular", "membrane", "mitochondria", "synapse", "glia")}
# binary views of a multi-class dataset: name -> (dataset, the class that is foreground)
BINARY_VIEWS = {"vnc_mitochondria": ("drosophila_vnc_sstem", 2)}
ALL_DATASETS = DATASETS + tuple(CLASS_NAMES) + tuple(BINARY_VIEWS)


def classes_of(name: str) -> int:
    """K of a dataset: 1 (binary) or the number of its class names."""
    return len(CLASS_NAMES.get(name, ())) or 1


@dataclass(frozen=True)
class Item:
    """One image file and its mask; `pages` = the pages used (None: all of them)."""

    image: Path
    mask: Path
    pages: tuple[int, ...] | None = None


Split = tuple[list[Item], list[Item]]


def _isbi(folder: Path) -> Split:
    image, mask = folder / "train-volume.tif", folder / "train-labels.tif"
    for path in (image, mask):
        if not path.is_file():
            raise EmptyFolderError(
                f"'{path}' is missing: restore the ISBI 2012 stacks (see {folder.parent / 'README.md'})"
            )
    return [Item(image, mask, tuple(range(0, 20)))], [Item(image, mask, tuple(range(20, 30)))]


def _first_n(n_train: int, n_total: int) -> Callable[[Path], Split]:
    """Split image/mask pairs of `images/` + `masks/` in natural order: the first `n_train` train."""

    def split(folder: Path) -> Split:
        pairs = image_pairs(folder / "images", folder / "masks")
        if len(pairs) != n_total:
            raise PairingError(
                f"'{folder}' has {len(pairs)} image/mask pairs, the benchmark split "
                f"expects {n_total}: restore the dataset (see {folder.parent / 'README.md'})"
            )
        items = [Item(image, mask) for image, mask in pairs]
        return items[:n_train], items[n_train:]

    return split


SPLITS: dict[str, Callable[[Path], Split]] = {
    "isbi2012_em_cells": _isbi,
    "paulow_filaments": _first_n(10, 14),
    "nih3t3_nuclei": _first_n(12, 18),
    "drosophila_vnc_sstem": _first_n(16, 20),
}


def dataset_folder(name: str, root: Path | None = None) -> Path:
    """`root / name`, checked: raises `UsageError` for an unknown name, `EmptyFolderError` if absent."""
    if name not in SPLITS and name not in BINARY_VIEWS:
        raise UsageError(f"unknown dataset '{name}': choose from {', '.join(ALL_DATASETS)}")
    folder = Path(root or DEFAULT_ROOT) / BINARY_VIEWS.get(name, (name,))[0]
    if not folder.is_dir():
        raise EmptyFolderError(
            f"no dataset folder '{folder}': the benchmarks need ../shared/data "
            "beside the repository (or pass its location as root / --data-root)"
        )
    return folder


def split_items(name: str, root: Path | None = None) -> Split:
    """The (train, test) files and pages of a dataset, without reading any pixel."""
    folder = dataset_folder(name, root)
    return SPLITS[BINARY_VIEWS.get(name, (name,))[0]](folder)


def load_dataset(name: str, root: Path | None = None) -> tuple[list[Slice], list[Slice]]:
    """(train_slices, test_slices) of a benchmark dataset, in split order."""
    train, test = split_items(name, root)
    if name in BINARY_VIEWS:
        parent, foreground = BINARY_VIEWS[name]
        return (
            _binary_view(_load(train, classes_of(parent)), foreground),
            _binary_view(_load(test, classes_of(parent)), foreground),
        )
    return _load(train, classes_of(name)), _load(test, classes_of(name))


def _load(items: Sequence[Item], classes: int = 1) -> list[Slice]:
    return [s for item in items for s in _item_slices(item, classes)]


def _binary_view(slices: Sequence[Slice], foreground: int) -> list[Slice]:
    """The slices with 0/1 masks: class `foreground` against every other class."""
    out = []
    for s in slices:
        mask = (s.mask == foreground).astype(np.uint8)
        out.append(replace(s, mask=mask, info={**s.info, "foreground_fraction": foreground_fraction(mask)}))
    return out


def _item_slices(item: Item, classes: int = 1) -> list[Slice]:
    stack, mask = read_image(item.image), read_mask(item.mask)
    if mask.shape != (stack.shape[0], *stack.shape[2:]):
        raise ShapeMismatchError(
            f"'{item.image.name}' has shape {stack.shape} (pages, C, H, W) but "
            f"its mask '{item.mask.name}' has {mask.shape}: restore the dataset"
        )
    pages = item.pages if item.pages is not None else range(stack.shape[0])
    return [_page_slice(stack, item.image, mask[page], item.mask, page, classes) for page in pages]


def _page_slice(
    stack: np.ndarray, path: Path, mask: np.ndarray, mask_path: Path, page: int, classes: int = 1
) -> Slice:
    """Page `page` of the `(pages, C, H, W)` image `stack` read from `path`, as training records it."""
    raw = stack[page]
    target = binarise_mask(mask, classes)
    info = {
        "file": path.name,
        "page": page,
        "shape": list(raw.shape[1:]),
        "channels": int(raw.shape[0]),
        "dtype": str(raw.dtype),
        "min": float(np.nanmin(raw)),
        "max": float(np.nanmax(raw)),
        "foreground_fraction": foreground_fraction(target),
        "snr": snr(raw[0].astype(np.float64), target),
        "mask_file": mask_path.name,
        "raw": raw[0],
    }
    image = normalise(raw, NORMALISATION["low"], NORMALISATION["high"])
    return Slice(image, target, path, page, info)


def slice_names(slices: Sequence[Slice]) -> list[str]:
    """`file#page` for each slice (the notation of the training reports)."""
    return [f"{s.source.name}#{s.page}" for s in slices]
