"""The array-level prediction pipeline shared by the API and the commands: channels, normalisation,
tiled inference, the threshold choice. No files, no prompts."""
from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from .errors import ModelError

log = logging.getLogger("paulow")


def match_channels(image: np.ndarray, expected: int, name: str) -> np.ndarray:
    """Fit a (pages, C, H, W) stack to the model's channel count by an explicit, logged conversion."""
    have = image.shape[1]
    if have == expected:
        return image
    if expected == 1 and have in (3, 4):
        log.warning("'%s' has %d channels but the model is greyscale: converted to grey (luminance)",
                    name, have)
        weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return np.tensordot(image[:, :3].astype(np.float32), weights, axes=([1], [0]))[:, None]
    if expected == 3 and have == 1:
        log.warning("'%s' is greyscale but the model expects 3 channels: the grey channel is repeated",
                    name)
        return np.repeat(image, 3, axis=1)
    if expected == 3 and have == 4:
        log.warning("'%s' is RGBA: the alpha channel is dropped for a 3-channel model", name)
        return image[:, :3]
    raise ModelError(f"'{name}' has {have} channel(s) but the model expects {expected}: convert the "
                     f"image to {expected} channel(s) or use a model trained on {have}-channel images")


def choose_threshold(meta: dict, override: float | None = None) -> float:
    """The user's threshold if given, else the one stored in the model file (tuned on validation)."""
    return float(override) if override is not None else float(meta.get("threshold", 0.5))


def predict_pages(models: Any, meta: dict, data: np.ndarray, *, tile: int | None = None,
                  overlap: float | None = None, batch_size: int = 8, device: str = "cpu",
                  tta: bool = False, name: str = "image",
                  on_tile: Callable[[int, int, int], None] | None = None) -> list[np.ndarray]:
    """Probabilities (K, H, W) float32 for every page of a raw (pages, C, H, W) stack;
    `on_tile(page, done, total)` after each batch of tiles (page counts from 0)."""
    from .data import normalise_with
    from .infer import predict_slice, set_activation, suggest_tile

    set_activation(models, meta)  # softmax only for models whose file says so (K >= 2)
    data = match_channels(data, int(meta["in_channels"]), name)
    tile = tile or suggest_tile(int(meta.get("patch", 128)), device)
    overlap = overlap if overlap is not None else float(meta.get("overlap", 0.5))
    spec = meta.get("normalisation", {})
    return [predict_slice(models, normalise_with(page, spec), tile=tile, overlap=overlap,
                          batch_size=batch_size, device=device, tta=tta,
                          on_tile=None if on_tile is None else partial(on_tile, index))
            for index, page in enumerate(data)]
