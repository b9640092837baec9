"""Training batches cut and augmented on the device: the training data path of a GPU run.

What `DeviceBatches` does, in place of `PatchDataset` items through a `DataLoader`:
- The training slices (padded as `PatchDataset` pads them), their masks and border weights are
  copied once into flat `(pixels, C)` tensors. They stay on the GPU when they take at most
  `RESIDENT_SHARE` of its free memory; otherwise they stay in host memory and each batch is
  gathered there, pinned and copied with `non_blocking=True` (pinning the batch, not the slices:
  pinning many GB of host memory can starve the machine, and the batch is what crosses the bus).
- The epoch's crop positions are `PatchDataset.positions` (grid patches and uniform random crops,
  drawn by `reshuffle(epoch)`): the same pool as the host path. They are copied to the device once
  per epoch; the order is a `torch.randperm` there.
- A batch is one gather: each patch's flip and 90-degree turn is folded into the gather's index
  (the transform of a square patch is a permutation of its pixels), so patch, mask and weight map
  are cut and turned in one step, without a host copy. Intensity gamma, scale and shift follow as
  tensor operations. Every draw has `Augment`'s distribution (turn uniform in 0..3, or 0/2 without
  `rotations`; mirror with probability 1/2; log-uniform gamma; uniform scale and shift); the random
  streams differ from the host path's, so single batches differ.
- Draws come from generators seeded from (seed, epoch): a resumed run draws the same batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import cast

import numpy as np
import torch

from .augmentation import Augment
from .patches import PatchDataset

RESIDENT_SHARE = 0.5  # the slices stay on the GPU when they take at most this share of its free memory


def _cuda_free(device: torch.device) -> int:
    return int(torch.cuda.mem_get_info(device)[0])


def residence(
    nbytes: int, device: torch.device | str, free: Callable[[torch.device], int] | None = None
) -> str:
    """Where training slices of `nbytes` live: "device" (on a CPU always), or "pinned" (host memory,
    batches pinned and copied) when they exceed `RESIDENT_SHARE` of the GPU's free memory."""
    device = torch.device(device)
    if device.type != "cuda":
        return "device"
    available = (free or _cuda_free)(device)
    return "device" if nbytes <= available * RESIDENT_SHARE else "pinned"


def use_device_batches(device: torch.device | str) -> bool:
    """The device path trains on CUDA outside torchrun (there a `DistributedSampler` shares the
    patches); on the CPU the host path stays (see `bench/train_data_path.py`)."""
    from . import distributed

    return torch.device(device).type == "cuda" and not distributed.active()


def transform_tables(patch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Source rows and columns `(8, P, P)` of the 8 transforms `t = 2 * turns + mirror`: output pixel
    (u, v) of transform t reads the crop at (rows[t, u, v], cols[t, u, v]). Built by applying
    `Augment`'s own NumPy operations to the coordinate grids, so they match it exactly."""
    rows, cols = np.indices((patch, patch))
    out_rows, out_cols = [], []
    for turns in range(4):
        for mirror in (False, True):
            r, c = np.rot90(rows, turns), np.rot90(cols, turns)
            if mirror:
                r, c = r[:, ::-1], c[:, ::-1]
            out_rows.append(r)
            out_cols.append(c)
    return torch.from_numpy(np.stack(out_rows)), torch.from_numpy(np.stack(out_cols))


def _epoch_seed(seed: int, epoch: int, stream: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1)[0])


