"""The plugin's background work: plain generators that yield `Update`s and return a result.

The widgets run them with napari's `thread_worker`; the tests can also run them directly.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Generator

import numpy as np

from ..errors import UsageError
from .layers import image_pages, label_pages, probability_array


@dataclass
class Update:
    """What a job reports while it runs: a line to show and the progress (done of total steps)."""

    message: str
    done: int = 0
    total: int = 0


@dataclass
class Segmentation:
    labels: np.ndarray
    probabilities: np.ndarray | None
    threshold: float


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
        raise UsageError(f"model file '{chosen or ''}': choose where to save the model (a name ending in .pth)")
    if chosen.exists():
        raise UsageError(f"model file '{chosen}' exists: choose another name (nothing is overwritten)")
    return chosen


def segment(path: str | Path, data: Any, rgb: bool, *, instances: bool = False, split_touching: bool = False,
            probabilities: bool = False, threshold: float | None = None
            ) -> Generator[Update, None, Segmentation]:
    """Segment every page of an image layer's data with a saved model."""
    import paulow

    path = model_file(path)
    yield Update(f"loading {path.name}", 0, 1)
    model = paulow.load_model(path)
    pages, shape = image_pages(data, rgb, model.in_channels)
    total = len(pages) + 1
    yield Update(f"segmenting {len(pages)} page(s)", 1, total)
    preds = []
    for i, page in enumerate(pages):
        preds.append(model.predict(page, threshold=threshold))
        yield Update(f"page {i + 1}/{len(pages)} done", i + 2, total)
    labels = label_pages(preds, instances, split_touching).reshape(shape)
    probs = probability_array(preds, tuple(shape)) if probabilities else None
    return Segmentation(labels, probs, preds[0].threshold)


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


def train(images: list, masks: list, out: str | Path, *, base: str | Path | None = None,
          time_limit: float = 5.0, epochs: int = 40, classes: int = 1, **options: Any
          ) -> Generator[Update, None, Path]:
    """Train (or, given `base`, fine-tune) a model on the pairs and save it to `out` (never replaced).

    Each epoch yields its loss and validation Dice, other progress lines as they are. The training
    runs in its own thread so this generator can pass them on as they come.
    """
    import paulow

    out = output_file(out)
    parent = paulow.load_model(model_file(base)) if base else None
    folds = 1 if parent else int(options.get("folds", 5))
    lines: queue.Queue = queue.Queue()  # progress lines (str) and epoch rows (dict); None: finished
    done: dict[str, Any] = {}

    def work() -> None:
        try:
            if parent is not None:
                model = paulow.finetune(parent, images, masks, time_limit=time_limit, epochs=epochs,
                                        echo=lines.put, on_epoch=lines.put, **options)
            else:
                model = paulow.train(images, masks, time_limit=time_limit, epochs=epochs, classes=classes,
                                     echo=lines.put, on_epoch=lines.put, **options)
            done["path"] = model.save(out)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            done["error"] = exc
        finally:
            lines.put(None)

    thread = threading.Thread(target=work, name="paulow-train", daemon=True)
    best = [-1.0]
    yield Update(f"{'fine-tuning' if parent else 'training'}: {len(images)} image(s)", 0, folds * epochs)
    thread.start()
    while (item := lines.get()) is not None:
        yield _epoch_update(item, best) if isinstance(item, dict) else Update(item)
    thread.join()
    if "error" in done:
        raise done["error"]
    return done["path"]


def attention(path: str | Path, page: np.ndarray) -> list[np.ndarray]:
    """The attention-gate maps (deepest first) of a saved model for one raw (C, H, W) page."""
    import paulow
    from ..attention import attention_maps

    model = paulow.load_model(model_file(path))
    loaded = SimpleNamespace(models=model.networks, meta=model.meta, in_channels=model.in_channels)
    maps = attention_maps(loaded, page, SimpleNamespace(device="cpu"))
    if not maps:
        raise UsageError(f"model '{Path(path).name}' ({model.meta.get('arch')}) has no attention gates, "
                         "or the slice is too large for one pass: nothing to show")
    return maps
