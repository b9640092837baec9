"""Attention-gate maps for `use_model.py --save-attention`.

Each gate multiplies a skip connection by a map in [0, 1]: bright where the decoder let the encoder's
detail through, dark where it suppressed it. Maps come deepest gate first (coarse, where the network
looks) to shallowest (fine, which edges it keeps); each is resized to the slice for viewing.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger("paulow")
MAX_PIXELS = 16_000_000  # one whole-slice forward pass; larger slices are skipped with a warning


def attention_maps(loaded, page: np.ndarray, opts) -> list[np.ndarray]:
    """(H, W) float maps of every attention gate of the first model, for one raw (C, H, W) page."""
    return gate_maps(loaded.models[0], loaded.meta, loaded.in_channels, page, opts.device)


def gate_maps(network, meta: dict, in_channels: int, page: np.ndarray, device: str) -> list[np.ndarray]:
    """(H, W) float maps of every attention gate of `network` (deepest first), for one raw (C, H, W)
    page normalised as `meta` says, on `device`; [] (and a warning) when there are none to show."""
    import cv2
    import torch

    from .normalisation import normalise_with
    from .predict import match_channels

    model = getattr(network, "_orig_mod", network)  # a compiled one: its network
    if not hasattr(model, "keep_attention"):
        log.warning("model '%s' has no attention gates: nothing to save", meta.get("arch"))
        return []
    from .context import model_context

    if model_context(meta):  # its input is a page with its neighbours, not one page
        log.warning(
            "model '%s' was trained with --context: attention maps are not written for it",
            meta.get("name") or meta.get("arch"),
        )
        return []
    h, w = page.shape[-2:]
    if h * w > MAX_PIXELS:
        log.warning("slice of %dx%d is too large for attention maps (one forward pass): skipped", h, w)
        return []
    image = normalise_with(match_channels(page[None], in_channels, "slice")[0], meta.get("normalisation", {}))
    model.keep_attention = True
    try:
        with torch.inference_mode():
            model(torch.from_numpy(image)[None].to(device))
        maps = [m[0, 0].float().cpu().numpy() for m in model.attention_maps]
    finally:
        model.keep_attention = False
    return [cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST) for m in maps]


def heatmap_overlay(grey: np.ndarray, amap: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """An attention map as a colour heat map (jet: blue = suppressed, red = let through) blended over
    the 8-bit grey slice: `(H, W, 3)` uint8 RGB."""
    import cv2

    heat = cv2.applyColorMap((np.clip(amap, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    base = np.repeat(grey[..., None], 3, axis=2).astype(np.float32)
    return np.clip((1 - alpha) * base + alpha * heat, 0, 255).astype(np.uint8)
