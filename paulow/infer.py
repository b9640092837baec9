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
- The device engine: the padded slice is copied to the network's device once, tiles are cut there
  `batch_size` at a time, and their weighted probabilities are summed into a `(K, H, W)` tensor on
  the device (on the CPU through NumPy views of the tensors: cheaper there); the slice comes back
  to the host once, after the division. Where the slice does not fit
  in half the free device memory, tiles are cut and summed on the host instead (same results).
  On CUDA: bf16 autocast and channels_last; after an out-of-memory error the batch is halved (down
  to 1) and the work already accumulated is kept. On CPU: float32. Always under
  `torch.inference_mode()`.
- Test-time augmentation (`tta=True`): the 8 flips and 90° rotations of the square tile (the
  dihedral group), each inverted exactly and averaged; it costs 8 forward passes per tile.
- An ensemble (a list of models) is the mean of its members' probabilities.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import cast

import numpy as np
import torch
from torch import nn

from .errors import ModelError, ShapeMismatchError, UsageError

WINDOW_SIGMA_FRACTION = 1 / 8
# a guard only: with sigma = tile / 8 the edge weight is exp(-8) ≈ 3.4e-4 per axis already
WINDOW_FLOOR_1D = 1e-4
# (quarter turns, mirror left-right): the 8 symmetries of a square tile
TTA_TRANSFORMS: tuple[tuple[int, bool], ...] = tuple((k, m) for k in range(4) for m in (False, True))
log = logging.getLogger("paulow")
CPU_TILE = 256  # see bench/infer_speed.py: larger CPU tiles gain little per pixel and cost memory

Models = nn.Module | Sequence[nn.Module]


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def prepare_model(model: nn.Module, device: torch.device | str) -> nn.Module:
    """Move `model` to `device` in eval mode (channels_last on CUDA); returns the same module."""
    device = torch.device(device)
    model.to(device).eval()
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch stub lacks memory_format
    return model


def compile_for_inference(model: nn.Module) -> nn.Module:
    """`torch.compile` of a network for prediction: normalisations and activations are fused, at the
    price of compiling on the first batch (20-60 s). Batches are padded to a fixed size so it
    compiles once. On the 2-core development CPU it gained nothing (bench/infer_speed.py --compile);
    it is meant for GPUs. If compiling fails on a machine, prediction goes on with the plain network
    (with a warning)."""
    return cast(nn.Module, torch.compile(model, dynamic=False))


ACTIVATION_ATTR = "paulow_activation"


def set_activation(models: Models, meta: dict) -> None:
    """Mark loaded networks with the model file's output activation (`meta["activation"]`):
    "softmax" for mutually exclusive classes; files without the key (older models, including K > 1
    ones trained with per-channel sigmoids) keep "sigmoid"."""
    activation = str(meta.get("activation", "sigmoid"))
    if activation not in ("sigmoid", "softmax"):
        raise ModelError(f"the model file names an unknown output activation {activation!r}")
    for member in _as_list(models):
        setattr(getattr(member, "_orig_mod", member), ACTIVATION_ATTR, activation)


def activation_of(model: nn.Module) -> str:
    """ "softmax" when the network was marked as multi-class softmax, else "sigmoid"."""
    return getattr(getattr(model, "_orig_mod", model), ACTIVATION_ATTR, "sigmoid")


def to_probabilities(logits: torch.Tensor, activation: str) -> torch.Tensor:
    """Softmax over channels (dim 1) or element-wise sigmoid, in float32."""
    logits = logits.float()
    return torch.softmax(logits, dim=1) if activation == "softmax" else torch.sigmoid(logits)


def _is_compiled(model: nn.Module) -> bool:
    return hasattr(model, "_orig_mod")


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
    members = _as_list(models)
    _check_options(tile, overlap, batch_size)
    tile, batch_size = int(tile), int(batch_size)
    image = _check_image(image)
    device = torch.device(device) if device is not None else default_device()
    padded, crop = _pad_to_tile(image, tile)
    step = max(1, round(tile * (1 - overlap)))
    ys = tile_starts(padded.shape[1], tile, step)
    xs = tile_starts(padded.shape[2], tile, step)
    window = gaussian_window_1d(tile)
    with _prepared(members, device), torch.inference_mode():
        runner = _TileRunner(members, window, device, batch_size, TTA_TRANSFORMS if tta else ((0, False),))
        source = _to_accumulator_device(padded, device)
        total = _accumulate(runner, source, ys, xs, tile, progress, on_tile)
        _divide_by_weights(total, ys, xs, window)
        if crop is not None:
            total = total[:, crop[0], crop[1]]
        return np.ascontiguousarray(total.cpu().numpy())  # the one copy back per slice


