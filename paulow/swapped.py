"""Catch a masks folder that holds images (folders swapped, or raw images copied as masks) before
training, instead of training on them and clearing the inputs.

A binary task's mask looks like an image when it has many values (more than `MANY_VALUES`) and is
not piecewise constant (fewer than `FLAT_SHARE` of its neighbouring pixel pairs, among those touching
a non-zero pixel, are equal: instance labels are flat inside every object), and either
- nearly every pixel is non-zero (at least `FULL_SHARE`), or
- its values follow its image's intensities over its non-zero pixels (Pearson r >= `CORRELATED`;
  a label's number has nothing to do with the brightness inside the object).
When most masks look like images it is one error naming them; a few such masks are a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from .errors import UsageError

log = logging.getLogger("paulow")

MANY_VALUES = 16
FLAT_SHARE = 0.5
FULL_SHARE = 0.9
CORRELATED = 0.9


class MasksLookLikeImagesError(UsageError):
    """The masks given for training are images (e.g. the images and masks folders swapped)."""


def _flat_share(mask: np.ndarray) -> float:
    """Share of horizontal and vertical neighbour pairs (within pages) with equal values, among
    the pairs with a non-zero pixel."""
    equal = touching = 0
    for a, b in ((mask[..., :, 1:], mask[..., :, :-1]), (mask[..., 1:, :], mask[..., :-1, :])):
        counted = (a != 0) | (b != 0)
        touching += int(np.count_nonzero(counted))
        equal += int(np.count_nonzero(counted & (a == b)))
    return equal / touching if touching else 1.0


def _correlation(mask: np.ndarray, image: np.ndarray | None) -> float:
    """Pearson r of the mask's values and the image's (mean over channels) on non-zero mask pixels."""
    if image is None:
        return 0.0
    inside = mask != 0
    if np.count_nonzero(inside) < 50:
        return 0.0
    values = mask[inside].astype(np.float64)
    intensity = np.asarray(image, dtype=np.float64).mean(axis=1)[inside]
    if values.std() == 0 or intensity.std() == 0:
        return 0.0
    return float(np.corrcoef(values, intensity)[0, 1])


def image_like(mask: np.ndarray, image: np.ndarray | None = None) -> str | None:
    """Why a `(pages, H, W)` mask (raw values) looks like an image (`image`: its raw `(pages, C,
    H, W)` image), or None when it may be a mask."""
    mask = np.asarray(mask)
    values = np.unique(mask).size
    if values <= MANY_VALUES or _flat_share(mask) >= FLAT_SHARE:
        return None
    full = float(np.count_nonzero(mask)) / max(mask.size, 1)
    if full >= FULL_SHARE:
        return f"{values} values, {full:.0%} of the pixels non-zero"
    r = _correlation(mask, image) if image is not None and image.shape[-2:] == mask.shape[-2:] else 0.0
    return f"{values} values following the image's intensities (r = {r:.2f})" if r >= CORRELATED else None


def check_masks_not_images(
    pairs: Sequence[tuple[str, np.ndarray, np.ndarray | None]], where: str, classes: int = 1
) -> None:
    """`pairs`: (mask name, raw mask (pages, H, W), raw image (pages, C, H, W) or None). A binary
    task whose masks mostly look like images is one error naming them (see the module's note)."""
    if classes > 1 or not pairs:
        return
    found = [(name, why) for name, mask, image in pairs if (why := image_like(mask, image))]
    if not found:
        return
    listing = "; ".join(f"'{name}': {why}" for name, why in found[:5])
    listing += f"; and {len(found) - 5} more" if len(found) > 5 else ""
    if len(found) * 2 >= len(pairs):
        raise MasksLookLikeImagesError(
            f"{len(found)} of {len(pairs)} mask(s) in {where} look like images, not masks ({listing}) - "
            "check that the images and masks folders are not swapped; a mask is 0/255 (or 0/1) per "
            "object pixel, or instance labels 1..N"
        )
    log.warning(
        "%d mask(s) in %s look like images (%s): check them; training goes on", len(found), where, listing
    )
