"""The array-level prediction pipeline shared by the API and the commands: channels, normalisation,
tiled inference, the threshold choice. No files, no prompts."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, cast

import numpy as np

from .errors import ModelError

log = logging.getLogger("paulow")


def match_channels(image: np.ndarray, expected: int, name: str) -> np.ndarray:
    """Fit a (pages, C, H, W) stack to the model's channel count by an explicit, logged conversion."""
    have = image.shape[1]
    if have == expected:
        return image
    if expected == 1 and have in (3, 4):
        log.warning(
            "'%s' has %d channels but the model is greyscale: converted to grey (luminance)", name, have
        )
        weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return np.tensordot(image[:, :3].astype(np.float32), weights, axes=([1], [0]))[:, None]
    if expected == 3 and have == 1:
        log.warning("'%s' is greyscale but the model expects 3 channels: the grey channel is repeated", name)
        return np.repeat(image, 3, axis=1)
    if expected == 3 and have == 4:
        log.warning("'%s' is RGBA: the alpha channel is dropped for a 3-channel model", name)
        return image[:, :3]
    raise ModelError(
        f"'{name}' has {have} channel(s) but the model expects {expected}: convert the "
        f"image to {expected} channel(s) or use a model trained on {have}-channel images"
    )


def choose_threshold(meta: dict, override: float | None = None) -> float:
    """The user's threshold if given, else the one stored in the model file (tuned on validation)."""
    from .model_file import stored_threshold

    return float(override) if override is not None else stored_threshold(meta)


def normalise_pages(meta: dict, data: np.ndarray, name: str = "image") -> Iterator[np.ndarray]:
    """The pages of a raw (pages, C, H, W) stack as the model's float32 (C, H, W) inputs, one at a
    time (channels fitted, normalised as in training; a `--context` model's pages with their
    neighbouring sections as channels)."""
    from .context import for_model, model_context
    from .normalisation import normalise_with

    data = match_channels(data, int(meta["in_channels"]) // (2 * model_context(meta) + 1), name)
    spec = meta.get("normalisation", {})
    if model_context(meta):  # 2.5-D: every section with its neighbours as channels
        return iter(for_model(np.stack([normalise_with(page, spec) for page in data]), meta, name))
    return (normalise_with(page, spec) for page in data)


def predict_pages(
    models: Any,
    meta: dict,
    data: np.ndarray | list[np.ndarray],
    *,
    tile: int | None = None,
    overlap: float | None = None,
    batch_size: int = 8,
    device: str = "cpu",
    tta: bool = False,
    name: str = "image",
    runtime: str = "torch",
    normalised: bool = False,
    on_tile: Callable[[int, int, int], None] | None = None,
) -> list[np.ndarray]:
    """Probabilities (K, H, W) float32 for every page of a raw (pages, C, H, W) stack (or of pages
    already through `normalise_pages` when `normalised`). `runtime`: "torch" (default) or
    "onnxruntime" (CPU; faster, masks not byte-identical: paulow.ort_runtime); `on_tile(page, done,
    total)` after each batch of tiles (page counts from 0)."""
    from .infer import predict_slice, suggest_tile
    from .inference_networks import set_activation
    from .ort_runtime import choose_runtime, with_runtime

    set_activation(models, meta)  # softmax only for models whose file says so (K >= 2)
    # `normalised`: data is a list of pages `paulow.multi_file` read and normalised already
    pages = data if normalised else normalise_pages(meta, cast(np.ndarray, data), name)
    tile = tile or suggest_tile(int(meta.get("patch", 128)), device)
    overlap = overlap if overlap is not None else float(meta.get("overlap", 0.5))
    models = with_runtime(models, choose_runtime(runtime, device), tile, int(meta["in_channels"]))
    return [
        predict_slice(
            models,
            page,
            tile=tile,
            overlap=overlap,
            batch_size=batch_size,
            device=device,
            tta=tta,
            on_tile=None if on_tile is None else partial(on_tile, index),
        )
        for index, page in enumerate(pages)
    ]