def predict_stack(models: Models, slices: Iterable[np.ndarray], **options) -> Iterator[np.ndarray]:
    """`predict_slice` for each slice of a stack, one at a time (memory stays one slice)."""
    for image in slices:
        yield predict_slice(models, image, **options)


def _as_list(models: Models) -> list[nn.Module]:
    members = [models] if isinstance(models, nn.Module) else list(models)
    if not members:
        raise ModelError(
            "no network to predict with: the model file holds no state dict; "
            "retrain or pick another model file"
        )
    return members


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


@contextlib.contextmanager
def _prepared(members: list[nn.Module], device: torch.device) -> Iterator[None]:
    """Members on `device` in eval mode for the duration; their previous modes restored after."""
    modes = [member.training for member in members]
    try:
        for member in members:
            prepare_model(member, device)
        yield
    finally:
        for member, mode in zip(members, modes):
            member.train(mode)


class _TileRunner:
    """Turns a batch of tiles into window-weighted, ensemble- and TTA-averaged probabilities,
    halving the chunk it sends to the device after an out-of-memory error."""

    def __init__(
        self,
        members: list[nn.Module],
        window: np.ndarray,
        device: torch.device,
        batch_size: int,
        transforms: tuple[tuple[int, bool], ...],
    ) -> None:
        self.members = members
        self.device = device
        self.chunk = batch_size
        self.transforms = transforms
        self.window = torch.from_numpy(np.outer(window, window)).to(device)
        self.cuda = device.type == "cuda"

    def __call__(self, batch: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield (offset in batch, weighted probabilities (n, K, tile, tile)) chunk by chunk."""
        start = 0
        while start < len(batch):
            size = self.chunk
            try:
                probs = self._forward(batch[start : start + size])
            except (torch.OutOfMemoryError, RuntimeError) as err:
                if size == 1 or not _is_out_of_memory(err):
                    raise
                probs = None
            if probs is None:  # outside the except block, so the failed tensors are released
                self._release_memory()
                self.chunk = max(1, size // 2)
                continue
            yield start, probs
            start += size

    def _forward(self, tiles: torch.Tensor) -> torch.Tensor:
        count = len(tiles)
        if count < self.chunk and any(_is_compiled(m) for m in self.members):
            # a compiled network would compile again for a new batch size: pad with empty tiles
            tiles = torch.cat([tiles, tiles.new_zeros((self.chunk - count, *tiles.shape[1:]))])
        tiles = tiles.to(self.device, non_blocking=True)
        if self.cuda:
            tiles = tiles.contiguous(memory_format=torch.channels_last)
        total = None
        for member in self.members:
            for transform in self.transforms:
                probs = self._member_probs(member, tiles, transform)
                total = probs if total is None else total.add_(probs)
        return cast(torch.Tensor, total)[:count].mul_(
            self.window / (len(self.members) * len(self.transforms))
        )

    def _member_probs(
        self, member: nn.Module, tiles: torch.Tensor, transform: tuple[int, bool]
    ) -> torch.Tensor:
        turns, mirror = transform
        inputs = torch.rot90(tiles, turns, dims=(2, 3)) if turns else tiles
        inputs = inputs.flip(3) if mirror else inputs
        try:
            with self._autocast():
                logits = member(inputs)
        except Exception as err:  # noqa: BLE001 - only a compiled network gets a second chance
            if not _is_compiled(member) or _is_out_of_memory(err):
                raise
            log.warning(
                "compiling the network failed on this machine (%s); predicting without compiling",
                str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__,
            )
            original = cast(nn.Module, member._orig_mod)
            self.members = [original if m is member else m for m in self.members]
            member = original
            with self._autocast():
                logits = member(inputs)
        if logits.ndim != 4 or logits.shape[0] != len(tiles) or logits.shape[2:] != tiles.shape[2:]:
            raise ModelError(
                f"the network returned shape {tuple(logits.shape)} for tiles of shape "
                f"{tuple(tiles.shape)}; the model file does not fit this input"
            )
        probs = to_probabilities(logits, activation_of(member))
        probs = probs.flip(3) if mirror else probs
        return torch.rot90(probs, -turns, dims=(2, 3)) if turns else probs

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _release_memory(self) -> None:
        if self.cuda:
            torch.cuda.empty_cache()


def _is_out_of_memory(err: BaseException) -> bool:
    message = str(err)
    return (
        isinstance(err, torch.OutOfMemoryError)
        or "out of memory" in message
        or "can't allocate memory" in message
    )


def _to_accumulator_device(padded: np.ndarray, device: torch.device) -> torch.Tensor:
    """The padded slice as a tensor where tiles are cut and summed: on `device` when the slice and
    its sums take at most half of the free device memory (the output has at most 8 channels here,
    a guess that only decides where the sums live), else on the host."""
    image = torch.from_numpy(padded)
    if device.type != "cuda":
        return image.to(device)
    free, _ = torch.cuda.mem_get_info(device)
    needed = (padded.shape[0] + 8) * padded.shape[1] * padded.shape[2] * 4
    return image.to(device) if needed <= free // 2 else image


def _accumulate(
    runner: _TileRunner,
    image: torch.Tensor,
    ys: list[int],
    xs: list[int],
    tile: int,
    progress: bool,
    on_tile: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Sum of window-weighted tile probabilities over the padded image, `(K, H, W)` float32 on the
    image's device: tiles are cut there `runner.chunk` at a time and summed there."""
    from tqdm import tqdm

    positions = [(y, x) for y in ys for x in xs]
    batch_size = min(runner.chunk, len(positions))
    total = None
    with tqdm(total=len(positions), unit="tile", disable=not progress, leave=False) as bar:
        for first in range(0, len(positions), batch_size):
            batch = positions[first : first + batch_size]
            tiles = _cut_tiles(image, batch, tile)
            for offset, probs in runner(tiles):
                if total is None:
                    total = torch.zeros(
                        (probs.shape[1],) + tuple(image.shape[1:]), dtype=torch.float32, device=image.device
                    )
                _add_tiles(total, probs.to(image.device), batch[offset : offset + len(probs)], tile)
            bar.update(len(batch))
            if on_tile is not None:
                on_tile(first + len(batch), len(positions))
    assert total is not None  # there is always at least one tile
    return total


def _cut_tiles(image: torch.Tensor, positions: list[tuple[int, int]], tile: int) -> torch.Tensor:
    """The tiles at `positions` as one (n, C, tile, tile) batch on the image's device."""
    if image.device.type == "cpu":  # NumPy's strided copies beat torch.stack's ~10x on the CPU
        array = image.numpy()
        return torch.from_numpy(np.stack([array[:, y : y + tile, x : x + tile] for y, x in positions]))
    return torch.stack([image[:, y : y + tile, x : x + tile] for y, x in positions])


def _add_tiles(total: torch.Tensor, probs: torch.Tensor, positions: list[tuple[int, int]], tile: int) -> None:
    sums, parts = (total.numpy(), probs.numpy()) if total.device.type == "cpu" else (total, probs)
    for (y, x), tile_probs in zip(positions, parts):  # on the CPU NumPy's strided adds are ~10x faster
        sums[:, y : y + tile, x : x + tile] += tile_probs


def _divide_by_weights(total: torch.Tensor, ys: list[int], xs: list[int], window: np.ndarray) -> None:
    """Divide in place by the weight sum, the outer product of the per-axis window sums."""
    for axis, starts in ((1, ys), (2, xs)):
        weight = np.zeros(total.shape[axis], dtype=np.float64)
        for start in starts:
            weight[start : start + len(window)] += window
        shape = [1, 1, 1]
        shape[axis] = -1
        total /= torch.from_numpy(weight.astype(np.float32).reshape(shape)).to(total.device)
