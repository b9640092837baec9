"""The plugin's background work: plain generators that yield `Update`s and return a result.

The widgets run them with napari's `thread_worker`; the tests can also run them directly.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

import paulow.api
from paulow.api import Cancelled, UsageError

from .layers import image_pages, label_pages, probability_array


@dataclass
class Update:
    """What a job reports while it runs: a line to show and the progress (done of total steps)."""

    message: str
    done: int = 0
    total: int = 0


@dataclass
class Segmentation:
    """A segmented layer: its labels, the probability layer's data (or None) and the kept predictions
    (`paulow.Prediction`, one per page) that `relabel` re-thresholds without the network."""

    labels: np.ndarray
    probabilities: np.ndarray | None
    threshold: float
    predictions: list = field(default_factory=list)
    shape: tuple[int, ...] = ()
    instances: bool = False
    split_touching: bool = False

    @property
    def min_size(self) -> int:
        return int(self.predictions[0].min_size) if self.predictions else 0


@dataclass
class Trained:
    """A saved model and, for a fine-tuned one, how it and its parent score on the held-out pixels."""

    path: Path
    finetuned_dice: float | None = None
    parent_dice: float | None = None

    @property
    def worse_than_parent(self) -> bool:
        return (
            self.finetuned_dice is not None
            and self.parent_dice is not None
            and self.finetuned_dice < self.parent_dice
        )


def _given(path: str | Path | None) -> Path | None:
    """A path, or None for nothing chosen (an empty file field reads as '.')."""
    return None if path is None or str(path) in ("", ".") else Path(path)


def model_file(path: str | Path | None) -> Path:
    """The chosen model file, or a UsageError saying how to choose one."""
    chosen = _given(path)
    if chosen is None or not chosen.is_file() or chosen.suffix.lower() != ".pth":
        raise UsageError(f"model file '{chosen or ''}' not found: choose a saved PAULow model (.pth)")
    return chosen


def output_file(path: str | Path | None) -> Path:
    """Where to save a new model: a .pth name that does not exist yet (nothing is overwritten)."""
    chosen = _given(path)
    if chosen is None or chosen.suffix.lower() != ".pth":
        raise UsageError(
            f"model file '{chosen or ''}': choose where to save the model (a name ending in .pth)"
        )
    if chosen.exists():
        raise UsageError(f"model file '{chosen}' exists: choose another name (nothing is overwritten)")
    return chosen


def _threaded(
    work: Callable[[Callable[[Any], None]], Any], *, tick: float | None = None
) -> Generator[Any, None, Any]:
    """Run `work(put)` in its own thread and yield what it `put`s as it comes (None every `tick`
    seconds when nothing came); return its result or raise its error in the caller's thread."""
    items: queue.Queue = queue.Queue()
    done: dict[str, Any] = {}
    end = object()

    def run() -> None:
        try:
            done["result"] = work(items.put)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            done["error"] = exc
        finally:
            items.put(end)

    thread = threading.Thread(target=run, name="paulow-job", daemon=True)
    thread.start()
    while True:
        try:
            item = items.get(timeout=tick)
        except queue.Empty:
            item = None
        if item is end:
            break
        yield item
    thread.join()
    if "error" in done:
        raise done["error"]
    return done["result"]


def _stop_if(cancel: threading.Event | None, what: str) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"{what} cancelled: nothing was added or saved")


def segment(
    path: str | Path,
    data: Any,
    rgb: bool,
    *,
    instances: bool = False,
    split_touching: bool = False,
    probabilities: bool = False,
    threshold: float | None = None,
    cancel: threading.Event | None = None,
) -> Generator[Update, None, Segmentation]:
    """Segment every page of an image layer's data with a saved model; progress per batch of tiles,
    stopped (`Cancelled`) at the next batch once `cancel` is set."""
    path = model_file(path)
    yield Update(f"loading {path.name}", 0, 1)
    model = paulow.api.load_model(path)
    pages, shape = image_pages(data, rgb, model.in_channels)

    def on_tile(page: int, done: int, total: int, put: Callable[[Any], None]) -> None:
        _stop_if(cancel, "segmentation")
        put(
            Update(
                f"page {page + 1}/{len(pages)}: {done}/{total} tiles", page * total + done, len(pages) * total
            )
        )

    def work(put: Callable[[Any], None]) -> list:
        return model.predict_stack(
            pages, threshold=threshold, on_tile=lambda page, done, total: on_tile(page, done, total, put)
        )

    preds = yield from _threaded(work)
    labels = label_pages(preds, instances, split_touching).reshape(shape)
    probs = probability_array(preds, tuple(shape)) if probabilities else None
    return Segmentation(labels, probs, preds[0].threshold, preds, tuple(shape), instances, split_touching)


def relabel(result: Segmentation, threshold: float, min_size: int) -> Segmentation:
    """The same segmentation at another threshold and smallest object size, from the kept
    probabilities (no network): what the Segment widget's sliders show at once."""
    preds = [p.rethreshold(threshold, min_size) for p in result.predictions]
    labels = label_pages(preds, result.instances, result.split_touching).reshape(result.shape)
    return replace(result, labels=labels, threshold=float(threshold), predictions=preds)


