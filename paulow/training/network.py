"""The network and the loss a run trains."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import cast

import numpy as np

from ..config import TrainConfig
from ..slices import Slice

log = logging.getLogger("paulow")


def loss_options(cfg: TrainConfig, train: Sequence[Slice]) -> dict:
    """`cfg.loss_args` with `class_weights: "auto"` resolved to inverse class frequencies of the
    training masks (K >= 2; normalised to mean 1 over the classes present)."""
    args = dict(cfg.loss_args)
    if args.get("class_weights") != "auto":
        return args
    if cfg.classes < 2:
        args.pop("class_weights")
        return args
    counts = sum(
        (
            np.bincount(_labelled_pixels(s).astype(np.int64), minlength=cfg.classes)[: cfg.classes]
            for s in train
        ),
        np.zeros(cfg.classes, dtype=np.int64),
    ).astype(np.float64)
    inverse = np.where(counts > 0, counts.sum() / np.maximum(counts, 1), 0.0)
    args["class_weights"] = (inverse * np.count_nonzero(counts) / max(inverse.sum(), 1e-12)).tolist()
    log.info("class weights (inverse frequency): %s", ", ".join(f"{w:.3f}" for w in args["class_weights"]))
    return args


def _labelled_pixels(s: Slice) -> np.ndarray:
    """A slice's mask values on its labelled pixels (all of them for dense labels), flat."""
    mask = cast(np.ndarray, s.mask)
    return mask.ravel() if s.labelled is None else mask[s.labelled]


def output_activation(cfg: TrainConfig) -> str:
    """ "softmax" over channels for K >= 2 mutually exclusive classes, "sigmoid" for binary."""
    return "softmax" if cfg.classes >= 2 else "sigmoid"


def build_network(cfg: TrainConfig, in_channels: int, device: str, seed: int):
    """A freshly initialised network (seeded), on `device`."""
    import torch

    from ..models import build_model

    torch.manual_seed(seed)
    model = build_model(cfg.arch, **cfg.arch_args(in_channels))
    if cfg.encoder_weights:
        from ..models import VGG16UNet, load_vgg16_encoder

        if cfg.arch != "vgg16_unet":
            from ..errors import UsageError

            raise UsageError("--encoder-weights is for --arch vgg16_unet (a VGG16 state dict)")
        load_vgg16_encoder(cast("VGG16UNet", model), cfg.encoder_weights)
    model = model.to(device)
    model.paulow_activation = output_activation(cfg)  # type: ignore[assignment]  # a str attribute, read by infer.predict_slice
    if device.startswith("cuda"):
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs omit memory_format
    return model


def freeze_encoder(model) -> int:
    """Freeze the encoder blocks (down path and bottleneck); return the number of frozen tensors."""
    frozen = 0
    for block in model.encoder_blocks():
        for param in block.parameters():
            param.requires_grad_(False)
            frozen += 1
    return frozen
