"""Slices with provenance, normalisation, image-level splits, patch sampling and augmentation."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, cast

import numpy as np

from .errors import ShapeMismatchError, UnreadableImageError
from .splits import kfold, split_test  # re-exported: the splits live in `paulow.splits`

if TYPE_CHECKING:
    from .palette import Palette

log = logging.getLogger("paulow")

NORMALISATION = {"method": "percentile", "low": 1.0, "high": 99.8}
# Percentiles of very large slices are estimated on a regular subsample: same result for the same data
# whatever its dtype, and a 20k x 20k image does not need a full sort.
_PERCENTILE_SAMPLE = 4_000_000


@dataclass
class Slice:
    """One 2-D slice (a page of a file) ready for the network."""

    image: np.ndarray  # float32 (C, H, W), normalised
    mask: np.ndarray | None  # (H, W) uint8: 0/1, or class index
    source: Path
    page: int
    info: dict = field(default_factory=dict)
    labels: np.ndarray | None = None  # (H, W) instance labels when the mask file holds them
    # (H, W) bool, sparse labels: the labelled pixels (the others are ignored by the loss, the patch
    # sampling and the scores); None: every pixel is labelled (dense labels)
    labelled: np.ndarray | None = None

    def instances(self) -> np.ndarray:
        """Instance labels: the mask file's own, else 8-connected components of the foreground."""
        from .weights import instance_labels

        return self.labels if self.labels is not None else instance_labels(cast(np.ndarray, self.mask) != 0)

    @property
    def key(self) -> tuple[str, int]:
        return (str(self.source), self.page)


def labelled_of(slices: Sequence[Slice]) -> list[np.ndarray | None] | None:
    """Each slice's labelled pixels (None for a dense one), or None when every slice is dense (the
    scores and losses then run exactly as without sparse labels)."""
    if all(s.labelled is None for s in slices):
        return None
    return [s.labelled for s in slices]


def normalise(image: np.ndarray, low: float = 1.0, high: float = 99.8) -> np.ndarray:
    """Scale each channel of a (C, H, W) slice so its low/high percentiles map to 0 and 1 (float32).

    Non-finite pixels become 0 before scaling; a constant channel becomes all zeros.
    """
    out = np.empty(image.shape, dtype=np.float32)
    for c in range(image.shape[0]):
        channel = image[c].astype(np.float32, copy=False)
        finite = np.isfinite(channel)
        if not finite.all():
            channel = np.where(finite, channel, 0.0).astype(np.float32)
        flat = channel.reshape(-1)
        if flat.size > _PERCENTILE_SAMPLE:
            flat = flat[:: math.ceil(flat.size / _PERCENTILE_SAMPLE)]
        lo, hi = np.percentile(flat, [low, high]) if flat.size else (0.0, 0.0)
        scale = float(hi - lo)
        if scale <= 0 or not math.isfinite(scale):
            out[c] = 0.0
            continue
        np.subtract(channel, np.float32(lo), out=out[c])
        out[c] *= np.float32(1.0 / scale)
    return out


def normalise_with(image: np.ndarray, spec: dict) -> np.ndarray:
    """Apply the normalisation recorded in a model file to a (C, H, W) slice."""
    if spec.get("method") == "window":  # a fixed window (e.g. CT Hounsfield units), see paulow.intensity
        from .intensity import apply_window

        return apply_window(image, float(spec["low"]), float(spec["high"]))
    if spec.get("method") == "scale255":  # the original PAULow: ToTensor on 8-bit RGB
        return (np.nan_to_num(image.astype(np.float32)) / 255.0).astype(np.float32)
    return normalise(image, float(spec.get("low", 1.0)), float(spec.get("high", 99.8)))


def binarise_mask(mask: np.ndarray, classes: int = 1) -> np.ndarray:
    """Binary task: any non-zero pixel is foreground (instance labels work). Else class indices."""
    if classes <= 1:
        return (mask != 0).astype(np.uint8)
    if mask.max(initial=0) >= classes or mask.min(initial=0) < 0:
        raise ValueError(f"values outside 0..{classes - 1}")
    return mask.astype(np.uint8)


def class_target(mask: np.ndarray, classes: int, name: str, page: int) -> np.ndarray:
    """`binarise_mask` of one page; values outside 0..K-1 are a `ShapeMismatchError` naming the mask."""
    try:
        return binarise_mask(mask, classes)
    except ValueError as exc:
        raise ShapeMismatchError(
            f"mask '{name}' page {page} has {exc} for a {classes}-class task — fix the mask or --classes"
        ) from None


