"""The public Python API: train, predict, save, load, fine-tune and evaluate from arrays or files.

No prompts, no drop folders, no printing unless an `echo` callable is given::

    import paulow
    model = paulow.train(images, masks, time_limit=10)
    pred = model.predict(image)
    labels = pred.labels(split_touching=True)
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence, Union

import numpy as np

from .errors import ShapeMismatchError, UsageError

ArrayOrPath = Union[np.ndarray, str, Path]
Echo = Callable[[str], None]


def _quiet(_: str) -> None:
    """The default `echo`: say nothing."""


@dataclass
class Prediction:
    """One slice's result: probabilities (K, H, W) float32 and the mask (H, W) uint8."""

    probabilities: np.ndarray
    mask: np.ndarray
    threshold: float = 0.5
    image: np.ndarray | None = field(default=None, repr=False)  # the raw (C, H, W) input

    def labels(self, split_touching: bool = False, min_size: int = 0) -> np.ndarray:
        """Instance labels (H, W): 8-connected objects, touching ones split by watershed if asked."""
        from .postprocess import label_instances

        return label_instances(self.mask, split_touching=split_touching, min_size=min_size)

    def objects(self, split_touching: bool = False, min_size: int = 0,
                pixel_size: float | None = None, unit: str | None = None) -> list[dict]:
        """One row per object: label, area, centroid, bounding box, mean intensity of the input."""
        from .postprocess import object_table

        return object_table(self.labels(split_touching, min_size), self.image,
                            pixel_size=pixel_size, unit=unit)


def _as_stack(image: ArrayOrPath) -> np.ndarray:
    """A raw (pages, C, H, W) stack from a path, an (H, W) or a (C, H, W) array."""
    if isinstance(image, (str, Path)):
        from .io import read_image

        return read_image(Path(image)).data
    array = np.asarray(image)
    if array.ndim == 2:
        return array[None, None]
    if array.ndim == 3:
        return array[None]
    raise ShapeMismatchError(f"an image must be (H, W) or (C, H, W), not {array.shape}: pass one "
                             "slice at a time (or a file path)")


def _as_masks(mask: ArrayOrPath) -> np.ndarray:
    """A (pages, H, W) mask stack from a path or an (H, W) array."""
    if isinstance(mask, (str, Path)):
        from .io import read_mask

        return read_mask(Path(mask))
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ShapeMismatchError(f"a mask must be (H, W), not {array.shape}")
    return array[None]


def _name(item: ArrayOrPath, index: int) -> Path:
    return Path(item) if isinstance(item, (str, Path)) else Path(f"array{index + 1}")


def make_slices(images: Sequence[ArrayOrPath], masks: Sequence[ArrayOrPath], classes: int = 1,
                normalisation: dict | None = None) -> list:
    """`Slice` records (normalised images, binarised masks) from arrays or file paths."""
    from .data import NORMALISATION, Slice, binarise_mask, foreground_fraction, normalise_with

    if isinstance(images, (np.ndarray, str, Path)) or isinstance(masks, (np.ndarray, str, Path)):
        images, masks = [images], [masks]
    if len(images) != len(masks):
        raise ShapeMismatchError(f"{len(images)} image(s) but {len(masks)} mask(s): give one mask per image")
    spec = normalisation or NORMALISATION
    slices = []
    for i, (image, mask) in enumerate(zip(images, masks)):
        stack, target, source = _as_stack(image), _as_masks(mask), _name(image, i)
        if stack.shape[0] != target.shape[0] or stack.shape[2:] != target.shape[1:]:
            raise ShapeMismatchError(f"image {source.name} is {stack.shape} (pages, C, H, W) but its mask "
                                     f"is {target.shape} (pages, H, W): they must match")
        for page, (raw, m) in enumerate(zip(stack, target)):
            m = binarise_mask(m, classes)
            info = {"file": source.name, "page": page, "foreground_fraction": foreground_fraction(m)}
            slices.append(Slice(normalise_with(raw, spec), m, source, page, info))
    return slices


