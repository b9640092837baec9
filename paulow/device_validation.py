"""Validation predicted in batches across slices on the device (the GPU training path).

`predict_slice` predicts one slice at a time, so a between-epoch validation on a tile subset (many
crops of one tile each, see `paulow.validation_subset`) sends batches of one tile to the network.
`predict_batched` runs the same algorithm over all the slices together: every slice is copied to
the device once, the tiles of all slices are cut there and sent `batch_size` at a time, each tile's
weighted probabilities are added into its own slice's sums (in `predict_slice`'s order), and the
probabilities of every slice come back to the host in one copy. Same tiles, window and
padding as `predict_slice`, so the probabilities agree with it to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .device_batches import residence
from .infer import _check_image, _check_options, _pad_to_tile, gaussian_window_1d, tile_starts
from .inference_networks import Models, as_members, prepared
from .tile_engine import TileRunner, divide_by_weights

GUESSED_CLASSES = 8  # as `tile_engine`: the output channels only decide where the sums may live


def fits_on_device(images: Sequence[np.ndarray], tile: int, device: torch.device | str) -> bool:
    """Whether the padded slices and their sums fit the device (see `residence`)."""
    pixels = sum(max(im.shape[1], tile) * max(im.shape[2], tile) for im in images)
    channels = max((im.shape[0] for im in images), default=1)
    return residence(pixels * (channels + GUESSED_CLASSES) * 4, device) == "device"


def predict_batched(
    models: Models,
    images: Sequence[np.ndarray],
    *,
    tile: int,
    overlap: float,
    batch_size: int,
    device: torch.device | str,
) -> list[np.ndarray]:
    """Probabilities `float32 (K, H, W)` of each `(C, H, W)` slice, as `predict_slice` gives them
    (without test-time augmentation), the tiles of all slices batched together."""
    members = as_members(models)
    _check_options(tile, overlap, batch_size)
    device = torch.device(device)
    padded = [_pad_to_tile(_check_image(im), tile) for im in images]
    step = max(1, round(tile * (1 - overlap)))
    grids = [(tile_starts(p.shape[1], tile, step), tile_starts(p.shape[2], tile, step)) for p, _ in padded]
    jobs = [(s, y, x) for s, (ys, xs) in enumerate(grids) for y in ys for x in xs]
    window = gaussian_window_1d(tile)
    with prepared(members, device), torch.inference_mode():
        runner = TileRunner(members, window, device, batch_size, ((0, False),))
        sources = [torch.from_numpy(p).to(device) for p, _ in padded]
        totals: list[torch.Tensor | None] = [None] * len(sources)
        for first in range(0, len(jobs), batch_size):
            batch = jobs[first : first + batch_size]
            tiles = torch.stack([sources[s][:, y : y + tile, x : x + tile] for s, y, x in batch])
            for offset, probs in runner(tiles):
                for (s, y, x), tile_probs in zip(batch[offset : offset + len(probs)], probs):
                    if totals[s] is None:
                        shape = (probs.shape[1], *sources[s].shape[1:])
                        totals[s] = torch.zeros(shape, dtype=torch.float32, device=device)
                    totals[s][:, y : y + tile, x : x + tile] += tile_probs  # type: ignore[index]
        return _finish(totals, grids, [crop for _, crop in padded], window)


def _finish(totals: list, grids: list, crops: list, window: np.ndarray) -> list[np.ndarray]:
    """Divide each slice's sums by its weights, crop the padding and bring all back in one copy."""
    outs = []
    for total, (ys, xs), crop in zip(totals, grids, crops):
        divide_by_weights(total, ys, xs, window)
        outs.append(total if crop is None else total[:, crop[0], crop[1]])
    if not outs:
        return []
    host = torch.cat([o.reshape(-1) for o in outs]).cpu().numpy()  # the one copy back
    result, start = [], 0
    for o in outs:
        result.append(np.ascontiguousarray(host[start : start + o.numel()].reshape(tuple(o.shape))))
        start += o.numel()
    return result
