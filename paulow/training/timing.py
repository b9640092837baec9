"""Where a training run's seconds go (the `timing.json` of the report)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

# where a run's time goes (seconds, summed with `timed`; see `timing.json` in the report)
TIMING_KEYS = ("gradient_steps", "validation", "evaluation", "data_loading", "checkpoints", "planning")


def new_timing() -> dict[str, float]:
    """An empty timing account (`evaluation`: threshold tuning, test score and panels)."""
    return {k: 0.0 for k in TIMING_KEYS}


@contextmanager
def timed(timing: dict | None, key: str) -> Iterator[None]:
    """Add the wall-clock seconds of the block to `timing[key]` (nothing when `timing` is None)."""
    start = time.monotonic()
    try:
        yield
    finally:
        if timing is not None:
            timing[key] = timing.get(key, 0.0) + time.monotonic() - start