class Model:
    """Trained networks (one, or an ensemble) with the metadata that describes them."""

    def __init__(self, networks: list, meta: dict) -> None:
        self.networks = list(networks)
        self.meta = dict(meta)

    def __repr__(self) -> str:
        return (f"Model(arch={self.meta.get('arch')!r}, classes={self.classes}, "
                f"in_channels={self.in_channels}, members={len(self.networks)}, threshold={self.threshold:.2f})")

    @property
    def classes(self) -> int:
        """1 for a binary task, else the number of classes (background included)."""
        return int(self.meta.get("classes", 1))

    @property
    def in_channels(self) -> int:
        return int(self.meta["in_channels"])

    @property
    def threshold(self) -> float:
        """Probability threshold of a binary model (tuned on validation images in training)."""
        return float(self.meta.get("threshold", 0.5))

    @threshold.setter
    def threshold(self, value: float) -> None:
        if not 0.0 <= float(value) <= 1.0:
            raise UsageError(f"threshold {value} is outside 0..1")
        self.meta["threshold"] = float(value)

    def predict(self, image: ArrayOrPath, *, threshold: float | None = None, tile: int | None = None,
                overlap: float | None = None, tta: bool = False, device: str = "cpu",
                batch_size: int = 8) -> Prediction:
        """Segment one raw (H, W) or (C, H, W) image (or a one-page file) with tiled inference."""
        preds = self.predict_stack(image, threshold=threshold, tile=tile, overlap=overlap, tta=tta,
                                   device=device, batch_size=batch_size)
        if len(preds) != 1:
            raise UsageError(f"the image has {len(preds)} pages: use Model.predict_stack for stacks")
        return preds[0]

    def predict_stack(self, image: ArrayOrPath, *, threshold: float | None = None, **options: Any
                      ) -> list[Prediction]:
        """One `Prediction` per page of a file, or of a (pages, C, H, W) array."""
        from .postprocess import to_mask
        from .predict import choose_threshold, predict_pages

        stack = np.asarray(image) if not isinstance(image, (str, Path)) else None
        stack = stack if stack is not None and stack.ndim == 4 else _as_stack(image)
        cut = choose_threshold(self.meta, threshold)
        probs = predict_pages(self.networks, self.meta, stack, name=str(_name(image, 0)), **options)
        return [Prediction(p.astype(np.float32, copy=False), to_mask(p, cut), cut, page)
                for p, page in zip(probs, stack)]

    def save(self, path: str | Path) -> Path:
        """Write a self-describing `.pth` model file (atomic, verified); return its path."""
        from .checkpoint import save_checkpoint

        return save_checkpoint(Path(path), [n.state_dict() for n in self.networks], self.meta)


def load_model(path: str | Path, device: str = "cpu") -> Model:
    """Load a PAULow model file (or an original PAULow state dict) safely (`weights_only`)."""
    from .checkpoint import load_checkpoint

    loaded = load_checkpoint(Path(path), device)
    return Model(loaded.models, loaded.meta)


def _config(options: dict, preset: str | None, device: str):
    from .config import TrainConfig, resolve_config

    unknown = sorted(set(options) - set(TrainConfig.__dataclass_fields__))
    if unknown:
        raise UsageError(f"unknown training option(s): {', '.join(unknown)} - see paulow.config.TrainConfig")
    return resolve_config(options, preset, device)


def _networks(cfg, in_channels: int, state_dicts: list[dict]) -> list:
    from .models import build_model

    nets = []
    for sd in state_dicts:
        net = build_model(cfg.arch, **cfg.arch_args(in_channels))
        net.load_state_dict(sd)
        nets.append(net.eval())
    return nets


