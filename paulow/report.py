"""Reports: JSON and CSV files, training curves, sample panels, terminal tables, dataset summaries.

Plots are drawn on `matplotlib.figure.Figure` objects and saved with the Agg renderer; pyplot is
never imported, so no display is needed, no global backend is switched (a notebook's inline plots
keep working) and no figure is left open in pyplot's registry.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ShapeMismatchError
from .io.atomic import atomic_write_path
from .slices import snr  # noqa: F401  (the dataset report's SNR; defined once, in slices.py)

REGIMES = (
    ("regime_empty", "empty: BCE"),
    ("regime_small", "small: BCE + Tversky"),
    ("regime_large", "large: Tversky + focal Tversky"),
)
_DISPLAY_MAX_SIDE = 1024  # panels show big images subsampled to at most this many pixels a side


# ---------------------------------------------------------------- files
def _plain(obj: Any) -> Any:
    """Plain JSON types: numpy scalars and arrays, tuples, sets and paths converted; NaN/inf → None."""
    if isinstance(obj, dict):
        return {_plain_key(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        return _plain(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _plain_key(key: Any) -> Any:
    key = key.item() if isinstance(key, np.generic) else key
    return key if isinstance(key, (str, int, float, bool)) or key is None else str(key)


def write_json(path: str | Path, obj: Any) -> Path:
    """Write `obj` as indented, strict JSON (NaN and inf become null), atomically."""
    text = json.dumps(_plain(obj), indent=2, allow_nan=False)
    with atomic_write_path(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return Path(path)


def _csv_cell(value: Any) -> Any:
    value = value.item() if isinstance(value, np.generic) else value
    return "" if value is None else value


def write_csv(path: str | Path, rows: Iterable[dict], header: list[str] | None = None) -> Path:
    """Write rows as CSV, atomically. Header: `header`, else every key in order of first
    appearance; a row without a key leaves its cell empty. With `header`, `rows` may be an
    iterator (streamed, never held)."""
    if header is None:
        rows = list(rows)
        header = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_write_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=header, restval="")
            if header:
                writer.writeheader()
            writer.writerows({k: _csv_cell(v) for k, v in row.items()} for row in rows)
    return Path(path)


def _save(fig, path: str | Path) -> Path:
    with atomic_write_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(path)


# ---------------------------------------------------------------- training curves
def _series(history: Sequence[dict], key: str) -> list[float]:
    return [float(row[key]) if row.get(key) is not None else float("nan") for row in history]


def _class_keys(history: Sequence[dict]) -> list[str]:
    """The per-class validation Dice columns (`val_dice_NAME`, K >= 2), in order."""
    return list(dict.fromkeys(k for row in history for k in row if k.startswith("val_dice_")))


def _has(history: Sequence[dict], key: str) -> bool:
    return any(row.get(key) is not None for row in history)


def _plot_regimes(ax, epochs: list[float], history: Sequence[dict]) -> None:
    """Stacked bars: each epoch's share of patches per dynamic-loss regime (K >= 2 runs, recognised by
    their per-class columns, use categorical CE where binary runs use BCE)."""
    multiclass = bool(_class_keys(history))
    counts = np.array([_series(history, key) for key, _ in REGIMES])
    counts = np.nan_to_num(counts)
    totals = counts.sum(axis=0)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    bottom = np.zeros(len(epochs))
    for share, (_, label), colour in zip(shares, REGIMES, ("#9e9e9e", "#4c72b0", "#dd8452")):
        label = label.replace("BCE", "CE") if multiclass else label
        ax.bar(epochs, share, bottom=bottom, width=0.9, label=label, color=colour)
        bottom += share
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of patches")
    ax.set_title("dynamic-loss regime per patch", fontsize=9)
    ax.legend(fontsize=7, loc="upper right")


def plot_curves(history: Sequence[dict], path: str | Path, title: str = "") -> Path:
    """One PNG: training (and validation) loss, validation Dice, and the share of patches in each
    dynamic-loss regime per epoch (a regime change explains a loss curve with two plateaus).

    `history` rows: epoch, train_loss, val_dice, optional val_loss, val_dice_NAME per class (K >= 2)
    and regime_empty/small/large.
    """
    from matplotlib.figure import Figure

    with_regimes = any(_has(history, key) for key, _ in REGIMES)
    fig = Figure(figsize=(7, 8 if with_regimes else 5.5), layout="constrained")
    axes = fig.subplots(3 if with_regimes else 2, 1, sharex=True)
    epochs = _series(history, "epoch")
    axes[0].plot(epochs, _series(history, "train_loss"), "o-", ms=3, label="training loss")
    if _has(history, "val_loss"):
        axes[0].plot(epochs, _series(history, "val_loss"), "o-", ms=3, label="validation loss")
    axes[0].set_ylabel("loss")
    axes[0].legend(fontsize=8)
    validated = [row for row in history if row.get("val_dice") is not None]  # validation is paced
    axes[1].plot(
        _series(validated, "epoch"),
        _series(validated, "val_dice"),
        "o-",
        ms=3,
        color="tab:green",
        label="mean over foreground classes" if _class_keys(validated) else None,
    )
    for key in _class_keys(validated):  # K >= 2: one thin line per class (history.csv's val_dice_NAME)
        axes[1].plot(
            _series(validated, "epoch"), _series(validated, key), "-", lw=1, label=key[len("val_dice_") :]
        )
    if _class_keys(validated):
        axes[1].legend(fontsize=7)
    axes[1].set_ylabel("validation Dice")
    axes[1].set_ylim(0, 1)
    if with_regimes:
        _plot_regimes(axes[2], epochs, history)
    axes[-1].set_xlabel("epoch")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return _save(fig, path)


# ---------------------------------------------------------------- sample panels
def _subsample(array: np.ndarray) -> np.ndarray:
    """Every k-th pixel along H and W (the last two axes) so the largest side is ≤ 1024."""
    step = max(1, math.ceil(max(array.shape[-2:]) / _DISPLAY_MAX_SIDE))
    return array[..., ::step, ::step]


def display_image(image: np.ndarray) -> np.ndarray:
    """(H, W) greyscale or (H, W, 3) RGB in 0..1 for display: 3 or 4 channels are shown as RGB, any
    other count as its first channel; each channel stretched between its 1st and 99.8th percentile."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = image[None]
    channels = image[:3] if image.shape[0] in (3, 4) else image[:1]
    shown = np.empty_like(channels)
    for c, channel in enumerate(np.nan_to_num(channels)):
        low, high = np.percentile(channel, (1.0, 99.8))
        shown[c] = np.clip((channel - low) / (high - low), 0, 1) if high > low else 0.0
    return shown[0] if shown.shape[0] == 1 else np.moveaxis(shown, 0, -1)


