"""Binary masks with grey edges: a 0/255 mask saved as JPEG, or painted with a soft (anti-aliased)
brush, or resized, holds in-between values around every object. Read as they are, every non-zero
pixel would be foreground (a halo around each object, JPEG ringing in the background) and the many
values would pass for instance labels. Such a mask is binarised at half its maximum instead.

A mask counts as grey-edged when it is a JPEG, or when its grey values (non-zero, other than the
most common non-zero value) lie only on edges: below that value, at most half of the non-zero
pixels, and almost all of them touching a pixel of another value. Instance labels fail the last
test: every object of more than a few pixels has an inside.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger("paulow")

LOSSY_SUFFIXES = (".jpg", ".jpeg")
EDGE_SHARE = 0.9  # grey pixels that must touch another value for a lossless mask to count as grey-edged


def is_grey_edged(mask: np.ndarray) -> bool:
    """Whether a `(pages, H, W)` (or `(H, W)`) integer mask is one foreground value with grey,
    edge-only transitions (see the module docstring); False for 0/v masks and instance labels."""
    mask = np.asarray(mask)
    values, counts = np.unique(mask[mask != 0], return_counts=True)
    if values.size < 2:
        return False
    top = values[counts.argmax()]
    grey = (mask != 0) & (mask != top)
    n_grey = int(np.count_nonzero(grey))
    if n_grey * 2 > int(counts.sum()) or np.count_nonzero(grey & (mask > top)) > (1 - EDGE_SHARE) * n_grey:
        return False
    return int(np.count_nonzero(grey & _touches_other_value(mask))) >= EDGE_SHARE * n_grey


def _touches_other_value(mask: np.ndarray) -> np.ndarray:
    """Pixels whose 3 x 3 neighbourhood (within their page) holds another value."""
    from scipy import ndimage

    size = (1,) * (mask.ndim - 2) + (3, 3)
    return ndimage.maximum_filter(mask, size=size, mode="nearest") != ndimage.minimum_filter(
        mask, size=size, mode="nearest"
    )


def clean_binary_mask(mask: np.ndarray, path: str | Path) -> np.ndarray:
    """A binary task's mask as read: a JPEG or grey-edged mask becomes 0/1 at half its maximum (with
    a warning naming the file and the fix); any other mask is returned unchanged."""
    path = Path(path)
    lossy = path.suffix.lower() in LOSSY_SUFFIXES
    if np.unique(mask).size <= 2 or not (lossy or is_grey_edged(mask)):
        return mask
    highest = int(mask.max())
    cleaned = (mask.astype(np.int64) * 2 > highest).astype(np.uint8)
    why = (
        "a JPEG (lossy compression adds grey values around the objects)"
        if lossy
        else "grey (anti-aliased) edges"
    )
    log.warning(
        "mask '%s' is %s: binarised at half its maximum (foreground > %g; %d of %d non-zero pixels "
        "kept) - save masks as PNG or TIFF, painted with a hard brush",
        path.name,
        why,
        highest / 2,
        int(cleaned.sum()),
        int(np.count_nonzero(mask)),
    )
    return cleaned
