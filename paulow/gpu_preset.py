"""The `gpu` preset's batch size and learning rate, and the batch's fit to the card's memory.

- **Batch 64** (was 16). A 128 px patch of a width-32 network is little work for a GPU: each step
  also pays fixed costs (kernel launches, the optimiser, the loss), so small batches leave the card
  waiting. Issue 26's target of 4,000 patches/s at width 32 means 62 steps/s at batch 64, against
  250 steps/s at batch 16. Not measured on a GPU yet (none was lent; see docs/gpu.md).
- **Learning rate 2e-3** (was 1e-3 at batch 16): scaled by the square root of the batch ratio,
  not linearly. The linear rule (Goyal et al. 2017) is derived for SGD; AdamW divides each update
  by the gradient's second moment, and for adaptive optimisers the square-root rule keeps the
  update noise of the smaller batch (Malladi et al. 2022, "On the SDEs and Scaling Rules for
  Adaptive Gradient Algorithms"). A 4x linear step (4e-3) would also be 2x the `cpu` preset's
  2e-3 on a network twice as wide. The warm-up (5 % of the run) stays.
- **Memory.** `bench/train_data_path.py --batches --activation-memory 32 64` measures what backward keeps per 128 px
  patch in float32: 62 MiB at width 32, 144 MiB at width 64 (bf16 autocast keeps less). On CUDA,
  when the user gives no `--batch-size`, the preset's batch is halved (down to 16, the rate scaled
  with it) until batch x that estimate is at most half of the card's memory. At width 32: 64 from
  9 GiB up, 32 on an 8 GB card, 16 on a 4 GB one.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import TrainConfig

BASE_BATCH, BASE_LR = 16, 1e-3  # the preset's settings before the device data path
GPU_BATCH = 64
MIN_BATCH = 16
MIB_PER_WIDTH = 2.25  # float32 activations kept per 128 px patch and unit of width (144 MiB / 64)


def scaled_lr(batch: int) -> float:
    """The preset's learning rate for `batch`: square-root scaling from 1e-3 at batch 16."""
    return BASE_LR * math.sqrt(batch / BASE_BATCH)


def patch_bytes(width: int, patch: int) -> float:
    """Estimated float32 activations kept for backward per patch (an upper bound under bf16)."""
    return MIB_PER_WIDTH * 2**20 * width * (patch / 128) ** 2


def fit_batch(batch: int, width: int, patch: int, total_bytes: int) -> int:
    """`batch` halved (not below `MIN_BATCH`) until its activations take at most half the memory."""
    while batch > MIN_BATCH and batch * patch_bytes(width, patch) > total_bytes / 2:
        batch //= 2
    return batch


def _total_memory(device: str) -> int | None:
    """The card's memory in bytes, or None where torch sees no CUDA device (the run says so later)."""
    import torch

    if not torch.cuda.is_available():
        return None
    return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)


def fit_to_card(cfg: TrainConfig, device: str, total_bytes: int | None = None) -> TrainConfig:
    """On CUDA, `cfg` with the `gpu` preset's batch (and its rate with it) lowered to fit the card's
    memory; else `cfg` as given."""
    if not device.startswith("cuda"):
        return cfg
    total = total_bytes if total_bytes is not None else _total_memory(device)
    if total is None:
        return cfg
    batch = fit_batch(cfg.batch_size, cfg.width, cfg.patch, total)
    if batch == cfg.batch_size:
        return cfg
    return replace(cfg, lr=cfg.lr * math.sqrt(batch / cfg.batch_size), batch_size=batch)