def _epoch_update(row: dict, best: list[float]) -> Update:
    """A live line from an epoch's row (see `paulow.train`'s `on_epoch`): loss, validation Dice and
    the best so far; progress counts epochs over the folds the run plans now."""
    dice, epochs, folds = row["val_dice"], int(row["epochs"]), int(row["folds"])
    if dice is not None:
        best[0] = max(best[0], float(dice))
    text = f"epoch {row['epoch']}/{epochs}: loss {row['train_loss']:.4f}, validation Dice "
    text += "-" if dice is None else f"{dice:.4f}"
    text += f" (best {best[0]:.4f})" if best[0] >= 0 else ""
    text = f"fold {row['fold']}/{folds}, {text}" if folds > 1 else text
    return Update(text, (int(row["fold"]) - 1) * epochs + int(row["epoch"]), folds * epochs)


def _progress(update: Update, started: float, seconds: float) -> Update:
    """Time-based progress when the run has a time limit (seconds elapsed of the limit), else the
    epoch count the update carries."""
    if seconds <= 0:
        return update
    elapsed = min(int(time.monotonic() - started), int(seconds))
    return Update(update.message, elapsed, int(seconds))


def _fit(
    parent: Any, images: list, masks: list, out: Path, cancel: threading.Event | None, **kwargs: Any
) -> Callable[[Callable[[Any], None]], Trained]:
    """The work of `train` for `_threaded`: train (or fine-tune `parent`) with every progress line and
    epoch row relayed to `put` (`Cancelled` at the next one once `cancel` is set), then save to `out`."""

    def work(put: Callable[[Any], None]) -> Trained:
        def relay(item: Any) -> None:
            _stop_if(cancel, "training")
            put(item)

        if parent is not None:
            model = paulow.api.finetune(parent, images, masks, echo=relay, on_epoch=relay, **kwargs)
        else:
            model = paulow.api.train(images, masks, echo=relay, on_epoch=relay, **kwargs)
        _stop_if(cancel, "training")
        scores = (model.meta.get("metrics") or {}).get("finetune") or {}
        return Trained(model.save(out), scores.get("finetuned_dice"), scores.get("parent_dice"))

    return work


def _followed(
    runner: Generator[Any, None, Trained], first: Update, seconds: float
) -> Generator[Update, None, Trained]:
    """`first`, then an update for each epoch row (a dict) or line the run gives and once a second
    between them (time-based progress when `seconds` > 0); returns the run's result."""
    best, started, last = [-1.0], time.monotonic(), first
    yield _progress(last, started, seconds)
    while True:
        try:
            item = next(runner)
        except StopIteration as finished:
            return finished.value
        if item is not None:
            last = (
                _epoch_update(item, best) if isinstance(item, dict) else Update(item, last.done, last.total)
            )
        yield _progress(last, started, seconds)


def train(
    images: list,
    masks: list,
    out: str | Path,
    *,
    base: str | Path | None = None,
    time_limit: float = 5.0,
    epochs: int = 40,
    classes: int = 1,
    cancel: threading.Event | None = None,
    labelled: list | None = None,
    **options: Any,
) -> Generator[Update, None, Trained]:
    """Train (or, given `base`, fine-tune) a model on the pairs and save it to `out` (never replaced).

    Each epoch yields its loss and validation Dice, other progress lines as they are; with a time
    limit the progress is the time spent of it (updated every second). Once `cancel` is set the run
    stops at its next epoch or progress line (`Cancelled`) and nothing is saved. A fine-tuned model
    reports its and its parent's Dice on the held-out pixels (`Trained`). `labelled`: sparse
    labels, each mask's painted pixels (the others are ignored; see `paulow.train`).
    """
    out = output_file(out)
    parent = paulow.api.load_model(model_file(base)) if base else None
    folds = 1 if parent else int(options.get("folds", 5))
    given = {"time_limit": time_limit, "epochs": epochs, "labelled": labelled, **options}
    work = _fit(parent, images, masks, out, cancel, **(given if parent else {**given, "classes": classes}))
    first = Update(f"{'fine-tuning' if parent else 'training'}: {len(images)} image(s)", 0, folds * epochs)
    result = yield from _followed(_threaded(work, tick=1.0), first, 60.0 * float(time_limit or 0))
    yield Update(f"saved {result.path.name}", 1, 1)
    return result


def attention(path: str | Path, page: np.ndarray) -> list[np.ndarray]:
    """The attention-gate maps (deepest first) of a saved model for one raw (C, H, W) page."""
    model = paulow.api.load_model(model_file(path))
    maps = paulow.api.attention_maps(model, page)
    if not maps:
        raise UsageError(
            f"model '{Path(path).name}' ({model.meta.get('arch')}) has no attention gates, "
            "or the slice is too large for one pass: nothing to show"
        )
    return maps
