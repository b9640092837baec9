"""The networks prediction runs: one or a list (an ensemble), on a device in eval mode, compiled
or not, and the output activation that turns their logits into probabilities."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import cast

import torch
from torch import nn

from .errors import ModelError

Models = nn.Module | Sequence[nn.Module]
ACTIVATION_ATTR = "paulow_activation"


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def prepare_model(model: nn.Module, device: torch.device | str) -> nn.Module:
    """Move `model` to `device` in eval mode (channels_last on CUDA); returns the same module."""
    device = torch.device(device)
    model.to(device).eval()
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch stub lacks memory_format
    return model


def compile_for_inference(model: nn.Module) -> nn.Module:
    """`torch.compile` of a network for prediction: normalisations and activations are fused, at the
    price of compiling on the first batch (20-60 s). Batches are padded to a fixed size so it
    compiles once. On the 2-core development CPU it gained nothing (bench/infer_speed.py --compile);
    it is meant for GPUs. If compiling fails on a machine, prediction goes on with the plain network
    (with a warning)."""
    return cast(nn.Module, torch.compile(model, dynamic=False))


def as_members(models: Models) -> list[nn.Module]:
    """`models` as a list of networks (one network is a list of one); none is an error."""
    members = [models] if isinstance(models, nn.Module) else list(models)
    if not members:
        raise ModelError(
            "no network to predict with: the model file holds no state dict; "
            "retrain or pick another model file"
        )
    return members


@contextlib.contextmanager
def prepared(members: list[nn.Module], device: torch.device) -> Iterator[None]:
    """Members on `device` in eval mode for the duration; their previous modes restored after."""
    modes = [member.training for member in members]
    try:
        for member in members:
            prepare_model(member, device)
        yield
    finally:
        for member, mode in zip(members, modes):
            member.train(mode)


def set_activation(models: Models, meta: dict) -> None:
    """Mark loaded networks with the model file's output activation (`meta["activation"]`):
    "softmax" for mutually exclusive classes; files without the key (older models, including K > 1
    ones trained with per-channel sigmoids) keep "sigmoid"."""
    activation = str(meta.get("activation", "sigmoid"))
    if activation not in ("sigmoid", "softmax"):
        raise ModelError(f"the model file names an unknown output activation {activation!r}")
    for member in as_members(models):
        setattr(getattr(member, "_orig_mod", member), ACTIVATION_ATTR, activation)


def activation_of(model: nn.Module) -> str:
    """ "softmax" when the network was marked as multi-class softmax, else "sigmoid"."""
    return getattr(getattr(model, "_orig_mod", model), ACTIVATION_ATTR, "sigmoid")


def to_probabilities(logits: torch.Tensor, activation: str) -> torch.Tensor:
    """Softmax over channels (dim 1) or element-wise sigmoid, in float32."""
    logits = logits.float()
    return torch.softmax(logits, dim=1) if activation == "softmax" else torch.sigmoid(logits)


def is_compiled(model: nn.Module) -> bool:
    """Whether `model` is a `torch.compile` wrapper."""
    return hasattr(model, "_orig_mod")