def instance_source(mask: np.ndarray, classes: int = 1) -> np.ndarray | None:
    """A binary task's mask page when it holds instance labels (several non-zero values), else None
    (its connected components are the instances; class indices are not instances)."""
    if classes > 1 or np.unique(mask[mask != 0]).size < 2:
        return None
    return mask.astype(np.int32)


def foreground_fraction(mask: np.ndarray) -> float:
    """Share of non-zero pixels."""
    return float(np.count_nonzero(mask)) / max(mask.size, 1)


def snr(raw: np.ndarray, mask: np.ndarray) -> float:
    """Signal-to-noise: (mean foreground - mean background) / std background, on the first channel."""
    fg, bg = raw[mask > 0], raw[mask == 0]
    if fg.size == 0 or bg.size == 0:
        return float("nan")
    std = float(bg.std())
    return float((fg.mean() - bg.mean()) / std) if std > 0 else float("inf")


# ---------------------------------------------------------------- loading and validation
def _read_all(
    pairs: Sequence[tuple[Path, Path]],
    refused: list | None = None,
    classes: int = 1,
    palette: Palette | None = None,
) -> list[tuple]:
    """Read every pair (K >= 2 colour masks through `palette`, see `read_class_mask`). A pair that
    cannot be read raises, or, when `refused` is a list, is appended to it as (image path, message)
    and left out, as long as some pair can be read."""
    from . import io
    from .palette import read_class_mask
    from .volumes import check_mask_geometry

    loaded, bad = [], []
    for image_path, mask_path in pairs:
        check_mask_geometry(image_path, mask_path)
        try:
            loaded.append(
                (io.read_image(image_path), read_class_mask(mask_path, classes, palette), mask_path)
            )
        except UnreadableImageError as exc:
            bad.append((image_path, str(exc)))
    if bad and (refused is None or not loaded):
        raise UnreadableImageError(f"{len(bad)} file(s) cannot be read: " + " | ".join(m for _, m in bad))
    if refused is not None:
        refused.extend(bad)
    return loaded


def _check_shapes(loaded: list[tuple]) -> None:
    problems = []
    for stack, mask, mask_path in loaded:
        pages, _, h, w = stack.data.shape
        if mask.shape[0] != pages:
            problems.append(
                f"'{stack.path.name}' has {pages} page(s) but its mask '{mask_path.name}' has {mask.shape[0]}"
            )
        elif mask.shape[1:] != (h, w):
            problems.append(
                f"'{stack.path.name}' is {h}x{w} (HxW) but its mask '{mask_path.name}' is "
                f"{mask.shape[1]}x{mask.shape[2]}"
            )
    if problems:
        raise ShapeMismatchError(
            "; ".join(problems) + " — give each image a mask of the same size and page count"
        )
    channels: dict[int, list[str]] = {}
    for stack, _, _ in loaded:
        channels.setdefault(stack.data.shape[1], []).append(stack.path.name)
    if len(channels) > 1:
        listing = "; ".join(
            f"{c} channel(s): {', '.join(names[:5])}" for c, names in sorted(channels.items())
        )
        raise ShapeMismatchError(
            f"training images have mixed channel counts ({listing}) — convert them "
            "all to the same number of channels (e.g. all greyscale)"
        )


def _values_text(values: np.ndarray, most: int = 8) -> str:
    shown = ", ".join(str(int(v)) for v in values[:most])
    return shown + (f", ... ({len(values)} values)" if len(values) > most else "")


def check_class_values(loaded: list[tuple], classes: int) -> None:
    """K >= 2: every mask must hold class indices 0..K-1. One error names the first bad mask, the
    values found in it and the fix (`--classes`, or `--classes 1` for 0/255 binary masks)."""
    if classes < 2:
        return
    bad = []
    for _, mask, mask_path in loaded:
        values = np.unique(mask)
        if values.size and (values[0] < 0 or values[-1] >= classes):
            bad.append((mask_path.name, values))
    if not bad:
        return
    name, values = bad[0]
    if set(values.tolist()) <= {0, 255}:
        fix = (
            "it looks like a binary 0/255 mask: use --classes 1 for one foreground class, or save "
            f"class indices 0..{classes - 1} (0 = background)"
        )
    else:
        fix = (
            f"use --classes {int(values[-1]) + 1} if the mask has that many classes (0 = background), "
            f"or fix the mask to hold 0..{classes - 1}"
        )
    more = f" (and {len(bad) - 1} more mask(s): {', '.join(n for n, _ in bad[1:4])})" if len(bad) > 1 else ""
    raise ShapeMismatchError(
        f"mask '{name}' has values {_values_text(values)} but --classes {classes} "
        f"allows 0..{classes - 1}{more} — {fix}"
    )