def _is_probability(prediction: np.ndarray) -> bool:
    return np.issubdtype(prediction.dtype, np.floating) and bool(np.any(prediction % 1 != 0))


def _foreground(prediction: np.ndarray) -> np.ndarray:
    return prediction > 0.5 if _is_probability(prediction) else prediction != 0


def _draw_image(ax, shown: np.ndarray, prediction: np.ndarray) -> None:
    ax.imshow(shown, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    foreground = _foreground(prediction)
    if foreground.any() and not foreground.all():
        ax.contour(foreground.astype(np.float32), levels=[0.5], colors="red", linewidths=0.8)
    ax.set_title("image (prediction outlined)", fontsize=9)


def _draw_mask(ax, mask: np.ndarray, title: str) -> None:
    top = max(1, int(mask.max(initial=0)))
    ax.imshow(mask, cmap="gray" if top == 1 else "viridis", vmin=0, vmax=top, interpolation="nearest")
    ax.set_title(title, fontsize=9)


def _draw_probability(fig, ax, prob: np.ndarray) -> None:
    im = ax.imshow(prob, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title("prediction (probability)", fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.7)


def representative_window(
    size: tuple[int, int], mask: np.ndarray, longest: float = 2.0
) -> tuple[slice, slice]:
    """The whole image, or for a long thin one (one side over `longest` x the other) the square of the
    short side's size holding the most foreground of `mask`, shown at full resolution."""
    height, width = int(size[0]), int(size[1])
    if max(height, width) <= longest * min(height, width):
        return slice(0, height), slice(0, width)
    side = min(height, width)
    along = np.asarray(mask, dtype=np.float64)
    along = (along > 0.5 if along.max(initial=0) <= 1 else along > 0).sum(axis=1 if height > width else 0)
    sums = np.convolve(along, np.ones(side), mode="valid")  # foreground of each square, by offset
    start = int(np.argmax(sums))
    if height > width:
        return slice(start, start + side), slice(0, width)
    return slice(0, height), slice(start, start + side)


def sample_panel(
    image: np.ndarray, truth: np.ndarray | None, prediction: np.ndarray, path: str | Path, title: str = ""
) -> Path:
    """One PNG: image (prediction outlined in red) | ground truth | prediction (mask or probability).
    A long thin image (e.g. 250 x 1024) shows its most annotated square at full resolution.

    `image` is (C, H, W) or (H, W); `truth` (H, W) or None (its panel left out); `prediction` an
    (H, W) mask (0/1 or class indices) or a probability map in 0..1 (outlined at 0.5).
    """
    from matplotlib.figure import Figure

    image, prediction = np.asarray(image), np.asarray(prediction)
    size = image.shape[-2:]
    for name, array in (("truth", truth), ("prediction", prediction)):
        if array is not None and np.shape(array) != size:
            raise ShapeMismatchError(f"{name} shape {np.shape(array)} differs from the image's {size}")
    window = representative_window(size, truth if truth is not None else prediction)
    image, prediction = image[..., window[0], window[1]], prediction[window]
    truth = None if truth is None else np.asarray(truth)[window]
    size = image.shape[-2:]
    pred = _subsample(prediction)
    panels = 2 if truth is None else 3
    aspect = min(max(size[0] / size[1], 0.25), 2.5)  # height / width of one panel
    fig = Figure(figsize=(4 * panels, 4 * aspect + 0.5), layout="constrained")
    axes = fig.subplots(1, panels)
    _draw_image(axes[0], display_image(_subsample(image)), pred)
    if truth is not None:
        _draw_mask(axes[1], _subsample(np.asarray(truth)), "ground truth")
    if _is_probability(pred):
        _draw_probability(fig, axes[-1], pred)
    else:
        _draw_mask(axes[-1], pred, "prediction")
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(title)
    return _save(fig, path)


# ---------------------------------------------------------------- terminal tables
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))


