"""2.5-D context (`--context N`): section z of a stack is fed with sections z-N..z+N as input channels,
each normalised on its own as a 2-D section is, mirrored at the first and last section (z = -1 is
section 1, as `numpy.pad(mode="reflect")`). The model file records N; segmenting builds the same
channels, and a single 2-D image cannot be segmented by such a model."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from .errors import ModelError, ShapeMismatchError, UsageError


def check_context(n) -> int:
    """`n` as a whole number >= 0, else a `UsageError`."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise UsageError(
            f"--context {n!r}: give the number of neighbouring sections on each side (0, 1, 2, ...)"
        )
    return int(n)


def reflected_indices(pages: int, n: int) -> np.ndarray:
    """(pages, 2n+1) section indices z-n..z+n of every section z, mirrored at both ends (no edge repeat)."""
    offsets = np.arange(pages)[:, None] + np.arange(-n, n + 1)[None, :]
    if pages == 1:
        return np.zeros_like(offsets)
    period = 2 * (pages - 1)
    folded = np.mod(offsets, period)
    return np.where(folded > pages - 1, period - folded, folded)


def context_channels(sections: np.ndarray, n: int) -> np.ndarray:
    """(pages, C, H, W) sections -> (pages, C * (2n+1), H, W): neighbour-major, channel-minor."""
    if n == 0:
        return sections
    pages, channels, height, width = sections.shape
    gathered = sections[reflected_indices(pages, n)]  # (pages, 2n+1, C, H, W)
    return np.ascontiguousarray(gathered.reshape(pages, (2 * n + 1) * channels, height, width))


def _single_section(name: str, n: int) -> str:
    return (
        f"'{name}' is a single 2-D image but --context {n} feeds sections z-{n}..z+{n} of a stack as "
        "channels: give stacks or volumes of at least 2 sections"
    )


def add_context(slices: Sequence, n: int) -> list:
    """Training `Slice`s with their stack's neighbouring sections as channels (in place; returned)."""
    n = check_context(n)
    if n == 0:
        return list(slices)
    by_file: dict = defaultdict(list)
    for s in slices:
        by_file[str(s.source)].append(s)
    for group in by_file.values():
        group.sort(key=lambda s: s.page)
        if len(group) == 1:
            raise ShapeMismatchError(
                _single_section(group[0].source.name, n) + " (or train without --context)"
            )
        wide = context_channels(np.stack([s.image for s in group]), n)
        for s, image in zip(group, wide):
            s.image = image
    return list(slices)


def model_context(meta: dict) -> int:
    """The N a model was trained with (0: plain 2-D)."""
    return int(meta.get("context") or 0)


def for_model(sections: np.ndarray, meta: dict, name: str) -> np.ndarray:
    """Normalised (pages, C, H, W) sections as the model's input: with its context channels, a single
    section refused by a context model."""
    n = model_context(meta)
    if n and sections.shape[0] < 2:
        raise ModelError(
            f"'{name}' is a single 2-D image but the model was trained with --context {n} (sections "
            f"z-{n}..z+{n} of a stack as channels): segment a stack or volume of at least 2 sections, "
            "or use a model trained without --context"
        )
    return context_channels(sections, n)
