"""Chunk geometry and chunk prediction that equal the whole-image sliding window.

A page is cut into chunk *cores* of `chunk` x `chunk` pixels (the last ones shorter). The tile
grid is the whole image's (`infer.tile_starts` over the whole axis, after the same centred reflect
padding of axes shorter than a tile), so a core is predicted from every global tile that touches
it: the read region is the union of those tiles (the core plus a halo of less than one tile). Each
pixel of the core then gets the same Gaussian-weighted sum of the same tiles as in
`infer.predict_slice`, in the same order, divided by the same weight sum: the chunked result equals
the whole-image result up to the network's batch arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import UsageError


@dataclass(frozen=True)
class AxisPlan:
    """The tile grid along one axis of the whole page."""

    length: int
    tile: int
    step: int

    @property
    def pad_before(self) -> int:
        """Reflect padding before the axis (an axis shorter than a tile is centred in one tile)."""
        return max(self.tile - self.length, 0) // 2

    @property
    def starts(self) -> list[int]:
        """Global tile starts, in padded coordinates."""
        from .infer import tile_starts

        return tile_starts(max(self.length, self.tile), self.tile, self.step)

    def region(self, core: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int], list[int], int]:
        """For a core `[c0, c1)` in image coordinates: the image range to read, the reflect padding
        (before, after) to add to it, the tile starts local to the padded region, and the core's
        offset in that region."""
        c0, c1 = core[0] + self.pad_before, core[1] + self.pad_before
        needed = [s for s in self.starts if s < c1 and s + self.tile > c0]
        r0, r1 = needed[0], needed[-1] + self.tile
        read = (max(0, r0 - self.pad_before), min(self.length, r1 - self.pad_before))
        pads = (max(0, self.pad_before - r0), max(0, r1 - self.pad_before - self.length))
        return read, pads, [s - r0 for s in needed], c0 - r0


@dataclass(frozen=True)
class ChunkGrid:
    """Chunk cores of one page: `chunk` px squares in row-major order."""

    height: int
    width: int
    chunk: int

    @property
    def shape(self) -> tuple[int, int]:
        """Number of chunks along y and x."""
        return math.ceil(self.height / self.chunk), math.ceil(self.width / self.chunk)

    def core(self, iy: int, ix: int) -> tuple[slice, slice]:
        """The core of chunk (iy, ix) in image coordinates."""
        c = self.chunk
        return slice(iy * c, min((iy + 1) * c, self.height)), slice(ix * c, min((ix + 1) * c, self.width))

    def indices(self) -> list[tuple[int, int]]:
        """All chunk indices, row-major."""
        ny, nx = self.shape
        return [(iy, ix) for iy in range(ny) for ix in range(nx)]


def check_chunk(chunk: int, tile: int) -> None:
    """A chunk core must be a whole number of pixels of at least one tile."""
    if int(chunk) != chunk or chunk < tile:
        raise UsageError(f"--chunk {chunk} is smaller than the tile ({tile} px): give at least {tile}")


def normalise_fixed(image: np.ndarray, stats: list[tuple[float, float]] | None) -> np.ndarray:
    """`normalisation.normalise` of a (C, H, W) region with given per-channel (low, high) values (the whole
    page's), same arithmetic; `stats=None` is the "scale255" normalisation."""
    if stats is None:
        return (np.nan_to_num(image.astype(np.float32)) / 255.0).astype(np.float32)
    out = np.empty(image.shape, dtype=np.float32)
    for c, (lo, hi) in enumerate(stats):
        channel = image[c].astype(np.float32, copy=False)
        finite = np.isfinite(channel)
        if not finite.all():
            channel = np.where(finite, channel, 0.0).astype(np.float32)
        scale = float(hi - lo)
        if scale <= 0 or not math.isfinite(scale):
            out[c] = 0.0
            continue
        np.subtract(channel, np.float32(lo), out=out[c])
        out[c] *= np.float32(1.0 / scale)
    return out


def read_region(read_fn, y: AxisPlan, x: AxisPlan, core: tuple[slice, slice]):
    """Read (via `read_fn(ys, xs) -> (C, h, w)`) and pad the region a core needs; returns the
    region, its local tile starts along y and x, and the core's slices in it."""
    (ry, py, ys, oy), (rx, px, xs, ox) = (
        y.region((core[0].start, core[0].stop)),
        x.region((core[1].start, core[1].stop)),
    )
    region = read_fn(slice(*ry), slice(*rx))
    if any(py) or any(px):
        # same numpy reflect padding as infer._pad_to_tile applies to the whole page
        region = np.pad(region, [(0, 0), py, px], mode="reflect")
    inner = (slice(oy, oy + core[0].stop - core[0].start), slice(ox, ox + core[1].stop - core[1].start))
    return region, ys, xs, inner


def predict_core(
    members: list,
    region: np.ndarray,
    ys: list[int],
    xs: list[int],
    inner: tuple[slice, slice],
    *,
    tile: int,
    batch_size: int,
    device,
    tta: bool,
) -> np.ndarray:
    """Blended probabilities `(K, h, w)` of a core from its normalised padded region."""
    import torch

    from .infer import TTA_TRANSFORMS, gaussian_window_1d
    from .inference_networks import prepared
    from .tile_engine import TileRunner, accumulate, divide_by_weights, to_accumulator_device

    device = torch.device(device)
    window = gaussian_window_1d(tile)
    with prepared(members, device), torch.inference_mode():
        runner = TileRunner(members, window, device, batch_size, TTA_TRANSFORMS if tta else ((0, False),))
        total = accumulate(runner, to_accumulator_device(region, device), ys, xs, tile, False)
        divide_by_weights(total, ys, xs, window)
    return np.ascontiguousarray(total[:, inner[0], inner[1]].cpu().numpy())


def predict_in_chunks(
    models,
    image: np.ndarray,
    *,
    tile: int,
    overlap: float,
    chunk: int,
    batch_size: int = 8,
    device="cpu",
    tta: bool = False,
) -> np.ndarray:
    """`infer.predict_slice` of a normalised in-memory `(C, H, W)` slice computed chunk by chunk
    (the chunked engine without files or dask): the same `(K, H, W)` probabilities."""
    from .inference_networks import as_members

    members = as_members(models)
    check_chunk(chunk, tile)
    step = max(1, round(tile * (1 - overlap)))
    y, x = AxisPlan(image.shape[1], tile, step), AxisPlan(image.shape[2], tile, step)
    grid = ChunkGrid(image.shape[1], image.shape[2], chunk)
    out = None
    for iy, ix in grid.indices():
        core = grid.core(iy, ix)
        region, ys, xs, inner = read_region(lambda a, b: image[:, a, b], y, x, core)
        probs = predict_core(
            members,
            region.astype(np.float32, copy=False),
            ys,
            xs,
            inner,
            tile=tile,
            batch_size=batch_size,
            device=device,
            tta=tta,
        )
        if out is None:
            out = np.empty((probs.shape[0],) + image.shape[1:], dtype=np.float32)
        out[:, core[0], core[1]] = probs
    assert out is not None  # a grid has at least one chunk
    return out