CLASS_NAMES_FILE = "classes.txt"


def class_names_beside(mask_dir: Path) -> list[str]:
    """Class names from `classes.txt` in the masks folder (one name per line, class 0 first; blank
    lines ignored), or [] when there is none."""
    path = Path(mask_dir) / CLASS_NAMES_FILE
    if not path.is_file():
        return []
    from .textfile import read_text

    text = read_text(path, "class names file", "save it as UTF-8 text, one name per line")
    return [line.strip() for line in text.splitlines() if line.strip()]


def _mask_warnings(loaded: list[tuple], classes: int) -> None:
    many = [m.name for _, mask, m in loaded if classes <= 1 and np.unique(mask).size > 2]
    if many:
        log.warning(
            "%d mask(s) have more than two values (%s): treated as labels, every non-zero "
            "pixel is foreground",
            len(many),
            ", ".join(many[:5]),
        )
    if all(not np.any(mask) for _, mask, _ in loaded):
        log.warning(
            "every mask is empty (all background): the model can only learn to predict "
            "background — check TRAINING_MASKS"
        )


def load_pairs(
    image_dir: Path,
    mask_dir: Path,
    classes: int = 1,
    normalisation: dict | None = None,
    refused: list | None = None,
    palette: Palette | None = None,
) -> list[Slice]:
    """Read and validate a whole image/mask folder pair before any long work starts.

    `normalisation` is a model file's recorded spec (default: `NORMALISATION`). With a `refused`
    list, unreadable pairs and entries that are not files are listed there as (path, message) and
    left out instead of stopping the run. For K >= 2, colour masks are mapped to classes through
    `palette` (see `paulow.palette`); without one they are an error.
    """
    from . import io
    from .errors import EmptyFolderError

    images, masks = io.list_images(image_dir), io.list_images(mask_dir)
    if refused is not None:
        refused.extend(io.list_unusable(image_dir) + io.list_unusable(mask_dir))
    if not images:
        raise EmptyFolderError(_no_images(image_dir))
    if not masks:
        raise EmptyFolderError(f"no masks in '{mask_dir}': put one mask per image there")
    loaded = _read_all(io.pair_images_masks(images, masks), refused, classes, palette)
    _check_shapes(loaded)
    check_class_values(loaded, classes)
    from .swapped import check_masks_not_images

    check_masks_not_images(
        [(m.name, mask, stack.data) for stack, mask, m in loaded], f"'{mask_dir}'", classes
    )
    _mask_warnings(loaded, classes)
    spec = normalisation or NORMALISATION
    return [
        s
        for stack, mask, mask_path in loaded
        for s in _to_slices(stack, mask, mask_path, classes=classes, spec=spec)
    ]


def _to_slices(stack, mask: np.ndarray, mask_path: Path, classes: int, spec: dict) -> list[Slice]:
    from . import io

    bad = io.count_nonfinite(stack.data)
    if bad:
        log.warning("'%s' has %d NaN/inf pixel(s): they are set to 0", stack.path.name, bad)
    slices = []
    for page in range(stack.data.shape[0]):
        raw = stack.data[page]
        target = class_target(mask[page], classes, mask_path.name, page)
        info = {
            "file": stack.path.name,
            "page": page,
            "shape": list(raw.shape[1:]),
            "channels": int(raw.shape[0]),
            "dtype": str(raw.dtype),
            "min": float(np.nanmin(raw)),
            "max": float(np.nanmax(raw)),
            "foreground_fraction": foreground_fraction(target),
            "snr": snr(raw[0].astype(np.float64), target),
            "mask_file": mask_path.name,
        }
        slices.append(
            Slice(
                normalise_with(raw, spec),
                target,
                stack.path,
                page,
                info,
                instance_source(mask[page], classes),
            )
        )
    return slices


def _no_images(image_dir: Path) -> str:
    from . import io

    note = io.vendor_files_note(image_dir)
    return f"no images in '{image_dir}': " + (note if note else "put .tif/.tiff/.png/.jpg images there")


