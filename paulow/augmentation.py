"""Patch augmentation: mirror flips, 90-degree turns and intensity scale, shift and gamma."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
