"""Intensity normalisation of `(C, H, W)` slices: by percentiles, or by the spec a model file records."""

from __future__ import annotations

import math

import numpy as np

NORMALISATION = {"method": "percentile", "low": 1.0, "high": 99.8}
# Percentiles of very large slices are estimated on a regular subsample: same result for the same data
# whatever its dtype, and a 20k x 20k image does not need a full sort.
_PERCENTILE_SAMPLE = 4_000_000


def normalise(image: np.ndarray, low: float = 1.0, high: float = 99.8) -> np.ndarray:
    """Scale each channel of a (C, H, W) slice so its low/high percentiles map to 0 and 1 (float32).

    Non-finite pixels become 0 before scaling; a constant channel becomes all zeros.
    """
    out = np.empty(image.shape, dtype=np.float32)
    for c in range(image.shape[0]):
        channel = image[c].astype(np.float32, copy=False)
        finite = np.isfinite(channel)
        if not finite.all():
            channel = np.where(finite, channel, 0.0).astype(np.float32)
        flat = channel.reshape(-1)
        if flat.size > _PERCENTILE_SAMPLE:
            flat = flat[:: math.ceil(flat.size / _PERCENTILE_SAMPLE)]
        lo, hi = np.percentile(flat, [low, high]) if flat.size else (0.0, 0.0)
        scale = float(hi - lo)
        if scale <= 0 or not math.isfinite(scale):
            out[c] = 0.0
            continue
        np.subtract(channel, np.float32(lo), out=out[c])
        out[c] *= np.float32(1.0 / scale)
    return out


def normalise_with(image: np.ndarray, spec: dict) -> np.ndarray:
    """Apply the normalisation recorded in a model file to a (C, H, W) slice."""
    if spec.get("method") == "window":  # a fixed window (e.g. CT Hounsfield units), see paulow.intensity
        return apply_window(image, float(spec["low"]), float(spec["high"]))
    if spec.get("method") == "scale255":  # the original PAULow: ToTensor on 8-bit RGB
        return (np.nan_to_num(image.astype(np.float32)) / 255.0).astype(np.float32)
    return normalise(image, float(spec.get("low", 1.0)), float(spec.get("high", 99.8)))


def apply_window(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """A (C, H, W) slice as float32 with `low` -> 0 and `high` -> 1, clipped to 0..1 (NaN -> 0)."""
    scaled = (np.nan_to_num(image.astype(np.float32), nan=low) - np.float32(low)) * np.float32(
        1.0 / (high - low)
    )
    return np.clip(scaled, 0.0, 1.0).astype(np.float32, copy=False)
