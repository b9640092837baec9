"""Tile size, batch size and `torch.compile` chosen by measurement on the user's device.

The probe times the network's forward pass (with the probabilities and window weighting of
`paulow.infer`) on random tiles for a few (tile, batch) candidates and keeps the one with the most
image pixels per second (the rules: `paulow.probe_search`). The probe stops after `PROBE_SHARE`
of the estimated run time (within `PROBE_MIN_S` and `PROBE_MAX_S`; at least one candidate is
timed). Answers are cached (`paulow.probe_cache`).
"""

from __future__ import annotations

import math
import time

from .probe_cache import CACHE_NAME, cache_dir, cache_key, load_cached, store
from .probe_search import Choice, decide_compile, pixels_per_tile, search

PROBE_SHARE = 0.03  # of the estimated run time
PROBE_MIN_S, PROBE_MAX_S = 1.0, 10.0
DEFAULT_BATCH = 8  # the batch size without probing, as `--batch-size` always had
CUDA_BATCHES = (4, 8, 16, 32, 64)
CPU_BATCHES = (2, 4, 8, 16)


def candidate_tiles(patch: int, device_type: str, largest_side: int) -> list[int]:
    """Tiles to try, multiples of 32: the training patch and its doubles on a GPU, 256-512 on a CPU;
    none much larger than the images (the smallest is always kept)."""
    base = max(32, math.ceil(patch / 32) * 32)
    tiles = (
        [base, 2 * base, 4 * base]
        if device_type == "cuda"
        else [max(256, base), max(384, base), max(512, base)]
    )
    tiles = sorted({t for t in tiles if t <= 1024})
    fitting = [t for t in tiles if t <= max(largest_side, 32) + 31]
    return fitting or tiles[:1]


class TileTimer:
    """Seconds per batch of the tile pipeline of `paulow.infer` (forward, probabilities, window
    weighting) on random tiles on `device`; `compiled` does the same with `torch.compile`."""

    MIN_S, MIN_CALLS = 0.2, 2
    SLOW_S = 1.0  # a warm-up call this long is the measurement

    def __init__(self, members: list, in_channels: int, device, tta: bool = False) -> None:
        self.members, self.in_channels, self.device, self.tta = members, in_channels, device, tta
        self.compiled_members: list | None = None

    def __call__(self, tile: int, batch: int, members: list | None = None) -> float:
        import torch

        from .infer import TTA_TRANSFORMS, gaussian_window_1d
        from .inference_networks import prepared
        from .tile_engine import TileRunner

        members = members or self.members
        transforms = TTA_TRANSFORMS if self.tta else ((0, False),)
        with prepared(members, self.device), torch.inference_mode():
            runner = TileRunner(members, gaussian_window_1d(tile), self.device, batch, transforms)
            tiles = torch.rand((batch, self.in_channels, tile, tile), device=self.device)
            started = self._now()
            runner._forward(tiles)  # warm-up (and cuDNN's algorithm search)
            warm_up = self._now() - started
            if warm_up >= self.SLOW_S:  # a slow device: one call says enough, more would cost seconds
                return warm_up
            calls, started = 0, self._now()
            while calls < self.MIN_CALLS or self._now() - started < self.MIN_S:
                runner._forward(tiles)
                calls += 1
            return (self._now() - started) / calls

    def compiled(self, tile: int, batch: int) -> tuple[float, float]:
        """(seconds to compile, seconds per batch) of the compiled networks (kept for the run)."""
        from .inference_networks import compile_for_inference

        self.compiled_members = [compile_for_inference(m) for m in self.members]
        started = self._now()
        self(tile, batch, self.compiled_members)  # compiles on the first call
        return self._now() - started, self(tile, batch, self.compiled_members)

    def _now(self) -> float:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()