def _numeric_column(values: Sequence[Any]) -> bool:
    present = [v for v in values if v is not None and not (isinstance(v, str) and v == "")]
    return bool(present) and all(_is_number(v) for v in present)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{value:.3f}"
    return str(value.item() if isinstance(value, np.generic) else value)


def format_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """A plain-text table: a header, a dashed rule, one line per row. Floats at 3 decimals; a column
    whose values are all numbers is right-aligned, others left-aligned; missing or None cells are
    blank; trailing spaces are stripped."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(line[i]) for line in cells]) for i, c in enumerate(columns)]
    right = [_numeric_column([row.get(c) for row in rows]) for c in columns]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(list(columns)), rule] + [line(values) for values in cells])


# ---------------------------------------------------------------- dataset summary
def _stats(values: Sequence[float | None]) -> dict[str, float] | None:
    """Mean, min and max of the finite values (None when there is none)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite:
        return None
    return {"mean": float(np.mean(finite)), "min": min(finite), "max": max(finite)}


def _shape_text(shape: Any) -> str:
    return "x".join(str(int(n)) for n in shape) if isinstance(shape, (list, tuple)) else str(shape)


def dataset_summary(slices_info: Sequence[dict]) -> dict:
    """Aggregate per-slice records {file, page, shape, dtype, min, max, foreground_fraction, snr,
    [channels]}: counts, sizes, dtypes, intensity range, foreground fraction and SNR statistics
    (over the finite values; SNR is NaN for a slice whose mask is empty or full)."""
    infos = list(slices_info)
    fractions = [i["foreground_fraction"] for i in infos if i.get("foreground_fraction") is not None]
    summary = {
        "slices": len(infos),
        "files": len({i.get("file") for i in infos}),
        "shapes": dict(Counter(_shape_text(i.get("shape")) for i in infos)),
        "dtypes": dict(Counter(str(i.get("dtype")) for i in infos)),
        "intensity_min": min((float(i["min"]) for i in infos if i.get("min") is not None), default=None),
        "intensity_max": max((float(i["max"]) for i in infos if i.get("max") is not None), default=None),
        "foreground_fraction": _stats(fractions),
        "empty_masks": sum(1 for f in fractions if f == 0),
        "snr": _stats([i.get("snr") for i in infos]),
    }
    if any("channels" in i for i in infos):
        summary["channels"] = dict(Counter(int(i["channels"]) for i in infos if "channels" in i))
    return summary