def load_images(image_dir: Path) -> list[Path]:
    """The images of an input folder (raises when there are none)."""
    from . import io
    from .errors import EmptyFolderError

    images = io.list_images(image_dir)
    if not images:
        raise EmptyFolderError(_no_images(image_dir))
    note = io.vendor_files_note(image_dir)
    if note:
        logging.getLogger("paulow").warning("skipped %s", note)
    return images


# ---------------------------------------------------------------- patches
def grid_starts(length: int, patch: int, step: int) -> list[int]:
    """Start offsets covering [0, length) with the last patch flush to the end."""
    if length <= patch:
        return [0]
    starts = list(range(0, length - patch + 1, max(step, 1)))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return starts


def pad_to(image: np.ndarray, mask: np.ndarray, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """Reflect-pad a slice smaller than a patch (mask padded with background)."""
    h, w = image.shape[-2:]
    ph, pw = max(0, patch - h), max(0, patch - w)
    if not (ph or pw):
        return image, mask
    mode: Literal["reflect", "symmetric"] = "reflect" if ph < h and pw < w else "symmetric"
    image = np.pad(image, ((0, 0), (0, ph), (0, pw)), mode=mode)
    mask = np.pad(mask, ((0, ph), (0, pw)), mode="constant")
    return image, mask


@dataclass
class Augment:
    """Flips, 90-degree rotations and intensity scale/shift/gamma, on (C, P, P) patches.

    `rotations=False` keeps only mirror flips: for structures with a preferred direction (the
    filaments of `paulow_filaments` are annotated along the cell axis only), 90-degree turns teach
    the network orientations the data never shows.
    """

    flips: bool = True
    rotations: bool = True
    intensity: bool = True
    scale: tuple[float, float] = (0.8, 1.25)
    shift: tuple[float, float] = (-0.1, 0.1)
    gamma: tuple[float, float] = (0.7, 1.4)

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, *planes: np.ndarray):
        """Augmented `(image, mask, *planes)`: each `(H, W)` plane (e.g. a border weight map) gets the
        mask's turns and flips."""
        planes = (mask, *planes)
        if self.flips:
            k = int(rng.integers(4)) if self.rotations else 2 * int(rng.integers(2))  # 2 turns = both flips
            image, planes = np.rot90(image, k, axes=(1, 2)), tuple(np.rot90(p, k) for p in planes)
            if rng.random() < 0.5:
                image, planes = image[:, :, ::-1], tuple(p[:, ::-1] for p in planes)
        if self.intensity:
            image = np.ascontiguousarray(image, dtype=np.float32)
            gamma = float(np.exp(rng.uniform(*np.log(self.gamma))))
            positive = np.clip(image, 0, None)
            image = image - positive + positive**gamma
            image = image * rng.uniform(*self.scale) + rng.uniform(*self.shift)
        return (np.ascontiguousarray(image, dtype=np.float32), *(np.ascontiguousarray(p) for p in planes))