def probe(
    members: list,
    meta: dict,
    device,
    work_mpix: float,
    *,
    overlap: float,
    largest_side: int,
    tta: bool = False,
    tile: int | None = None,
    batch_size: int | None = None,
    allow_compile: bool = True,
    timer: TileTimer | None = None,
) -> tuple[Choice, list]:
    """The settings for a run of `work_mpix` megapixels (and the networks to run: compiled or
    not). `tile`/`batch_size` given by the user are kept (the other is measured)."""
    import torch

    device = torch.device(device)
    if tile and batch_size:
        return Choice(int(tile), int(batch_size), reason="given by --tile and --batch-size"), members
    timer = timer or TileTimer(members, int(meta["in_channels"]), device, tta)
    key = cache_key(_device_name(device), meta, len(members), overlap, tta)
    choice = load_cached(key) if tile is None and batch_size is None else None
    if choice is not None:
        choice.reason = f"cached for this device and network ({cache_dir() / CACHE_NAME}): {choice.reason}"
    else:
        choice = _measure(timer, meta, device, work_mpix, overlap, largest_side, tile, batch_size)
    # compiling took 225 s on the 2-core CPU and never paid off there (docs/gpu.md): GPUs only
    allow_compile = allow_compile and device.type == "cuda"
    choice = decide_compile(choice, work_mpix, overlap, timer.compiled if allow_compile else None)
    if tile is None and batch_size is None and choice.complete:
        store(key, choice)
    if not choice.compile:
        return choice, members
    from .inference_networks import compile_for_inference

    return choice, timer.compiled_members or [compile_for_inference(m) for m in members]


def _measure(
    timer: TileTimer,
    meta: dict,
    device,
    work_mpix: float,
    overlap: float,
    largest_side: int,
    tile: int | None,
    batch_size: int | None,
) -> Choice:
    tiles = [int(tile)] if tile else candidate_tiles(int(meta.get("patch", 128)), device.type, largest_side)
    batches = (
        [int(batch_size)] if batch_size else list(CUDA_BATCHES if device.type == "cuda" else CPU_BATCHES)
    )
    batch = int(batch_size or DEFAULT_BATCH)  # first the defaults: the estimate that sets the budget
    started = time.monotonic()
    rate = pixels_per_tile(tiles[0], overlap) * batch / timer(tiles[0], batch) / 1e6
    run_s = work_mpix / rate
    spent = time.monotonic() - started
    budget = min(PROBE_SHARE * run_s, PROBE_MAX_S) - spent
    if budget < PROBE_MIN_S:
        why = (
            f"the run is short (about {run_s:.0f} s)"
            if PROBE_SHARE * run_s < PROBE_MIN_S
            else f"timing one batch took {spent:.1f} s of the probe's "
            f"{min(PROBE_SHARE * run_s, PROBE_MAX_S):.0f} s"
        )
        return Choice(
            tiles[0],
            batch,
            rate,
            reason=f"{why}: tile {tiles[0]}, batch {batch} without probing",
            complete=False,
        )
    return search(timer, tiles, batches, overlap, budget)


def _device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}"
    from .device import cpu_model

    return f"{cpu_model()} x{torch.get_num_threads()} threads"


PROBE_ON_CPU = False  # see docs/gpu.md: bench/device_probe.py on the 2-core CPU


def tune_options(opts, models: list, meta: dict, images: list, given_batch: int | None, echo) -> tuple:
    """`opts` (a `SegmentOptions`) with the probe's tile and batch size for segmenting `images` on
    `opts.device` (CUDA; the CPU only when `PROBE_ON_CPU`), and the networks to run; the console
    line says what was chosen and why. `--tile` and `given_batch` (`--batch-size`) are kept."""
    from dataclasses import replace

    import torch

    if not images or (torch.device(opts.device).type != "cuda" and not PROBE_ON_CPU):
        return opts, models
    first = _first_readable(images)  # the work: the first file's pixels times the file count
    if first is None:  # nothing readable: each file's error is reported by the run itself
        return opts, models
    work_mpix = first.shape[0] * first.shape[2] * first.shape[3] * len(images) / 1e6
    overlap = opts.overlap if opts.overlap is not None else float(meta.get("overlap", 0.5))
    choice, models = probe(
        models,
        meta,
        opts.device,
        work_mpix,
        overlap=overlap,
        largest_side=max(first.shape[2:]),
        tta=opts.tta,
        tile=opts.tile,
        batch_size=given_batch,
        allow_compile=not opts.compile,
    )
    echo(f"device settings: {choice.reason}")
    return replace(opts, tile=choice.tile, batch_size=choice.batch_size), models


def _first_readable(images: list):
    """The raw (pages, C, H, W) data of the first image that reads, else None."""
    from .drop_chunked import too_large_to_hold
    from .errors import PaulowError
    from .io.read import read_image

    for path in images:
        if too_large_to_hold(path):  # segmented chunk by chunk: never read whole
            continue
        try:
            return read_image(path).data
        except PaulowError:
            continue
    return None