class DeviceBatches:
    """Shuffled, augmented `(images, targets[, weights])` batches of a `PatchDataset`'s positions,
    cut on `device` (see the module docstring). Iterating it runs one epoch of
    `dataset.positions` (call `dataset.reshuffle(epoch)` first, as with a `DataLoader`); like the
    loader it drops a last partial batch when there is more than one batch."""

    sampler = None  # `distributed.set_epoch` looks here, as on a DataLoader

    def __init__(
        self,
        dataset: PatchDataset,
        batch_size: int,
        device: torch.device | str,
        free: Callable[[torch.device], int] | None = None,
        where: str | None = None,
    ) -> None:
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.device = torch.device(device)
        self.augment: Augment | None = dataset.augment
        images, masks, weights, offsets, widths = _flatten(dataset)
        nbytes = sum(t.numel() * t.element_size() for t in (images, masks, *weights))
        self.where = where or residence(nbytes, self.device, free)
        store = self.device if self.where == "device" else torch.device("cpu")
        self.store = store
        self.images, self.masks = images.to(store), masks.to(store)
        self.weights = weights[0].to(store) if weights else None
        # int32 indices where they suffice: half the memory traffic of the gather's index
        self.index_dtype = torch.int32 if len(masks) < 2**31 else torch.int64
        self.offsets, self.widths = (t.to(store, self.index_dtype) for t in (offsets, widths))
        self.rows, self.cols = (t.to(store, self.index_dtype) for t in transform_tables(dataset.patch))
        self.last: dict[str, torch.Tensor] = {}  # the draws of the latest batch (for tests)

    def __len__(self) -> int:
        n = len(self.dataset.positions)
        return n // self.batch_size if n > self.batch_size else min(n, 1)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        """Copy the epoch's positions to the device once and seed its draws; then the batches."""
        epoch, seed = self.dataset.epoch, self.dataset.seed
        self.index_gen = torch.Generator(device=self.store).manual_seed(_epoch_seed(seed, epoch, 1))
        self.value_gen = torch.Generator(device=self.device).manual_seed(_epoch_seed(seed, epoch, 2))
        positions = torch.tensor(self.dataset.positions, dtype=torch.int64).reshape(-1, 3).to(self.store)
        order = torch.randperm(len(positions), generator=self.index_gen, device=self.store)
        return self._batches(positions[order])

    def _batches(self, positions: torch.Tensor) -> Iterator[tuple[torch.Tensor, ...]]:
        n = len(positions)
        size = self.batch_size if n > self.batch_size else n
        for start in range(0, len(self) * size, size):
            yield self._batch(positions[start : start + size])

    def _batch(self, positions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The augmented batch of `(i, y, x)` crop positions (on the store device)."""
        turns = self._draw_transforms(len(positions))
        flat = self._flat_index(positions, turns)
        p = self.dataset.patch
        image = torch.index_select(self.images, 0, flat).view(len(positions), p, p, -1)
        mask = torch.index_select(self.masks, 0, flat).view(len(positions), p, p)
        parts = [image, mask]
        if self.weights is not None:
            parts.append(torch.index_select(self.weights, 0, flat).view(len(positions), p, p))
        parts = [self._to_device(t) for t in parts]
        self.last = {"positions": positions, "transforms": turns}
        images = parts[0].permute(0, 3, 1, 2)  # (B, C, P, P) in channels_last memory
        if self.augment is not None and self.augment.intensity:
            images = self._intensity(images)
        images = images.contiguous(
            memory_format=torch.channels_last if self.device.type == "cuda" else torch.contiguous_format
        )
        return (images, self._targets(parts[1]), *parts[2:])

    def _draw_transforms(self, count: int) -> torch.Tensor:
        """Transform ids `2 * turns + mirror`, drawn as `Augment` draws them (0 without flips)."""
        if self.augment is None or not self.augment.flips:
            return torch.zeros(count, dtype=torch.int64, device=self.store)
        g = self.index_gen
        if self.augment.rotations:
            return torch.randint(0, 8, (count,), generator=g, device=self.store)
        half_turns = torch.randint(0, 2, (count,), generator=g, device=self.store)
        return 4 * half_turns + torch.randint(0, 2, (count,), generator=g, device=self.store)

    def _flat_index(self, positions: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
        """Flat pixel index `(B * P * P,)` of each patch pixel, its transform applied."""
        i, y, x = positions.to(self.index_dtype).unbind(1)
        width = self.widths[i][:, None, None]
        corner = (self.offsets[i] + y * self.widths[i] + x)[:, None, None]
        return (corner + self.rows[turns] * width + self.cols[turns]).reshape(-1)

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        if tensor.device == self.device:
            return tensor
        if self.device.type == "cuda":
            tensor = tensor.pin_memory()
        return tensor.to(self.device, non_blocking=True)

    def _intensity(self, images: torch.Tensor) -> torch.Tensor:
        """`Augment`'s gamma on the positive part, then scale and shift, one draw per patch."""
        aug = cast(Augment, self.augment)
        count = (len(images), 1, 1, 1)
        g, dev = self.value_gen, self.device
        low, high = (float(v) for v in np.log(aug.gamma))
        gamma = torch.exp(low + (high - low) * torch.rand(count, generator=g, device=dev))
        scale = aug.scale[0] + (aug.scale[1] - aug.scale[0]) * torch.rand(count, generator=g, device=dev)
        shift = aug.shift[0] + (aug.shift[1] - aug.shift[0]) * torch.rand(count, generator=g, device=dev)
        self.last.update(gamma=gamma.view(-1), scale=scale.view(-1), shift=shift.view(-1))
        positive = images.clamp(min=0)
        return (images - positive + positive.pow(gamma)) * scale + shift

    def _targets(self, mask: torch.Tensor) -> torch.Tensor:
        """`one_hot` of the masks: float32 (B, K, P, P) (K == 1: the foreground channel)."""
        if self.dataset.classes <= 1:
            return (mask > 0).float()[:, None]
        classes = torch.arange(self.dataset.classes, device=mask.device, dtype=mask.dtype)
        return (mask[:, None] == classes[None, :, None, None]).float()


def _flatten(
    dataset: PatchDataset,
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """The dataset's padded slices as flat `(pixels, C)` float32, masks `(pixels,)` uint8 and weight
    maps `(pixels,)` float32 (a list of 0 or 1), with each slice's first pixel and width."""
    images = [np.ascontiguousarray(img.transpose(1, 2, 0), dtype=np.float32) for img, _ in dataset.items]
    channels = images[0].shape[-1]
    flat_images = torch.from_numpy(np.concatenate([im.reshape(-1, channels) for im in images]))
    flat_masks = torch.from_numpy(np.concatenate([m.reshape(-1) for _, m in dataset.items]).astype(np.uint8))
    weights = []
    if dataset.weights is not None:
        weights.append(
            torch.from_numpy(np.concatenate([w.reshape(-1) for w in dataset.weights]).astype(np.float32))
        )
    sizes = [m.size for _, m in dataset.items]
    offsets = torch.tensor(np.concatenate([[0], np.cumsum(sizes)[:-1]]), dtype=torch.int64)
    widths = torch.tensor([m.shape[1] for _, m in dataset.items], dtype=torch.int64)
    return flat_images, flat_masks, weights, offsets, widths