class PatchDataset:
    """All grid patches of every slice (background ones included) plus random-offset crops.

    Patches are cut on the fly; `reshuffle(epoch)` draws new random crop positions. With
    `per_epoch`, each epoch uses a random subset of that size (every patch is still in the pool).
    With `border_weight` (w0, sigma) each slice's border weight map (see `paulow.weights`) is
    computed once, cut and augmented with the mask, and items are `(image, target, weight)`.
    Sparse labels (a slice with `labelled`): patches without a labelled pixel are never drawn, and
    items end with the patch's labelled pixels (bool `(P, P)`; see `planes`).
    """

    def __init__(
        self,
        slices: Sequence[Slice],
        patch: int = 128,
        overlap: int = 64,
        random_fraction: float = 0.5,
        augment: Augment | None = None,
        classes: int = 1,
        seed: int = 0,
        per_epoch: int | None = None,
        border_weight: Sequence[float] | None = None,
    ) -> None:
        self.patch, self.classes, self.augment, self.seed = patch, classes, augment, seed
        self.items = [pad_to(s.image, cast(np.ndarray, s.mask), patch) for s in slices]
        self.weights = None
        if border_weight is not None:
            from .weights import border_weight_map

            w0, sigma = border_weight
            self.weights = [
                border_weight_map(pad_to(s.image, s.instances(), patch)[1], w0, sigma) for s in slices
            ]
        self.labelled: list[np.ndarray] | None = None
        self.painted: list[np.ndarray] = []
        if any(s.labelled is not None for s in slices):  # padding is unlabelled
            self.labelled = [pad_to(s.image, _labelled(s), patch)[1] for s in slices]
            self.painted = [np.flatnonzero(m) for m in self.labelled]  # where crops may centre
        step = patch - overlap
        self.grid = [
            (i, y, x)
            for i, (img, _) in enumerate(self.items)
            for y in grid_starts(img.shape[1], patch, step)
            for x in grid_starts(img.shape[2], patch, step)
            if self.labelled is None or self.labelled[i][y : y + patch, x : x + patch].any()
        ]
        self.n_random = int(round(random_fraction * len(self.grid)))
        self.per_epoch = per_epoch
        self.reshuffle(0)

    def reshuffle(self, epoch: int) -> None:
        """Draw this epoch's random crops (and subset) deterministically from the seed and epoch."""
        rng = np.random.default_rng([self.seed, epoch])
        randoms = []
        for _ in range(self.n_random if self.labelled is None else 0):
            i = int(rng.integers(len(self.items)))
            h, w = self.items[i][0].shape[1:]
            randoms.append((i, int(rng.integers(h - self.patch + 1)), int(rng.integers(w - self.patch + 1))))
        if self.labelled is not None:
            randoms = self._labelled_crops(rng)
        pool = self.grid + randoms
        if self.per_epoch and self.per_epoch < len(pool):
            pool = [pool[j] for j in rng.permutation(len(pool))[: self.per_epoch]]
        self.positions = pool
        self.epoch = epoch

    def _labelled_crops(self, rng: np.random.Generator) -> list[tuple[int, int, int]]:
        """Sparse labels: random crops around a random labelled pixel (each holds at least one)."""
        marks, where = cast(list, self.labelled), self.painted
        painted = [i for i, w in enumerate(where) if w.size]
        crops = []
        for _ in range(self.n_random if painted else 0):
            i = painted[int(rng.integers(len(painted)))]
            h, w = marks[i].shape
            py, px = divmod(int(where[i][int(rng.integers(where[i].size))]), w)
            y = min(max(py - int(rng.integers(self.patch)), 0), h - self.patch)
            x = min(max(px - int(rng.integers(self.patch)), 0), w - self.patch)
            crops.append((i, y, x))
        return crops

    def planes(self, extra: Sequence) -> tuple:
        """(border weight, labelled pixels) of a batch's extra items (each None when absent)."""
        extra = list(extra)
        weight = extra.pop(0) if self.weights is not None else None
        return weight, (extra.pop(0) if self.labelled is not None else None)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, index: int):
        import torch

        i, y, x = self.positions[index]
        image, mask = self.items[i]
        p = self.patch
        img, msk = image[:, y : y + p, x : x + p], mask[y : y + p, x : x + p]
        planes = () if self.weights is None else (self.weights[i][y : y + p, x : x + p],)
        if self.labelled is not None:
            planes = (*planes, self.labelled[i][y : y + p, x : x + p])
        if self.augment is not None:
            img, msk, *planes = self.augment(
                img, msk, np.random.default_rng([self.seed, self.epoch, index]), *planes
            )
        target = one_hot(msk, self.classes)
        return (
            torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)),
            torch.from_numpy(target),
            *(torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)) for w in planes),
        )


def _labelled(s: Slice) -> np.ndarray:
    """A slice's labelled pixels (all of a dense slice's)."""
    return np.ones(s.image.shape[-2:], bool) if s.labelled is None else np.asarray(s.labelled, bool)


def one_hot(mask: np.ndarray, classes: int) -> np.ndarray:
    """(H, W) mask -> float32 (K, H, W) target (K == 1: the foreground channel)."""
    if classes <= 1:
        return (mask > 0).astype(np.float32)[None]
    return (np.arange(classes)[:, None, None] == mask[None]).astype(np.float32)


def describe_split(name: str, slices: Sequence[Slice]) -> str:
    """`train: 8 slices from 8 files` — for the run plan."""
    files = {s.source for s in slices}
    return f"{name}: {len(slices)} slice(s) from {len(files)} file(s)"


def check_channels(slices: Sequence[Slice], expected: int, where: str) -> None:
    """Raise when slices do not have the channel count a model expects."""
    for s in slices:
        if s.image.shape[0] != expected:
            raise ShapeMismatchError(
                f"'{s.source.name}' has {s.image.shape[0]} channel(s) but the model expects {expected} "
                f"({where}) — convert the images or choose a model trained on {s.image.shape[0]}-channel "
                "images"
            )


__all__ = [
    "Slice",
    "normalise",
    "normalise_with",
    "load_pairs",
    "split_test",
    "kfold",
    "PatchDataset",
    "Augment",
]
