"""Training patches: every slice's grid patches plus random crops, cut on the fly (`PatchDataset`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, cast

import numpy as np

from .augmentation import Augment
from .slices import Slice


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
