"""The device engine of `paulow.infer.predict_slice`: tiles cut from the padded slice
`batch_size` at a time, turned into window-weighted, ensemble- and TTA-averaged probabilities
(`TileRunner`, which halves its batch after an out-of-memory error) and summed into a `(K, H, W)`
tensor where the slice lives (on the device when it fits in half its free memory, else on the host),
then divided by the weight sum."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import cast

import numpy as np
import torch
from torch import nn

from .errors import ModelError
from .inference_networks import activation_of, is_compiled, to_probabilities

log = logging.getLogger("paulow")


class TileRunner:
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
                if size == 1 or not is_out_of_memory(err):
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
        if count < self.chunk and any(is_compiled(m) for m in self.members):
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
            if not is_compiled(member) or is_out_of_memory(err):
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


def is_out_of_memory(err: BaseException) -> bool:
    """Whether `err` is the device (or the host) running out of memory."""
    message = str(err)
    return (
        isinstance(err, torch.OutOfMemoryError)
        or "out of memory" in message
        or "can't allocate memory" in message
    )


def to_accumulator_device(padded: np.ndarray, device: torch.device) -> torch.Tensor:
    """The padded slice as a tensor where tiles are cut and summed: on `device` when the slice and
    its sums take at most half of the free device memory (the output has at most 8 channels here,
    a guess that only decides where the sums live), else on the host."""
    image = torch.from_numpy(padded)
    if device.type != "cuda":
        return image.to(device)
    free, _ = torch.cuda.mem_get_info(device)
    needed = (padded.shape[0] + 8) * padded.shape[1] * padded.shape[2] * 4
    return image.to(device) if needed <= free // 2 else image


def accumulate(
    runner: TileRunner,
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
            tiles = cut_tiles(image, batch, tile)
            for offset, probs in runner(tiles):
                if total is None:
                    total = torch.zeros(
                        (probs.shape[1],) + tuple(image.shape[1:]), dtype=torch.float32, device=image.device
                    )
                add_tiles(total, probs.to(image.device), batch[offset : offset + len(probs)], tile)
            bar.update(len(batch))
            if on_tile is not None:
                on_tile(first + len(batch), len(positions))
    assert total is not None  # there is always at least one tile
    return total


def cut_tiles(image: torch.Tensor, positions: list[tuple[int, int]], tile: int) -> torch.Tensor:
    """The tiles at `positions` as one (n, C, tile, tile) batch on the image's device."""
    if image.device.type == "cpu":  # NumPy's strided copies beat torch.stack's ~10x on the CPU
        array = image.numpy()
        return torch.from_numpy(np.stack([array[:, y : y + tile, x : x + tile] for y, x in positions]))
    return torch.stack([image[:, y : y + tile, x : x + tile] for y, x in positions])


def add_tiles(total: torch.Tensor, probs: torch.Tensor, positions: list[tuple[int, int]], tile: int) -> None:
    """Add each tile's weighted probabilities into `total` at its (y, x)."""
    sums, parts = (total.numpy(), probs.numpy()) if total.device.type == "cpu" else (total, probs)
    for (y, x), tile_probs in zip(positions, parts):  # on the CPU NumPy's strided adds are ~10x faster
        sums[:, y : y + tile, x : x + tile] += tile_probs


def divide_by_weights(total: torch.Tensor, ys: list[int], xs: list[int], window: np.ndarray) -> None:
    """Divide in place by the weight sum, the outer product of the per-axis window sums."""
    for axis, starts in ((1, ys), (2, xs)):
        weight = np.zeros(total.shape[axis], dtype=np.float64)
        for start in starts:
            weight[start : start + len(window)] += window
        shape = [1, 1, 1]
        shape[axis] = -1
        total /= torch.from_numpy(weight.astype(np.float32).reshape(shape)).to(total.device)
