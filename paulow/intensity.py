"""Fixed intensity windows (e.g. Hounsfield units for CT) beside the percentile normalisation: values
LOW..HIGH map to 0..1 and are clipped there, the same for every image, recorded in the model file."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import UsageError

if TYPE_CHECKING:
    from .config import TrainConfig

# Radiology's usual window (level L, width W -> L - W/2 .. L + W/2), in Hounsfield units.
CT_PRESETS: dict[str, tuple[float, float]] = {
    "ct-soft-tissue": (-160.0, 240.0),  # L 40, W 400
    "ct-abdomen": (-125.0, 225.0),  # L 50, W 350
    "ct-liver": (-45.0, 105.0),  # L 30, W 150
    "ct-brain": (0.0, 80.0),  # L 40, W 80
    "ct-lung": (-1350.0, 150.0),  # L -600, W 1500
    "ct-bone": (-450.0, 1050.0),  # L 300, W 1500
}
_HELP = "give LOW,HIGH (e.g. -160,240) or a preset: " + ", ".join(CT_PRESETS)


def parse_window(value: Any) -> list[float] | None:
    """`[low, high]` from "LOW,HIGH", a preset name, or two numbers; None for None/""; a `UsageError`
    for anything else or low >= high."""
    if value is None or value == "" or value is False:
        return None
    if isinstance(value, str):
        name = value.strip().lower()
        if name in CT_PRESETS:
            return list(CT_PRESETS[name])
        parts = [p for p in name.replace(" ", "").split(",") if p]
    else:
        parts = list(value)
    try:
        low, high = (float(p) for p in parts)
    except (TypeError, ValueError):
        raise UsageError(f"--window {value!r}: {_HELP}") from None
    if not (np.isfinite(low) and np.isfinite(high)) or low >= high:
        raise UsageError(f"--window {value!r}: LOW must be below HIGH ({_HELP})")
    return [low, high]


def window_option(cfg: TrainConfig) -> TrainConfig:
    """`cfg` with its `window` option settled (text or preset -> [low, high])."""
    return replace(cfg, window=parse_window(cfg.window))


def normalisation_spec(cfg) -> dict:
    """The normalisation a run with `cfg` applies and records: its window, else the percentiles."""
    from .normalisation import NORMALISATION

    window = parse_window(getattr(cfg, "window", None))
    if window is None:
        return dict(NORMALISATION)
    return {"method": "window", "low": window[0], "high": window[1]}
