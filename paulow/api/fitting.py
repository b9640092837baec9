"""Training and fine-tuning from arrays or files: the runs `train_model.py` and `finetune_model.py` make."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..config import TrainConfig
from ..progress import progress
from .inputs import ArrayOrPath, make_slices
from .model import Echo, Model
from .training_inputs import fit, network_slices
from .workspace_run import require_tensorboard, training_config

OnEpoch = Callable[[dict], None]


def _tensorboard(folder: str | Path | None) -> Path | None:
    """The TensorBoard folder, after checking (before any work) that the package is there."""
    if not folder:
        return None
    require_tensorboard()
    return Path(folder)


def _networks(cfg: TrainConfig, in_channels: int, state_dicts: list[dict], device: str) -> list:
    from ..training.network import build_network

    nets = []
    for sd in state_dicts:
        net = build_network(cfg, in_channels, device, 0)
        net.load_state_dict(sd)
        nets.append(net.eval())
    return nets


def train(
    images: Sequence[ArrayOrPath] | ArrayOrPath,
    masks: Sequence[ArrayOrPath] | ArrayOrPath,
    *,
    time_limit: float | None = 10,
    classes: int = 1,
    config: TrainConfig | None = None,
    preset: str | None = None,
    device: str = "cpu",
    report_dir: str | Path | None = None,
    echo: Echo | None = None,
    tensorboard: str | Path | None = None,
    on_epoch: OnEpoch | None = None,
    verbose: bool = True,
    labelled: Sequence[np.ndarray | None] | None = None,
    **options: Any,
) -> Model:
    """Train a model from raw images and their masks (arrays or file paths, stacks included).

    Runs what `train_model.py` runs: the time limit is planned into folds and validation, one
    network per fold is trained by cross-validation, the best fold (or, with `ensemble=True`, all)
    is kept with a threshold tuned on its validation images.

    - `time_limit`: minutes for the whole run (0 or None: the epochs decide).
    - `classes`: 1 = binary (masks: 0 / non-zero); K > 1: masks hold 0..K-1.
    - `boundary_target` (an option): "auto" by default for `classes=1`: objects with an inside (at
      least half their pixels more than 2 px from an edge) are learnt as background / interior /
      boundary, so `Prediction.labels()` separates touching ones; thin or small objects keep the
      binary target. A width in px forces it, 0 turns it off (`model.meta["boundary_target"]` says).
    - `config`: a `TrainConfig` to start from instead of the device's preset; `time_limit`, `classes`
      and `options` apply over it (its `boundary_target` too: None is binary).
    - `options`: any `TrainConfig` field (`epochs`, `width`, `depth`, `patch`, `overlap`, `folds`,
      `loss`, `loss_args`, `lr`, `optimizer`, `schedule`, `augment`, `rotate`, `ensemble`, ...) and
      the network options `norm`, `dropout`, `batch_norm`; an unknown name is a `UsageError`.
    - `report_dir`: the training report's folder; `echo`: progress lines; `tensorboard`: a folder for
      TensorBoard event files (the `tensorboard` extra).
    - `on_epoch`: called after every epoch with a dict: `fold`, `epoch`, `folds` (the folds the run
      now plans), `epochs` (each fold's cap), `train_loss`, `val_loss` and `val_dice` (None when the
      epoch did not validate), `lr`, `patches`, `regime_empty|small|large` (the dynamic loss's
      patches per regime); e.g. to draw the loss live in a notebook.
    - `verbose`: the run's lines and a bar of epochs (`tqdm.auto`); False: only `echo`/`on_epoch`.
    - `labelled` (sparse labels): per mask, a boolean array of its labelled pixels (None: all); the
      others are ignored by the loss, the patch sampling and every score (see `make_slices`).
    """
    board, cfg = _tensorboard(tensorboard), _settings(config, options, classes, time_limit, preset, device)
    slices = network_slices(
        cfg, lambda k, norm: make_slices(images, masks, k, norm, palette=cfg.palette, labelled=labelled)
    )
    report = Path(report_dir) if report_dir else None
    say, on_epoch, bar = progress(verbose, echo, on_epoch, "training")
    try:
        explicit = {"folds", "epochs"} if config is not None else set(options)
        run = fit(slices, cfg, device, report, say, explicit, tensorboard=board, on_epoch=on_epoch)
    finally:
        if bar is not None:
            bar.close()
    run.finish(report, say)
    networks = _networks(run.cfg, int(slices[0].image.shape[0]), run.state_dicts(), device)
    return Model(networks, {**run.meta, "name": "paulow_model"}, device)  # `run.cfg`: the target as settled


def _settings(
    config: TrainConfig | None,
    options: dict[str, Any],
    classes: int,
    time_limit: float | None,
    preset: str | None,
    device: str,
) -> TrainConfig:
    """`paulow.train`'s settings: `config` (or the device's preset) with the options over it."""
    given = {
        **(asdict(config) if config is not None else {}),
        **options,
        "classes": classes,
        "time_limit": time_limit or 0,
    }
    if config is not None and given.get("boundary_target") is None:
        given["boundary_target"] = 0  # a TrainConfig's None is the binary target, not "not given"
    return training_config(given, preset, device)


def finetune(
    model: Model,
    images: Sequence[ArrayOrPath] | ArrayOrPath,
    masks: Sequence[ArrayOrPath] | ArrayOrPath,
    *,
    time_limit: float | None = 5,
    holdout: float = 0.25,
    device: str | None = None,
    freeze_encoder: bool = False,
    report_dir: str | Path | None = None,
    echo: Echo | None = None,
    tensorboard: str | Path | None = None,
    on_epoch: OnEpoch | None = None,
    verbose: bool = True,
    labelled: Sequence[np.ndarray | None] | None = None,
    **options: Any,
) -> Model:
    """Adapt a model to new images, as `finetune_model.py` does: the parent's settings at a tenth
    of its learning rate, at most 20 epochs, starting from its selected member.

    A share (`holdout`) of the images is held out and a share of the rest validates (it chooses the
    epoch, threshold and smallest object size); the parent's Dice on the held-out images (at its own
    threshold) and the new model's (at the threshold chosen on validation, unless `threshold` is
    given) are in `new.meta["metrics"]["finetune"]` (see `paulow.training.finetuning.score_note`).
    `options`: the training options that do not change the network (`threshold`,
    `augment`/`no_augment`, `rotate`/`no_rotate`, `schedule`, `gamma`, `lr`, `epochs`,
    `batch_size`, `patch`, `overlap`, `loss`, `loss_args`, `seed`, `patience`, `per_epoch`, ...);
    `width`, `depth`, `arch`, `norm`, `classes`, `folds`, `ensemble`, ... (other than the parent's own
    values) and unknown names are a `UsageError`. The parent is not changed. `report_dir`: the fit's
    history, panels and curves; `tensorboard`: a folder for TensorBoard event files; `on_epoch`: as
    for `train` (`folds` is 1); `verbose`: as for `train`; `labelled`: sparse labels, as for
    `train` (the held-out scores count the labelled pixels only; the smallest object size stays the
    parent's, as strokes are not whole objects).
    """
    from .finetune_run import finetune_settings, finetune_slices, fit_finetune, plan_finetune

    device = device or model.device
    given = {**options, "time_limit": time_limit or 0, "freeze_encoder": freeze_encoder}
    cfg = finetune_settings(model.meta, given, device)
    slices = finetune_slices(model, cfg, images, masks, labelled)
    plan = plan_finetune(
        model, slices, cfg, holdout, "the images passed to paulow.finetune", "the model being fine-tuned"
    )
    report, board = Path(report_dir) if report_dir else None, _tensorboard(tensorboard)
    say, on_epoch, bar = progress(verbose, echo, on_epoch, "fine-tuning")
    try:
        run = fit_finetune(
            model, plan, device=device, report_dir=report, tensorboard=board, echo=say, on_epoch=on_epoch
        )
    finally:
        if bar is not None:
            bar.close()
    return Model([run.network], run.meta, device)
