"""The device probe's choice among timed (tile, batch) candidates, and whether to compile.

The most image pixels per second wins, a tile's new pixels counted as `step²` (`step = round(tile *
(1 - overlap))`, the spacing of the tile grid). Candidates are tried in increasing size and a larger
one replaces the best only when it is `GAIN` faster (else the search along that axis stops, keeping
the smaller, which needs less memory): batch sizes per tile, then tiles. On out-of-memory the last
batch that fitted is kept (the back-off), and no larger tile is tried once the smallest batch does
not fit. The search stops when its time budget is spent (at least one candidate is timed).

`torch.compile` is timed (on CUDA only) when the plain run is estimated to take `COMPILE_MIN_RUN_S` or more,
so compiling (20-60 s) costs at most a few per cent of it; it is used when it is `GAIN` faster.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .errors import UsageError

GAIN = 1.05  # a larger candidate must be this much faster to replace a smaller one
COMPILE_MIN_RUN_S = 1200.0  # 20 x a slow (60 s) compile: compiling then costs at most 5 % of the run
Measure = Callable[[int, int], float]  # (tile, batch) -> seconds per batch; raises on out of memory
Best = tuple[int, int, float]  # tile, batch, MPix/s


@dataclass
class Choice:
    """What the probe chose and why (`reason` is printed)."""

    tile: int
    batch_size: int
    mpix_per_s: float = 0.0
    compile: bool = False
    compiled_mpix_per_s: float | None = None
    reason: str = ""
    tried: list = field(default_factory=list)  # [tile, batch, MPix/s or None for out of memory]
    complete: bool = True  # False when the time budget cut the search short (not cached then)


def pixels_per_tile(tile: int, overlap: float) -> int:
    """New image pixels per tile: the square of the tile grid's spacing."""
    return min(max(1, round(tile * (1 - overlap))), tile) ** 2


def search(
    measure: Measure,
    tiles: Sequence[int],
    batches: Sequence[int],
    overlap: float,
    budget_s: float = math.inf,
    is_oom: Callable[[BaseException], bool] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Choice:
    """The fastest (tile, batch) by the rules of the module doc; `measure` may raise out of memory."""
    is_oom = is_oom or _is_out_of_memory
    started, tried = clock(), []  # type: float, list

    def out_of_time() -> bool:
        return bool(tried) and clock() - started >= budget_s

    best: Best | None = None
    for tile in tiles:
        if out_of_time():
            break
        tile_best = _best_batch(measure, tile, batches, overlap, tried, is_oom, out_of_time)
        if tile_best is None:  # nothing fitted (or no time left): larger tiles will not do better
            break
        if best is not None and tile_best[2] < best[2] * GAIN:
            break
        best = tile_best
    if best is None:
        raise UsageError(
            f"the device ran out of memory even for tile {tiles[0]} and batch {batches[0]}: "
            "give a smaller --tile and --batch-size, or use --device cpu"
        )
    return Choice(
        best[0], best[1], best[2], reason=_reason(best, tried), tried=tried, complete=not out_of_time()
    )


def _best_batch(
    measure: Measure,
    tile: int,
    batches: Sequence[int],
    overlap: float,
    tried: list,
    is_oom: Callable[[BaseException], bool],
    out_of_time: Callable[[], bool],
) -> Best | None:
    best: Best | None = None
    for batch in batches:
        if out_of_time():
            break
        try:
            seconds = measure(tile, batch)
        except Exception as err:  # noqa: BLE001 - out of memory is an answer; anything else is raised
            if not is_oom(err):
                raise
            tried.append([tile, batch, None])
            break
        rate = pixels_per_tile(tile, overlap) * batch / seconds / 1e6
        tried.append([tile, batch, round(rate, 4)])
        if best is not None and rate < best[2] * GAIN:
            break
        best = (tile, batch, rate)
    return best


def decide_compile(
    choice: Choice,
    work_mpix: float,
    overlap: float,
    time_compiled: Callable[[int, int], tuple[float, float]] | None,
) -> Choice:
    """Time the compiled network (`time_compiled(tile, batch) -> (compile s, s per batch)`) when
    the plain run takes `COMPILE_MIN_RUN_S` or more (unless a cached rate is known); compile when
    that is `GAIN` faster."""
    run_s = work_mpix / max(choice.mpix_per_s, 1e-12)
    if run_s < COMPILE_MIN_RUN_S or (time_compiled is None and choice.compiled_mpix_per_s is None):
        choice.compile = False
        choice.reason += (
            f"; not compiled: the run takes about {run_s:.0f} s, compiling pays off "
            f"from {COMPILE_MIN_RUN_S:.0f} s"
        )
        return choice
    if choice.compiled_mpix_per_s is None and time_compiled is not None:
        compile_s, seconds = time_compiled(choice.tile, choice.batch_size)
        choice.compiled_mpix_per_s = pixels_per_tile(choice.tile, overlap) * choice.batch_size / seconds / 1e6
        choice.reason += f"; compiling took {compile_s:.0f} s"
    compiled = choice.compiled_mpix_per_s or 0.0
    choice.compile = compiled >= choice.mpix_per_s * GAIN
    choice.reason += f"; compiled {compiled:.2f} MPix/s: " + (
        "compiled" if choice.compile else "not compiled (not faster)"
    )
    return choice


def _reason(best: Best, tried: list) -> str:
    runs = ", ".join(f"{t}/{b} {'out of memory' if r is None else f'{r:.2f}'}" for t, b, r in tried)
    return f"tile {best[0]}, batch {best[1]}: {best[2]:.2f} MPix/s, the fastest measured (tile/batch MPix/s: {runs})"


def _is_out_of_memory(err: BaseException) -> bool:
    from .tile_engine import is_out_of_memory

    return is_out_of_memory(err)