def train(images: Sequence[ArrayOrPath], masks: Sequence[ArrayOrPath], *, time_limit: float | None = 10,
          classes: int = 1, preset: str | None = None, device: str = "cpu",
          report_dir: str | Path | None = None, echo: Echo | None = None, **options: Any) -> Model:
    """Train a model from raw images and masks (arrays or file paths) by cross-validation.

    `time_limit` is in minutes (0 or None: the epochs decide); `options` are `TrainConfig` fields
    (`epochs`, `width`, `patch`, `folds`, `ensemble`, ...) over the device's preset.
    """
    from .train import cross_validate, training_meta

    cfg = _config({**options, "classes": classes, "time_limit": time_limit, "device": device}, preset, device)
    cfg.time_limit = time_limit or None
    slices = make_slices(images, masks, classes)
    in_channels = int(slices[0].image.shape[0])
    result = cross_validate(slices, cfg, device, Path(report_dir) if report_dir else None, echo or _quiet)
    meta = training_meta(cfg, slices, result, in_channels, {})
    return Model(_networks(cfg, in_channels, result.state_dicts(cfg.ensemble)), meta)


def finetune(model: Model, images: Sequence[ArrayOrPath], masks: Sequence[ArrayOrPath], *,
             time_limit: float | None = 5, holdout: float = 0.25, device: str = "cpu",
             freeze_encoder: bool = False, report_dir: str | Path | None = None,
             echo: Echo | None = None, **options: Any) -> Model:
    """Adapt a model to new images: the parent's settings at a tenth of its learning rate.

    A share (`holdout`) of the images is held out; the parent's and the new model's Dice on it are
    in `new.meta["metrics"]["finetune"]`. The parent is not changed.
    """
    from .data import check_channels, kfold
    from .finetuning import finetune_config, start_member
    from .train import dice_on_slices, fit_fold
    from .train import freeze_encoder as freeze

    cfg = finetune_config(model.meta, {**options, "time_limit": time_limit or 0,
                                       "freeze_encoder": freeze_encoder}, device)
    slices = make_slices(images, masks, model.classes, model.meta.get("normalisation"))
    check_channels(slices, model.in_channels, "the model being fine-tuned")
    if len({s.key for s in slices}) < 2:
        raise UsageError("fine-tuning needs at least two images (one to tune on, one held out)")
    (tune, held), = kfold(slices, 1, cfg.seed, val_fraction=holdout)
    parent = start_member(model.networks, model.meta)
    before = dice_on_slices(parent, held, cfg, device)
    net = copy.deepcopy(parent).to(device)
    if cfg.freeze_encoder:
        freeze(net)
    deadline = time.monotonic() + cfg.time_limit * 60 if cfg.time_limit else float("inf")
    result = fit_fold(net, tune, held, cfg, device, deadline, 0, Path(report_dir) if report_dir else None)
    net.eval()
    after = dice_on_slices(net, held, cfg, device)
    (echo or _quiet)(f"held-out Dice: parent {before:.4f}, fine-tuned {after:.4f}")
    scores = {"parent_dice": before, "finetuned_dice": after, "held_out_images": len(held)}
    meta = {**model.meta, "config": asdict(cfg), "ensemble": False,
            "metrics": {**model.meta.get("metrics", {}), "test_dice": after, "finetune": scores},
            "parent": {"name": model.meta.get("name")},
            "finetune": {"tune": result.train_files, "held_out": result.val_files, "scores": scores,
                         "stopped": result.stopped, "best_epoch": result.best_epoch}}
    return Model([net], meta)


def evaluate(pred: Prediction | np.ndarray, truth: np.ndarray, *, classes: int | None = None,
             iou: float = 0.5) -> dict[str, float]:
    """Scores of a prediction against a ground-truth mask.

    Binary: pixel scores (dice, iou, precision, recall, accuracy, miou, mpa) and object scores
    prefixed `object_` (matched one-to-one at IoU >= `iou`). `classes` > 1: per-class scores.
    """
    from .metrics import multiclass_scores, object_scores, pixel_scores

    mask = pred.mask if isinstance(pred, Prediction) else np.asarray(pred)
    truth = np.asarray(truth)
    if classes is None:
        classes = pred.probabilities.shape[0] if isinstance(pred, Prediction) else 1
    if classes > 1:
        return multiclass_scores(mask, truth, classes)
    objects = object_scores(mask != 0, truth != 0, iou)
    return {**pixel_scores(mask, truth), **{f"object_{k}": v for k, v in objects.items()}}


__all__ = ["Model", "Prediction", "train", "finetune", "load_model", "evaluate", "make_slices"]
