"""Sliding-window prediction of whole slices: the one path that training's model selection,
evaluation and the command line all use.

How a slice is predicted:
- Tiles are square (`tile` pixels). Along each axis the number of tiles comes from the target step
  `round(tile * (1 - overlap))`; the tiles are then spread evenly from 0 to `length - tile`, so the
  first and last tiles are flush with the image and no tile is partial (as nnU-Net does).
- An axis shorter than a tile is reflect-padded (centred) up to the tile; nothing else is padded.
- Each tile's probabilities are weighted by a Gaussian window (sigma = tile / 8, as nnU-Net),
  floored so that no weight is 0, and the weighted sum is divided by the sum of weights: no seams.
- The window is separable and the tile grid is a product of y and x positions, so the weight sum is
  the outer product of two 1-D sums: the only image-sized buffer is the `(K, H, W)` float32 output.
- The device engine (`paulow.tile_engine`): the padded slice is copied to the network's device
  once, tiles are cut there `batch_size` at a time, and their weighted probabilities are summed
  into a `(K, H, W)` tensor on the device (on the CPU through NumPy views of the tensors: cheaper
  there); the slice comes back to the host once, after the division. Where the slice does not fit
  in half the free device memory, tiles are cut and summed on the host instead (same results).
  On CUDA: bf16 autocast and channels_last; after an out-of-memory error the batch is halved (down
  to 1) and the work already accumulated is kept. On CPU: float32. Always under
  `torch.inference_mode()`.
- Test-time augmentation (`tta=True`): the 8 flips and 90° rotations of the square tile (the
  dihedral group), each inverted exactly and averaged; it costs 8 forward passes per tile.
- An ensemble (a list of models) is the mean of its members' probabilities; the networks' devices,
  modes and output activations: `paulow.inference_networks`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import torch

from .errors import ShapeMismatchError, UsageError
from .inference_networks import Models, as_members, default_device, prepared
from .tile_engine import TileRunner, accumulate, divide_by_weights, to_accumulator_device

WINDOW_SIGMA_FRACTION = 1 / 8
# a guard only: with sigma = tile / 8 the edge weight is exp(-8) ≈ 3.4e-4 per axis already
WINDOW_FLOOR_1D = 1e-4
# (quarter turns, mirror left-right): the 8 symmetries of a square tile
TTA_TRANSFORMS: tuple[tuple[int, bool], ...] = tuple((k, m) for k in range(4) for m in (False, True))
CPU_TILE = 256  # see bench/infer_speed.py: larger CPU tiles gain little per pixel and cost memory


def suggest_tile(patch: int, device: torch.device | str | None = None) -> int:
    """A tile size for fully convolutional networks: at least `CPU_TILE` pixels and the training patch,
    a multiple of 32, on every device (`device` is kept for callers): the networks' output depends on
    the tile (GroupNorm; docs/export.md measured Dice 0.64 between the masks of 128 and 256 px tiles),
    so a GPU gives the masks a CPU and the exported bioimage.io package (which declares this tile) give."""
    wanted = max(patch, CPU_TILE)
    return int(math.ceil(wanted / 32) * 32)


def tile_starts(length: int, tile: int, step: int) -> list[int]:
    """Start offsets of tiles of size `tile` covering `length` (>= tile) with at most `step`
    between neighbours, spread evenly, the first at 0 and the last flush with the end."""
    if length <= tile:
        return [0]
    count = math.ceil((length - tile) / step) + 1
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def gaussian_window_1d(tile: int) -> np.ndarray:
    """The per-axis blending weights of a tile: a Gaussian of peak 1, floored above 0."""
    centre = (tile - 1) / 2
    sigma = max(tile * WINDOW_SIGMA_FRACTION, 1e-6)
    offsets = np.arange(tile, dtype=np.float64) - centre
    window = np.exp(-0.5 * (offsets / sigma) ** 2)
    return np.maximum(window, WINDOW_FLOOR_1D).astype(np.float32)


def predict_slice(
    models: Models,
    image: np.ndarray,
    *,
    tile: int = 128,
    overlap: float = 0.5,
    batch_size: int = 8,
    device: torch.device | str | None = None,
    tta: bool = False,
    progress: bool = False,
    on_tile: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Probabilities `float32 (K, H, W)` for one normalised `float32 (C, H, W)` slice.

    `on_tile(done, total)` is called after each batch of tiles (a progress bar; raising from it, e.g.
    `paulow.errors.Cancelled`, stops the prediction).

    Probabilities are the softmax over channels for networks marked "softmax" (`set_activation`,
    multi-class models), element-wise sigmoid otherwise.
    `models` is one network or a list (ensemble: mean of probabilities). Networks are moved to
    `device` (default: `default_device()`) and put in eval mode for the call; their train/eval mode
    is restored afterwards.
    """
    members = as_members(models)
    _check_options(tile, overlap, batch_size)
    tile, batch_size = int(tile), int(batch_size)
    image = _check_image(image)
    device = torch.device(device) if device is not None else default_device()
    padded, crop = _pad_to_tile(image, tile)
    step = max(1, round(tile * (1 - overlap)))
    ys = tile_starts(padded.shape[1], tile, step)
    xs = tile_starts(padded.shape[2], tile, step)
    window = gaussian_window_1d(tile)
    with prepared(members, device), torch.inference_mode():
        runner = TileRunner(members, window, device, batch_size, TTA_TRANSFORMS if tta else ((0, False),))
        source = to_accumulator_device(padded, device)
        total = accumulate(runner, source, ys, xs, tile, progress, on_tile)
        divide_by_weights(total, ys, xs, window)
        if crop is not None:
            total = total[:, crop[0], crop[1]]
        return np.ascontiguousarray(total.cpu().numpy())  # the one copy back per slice


def predict_stack(models: Models, slices: Iterable[np.ndarray], **options) -> Iterator[np.ndarray]:
    """`predict_slice` for each slice of a stack, one at a time (memory stays one slice)."""
    for image in slices:
        yield predict_slice(models, image, **options)


def _check_options(tile: int, overlap: float, batch_size: int) -> None:
    if int(tile) != tile or tile < 1:
        raise UsageError(f"tile must be a positive whole number of pixels, got {tile!r}")
    if not 0 <= overlap < 1:
        raise UsageError(f"overlap must be at least 0 and below 1, got {overlap!r}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise UsageError(f"batch size must be a positive whole number, got {batch_size!r}")


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or min(image.shape) < 1:
        raise ShapeMismatchError(
            f"an image slice must be (channels, height, width) with no empty "
            f"axis, got shape {image.shape}; add a channel axis to 2-D images"
        )
    return image.astype(np.float32, copy=False)


def _pad_to_tile(image: np.ndarray, tile: int) -> tuple[np.ndarray, tuple[slice, ...] | None]:
    """Reflect-pad (centred) the axes shorter than `tile`; return the image and the crop back."""
    pads = [(0, 0)]
    for length in image.shape[1:]:
        missing = max(tile - length, 0)
        pads.append((missing // 2, missing - missing // 2))
    if all(before == after == 0 for before, after in pads):
        return image, None
    # numpy's reflect repeats the reflection for pads longer than the axis, and repeats the
    # single value of a length-1 axis
    padded = np.pad(image, pads, mode="reflect")
    crop = tuple(slice(before, before + length) for (before, _), length in zip(pads[1:], image.shape[1:]))
    return padded, crop
