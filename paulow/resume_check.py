"""Deep checks of a resume file (`paulow.training.resume`): its structure when it is read, and its weights
against the network the run builds, so a damaged or forged state is one error line, never a crash
mid-training and never silently accepted."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import UsageError

FIX = "start a new run without --resume (or delete that resume_state.pth)"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_FOLD_FIELDS = {
    "fold": "index",
    "state_dict": "weights",
    "val_dice": "score",
    "best_epoch": "count",
    "history": "rows",
    "train_files": "names",
    "val_files": "names",
    "test_dice": "score?",
    "stopped": "text",
    "threshold": "score",
    "test_dice_c": "scores?",
    "min_size": "count",
    "test_dice_objects": "score?",
}
_FOLD_REQUIRED = ("fold", "state_dict", "val_dice", "best_epoch", "history", "train_files", "val_files")
_CURRENT_FIELDS = {
    "fold": "index",
    "epoch": "count",
    "model": "weights",
    "optimizer": "optimizer",
    "best_dice": "score",
    "best_epoch": "count",
    "best_state": "weights",
    "history": "rows",
    "since_best": "count",
    "step": "count",
    "seconds": "seconds",
    "pacer_every": "seconds",
    "pacer_val_seconds": "seconds",
}


class ResumeStateError(UsageError):
    """A resume file that is damaged, forged, or does not fit the network."""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _weights(value: Any) -> bool:
    import torch

    return (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in value.items())
    )


_KINDS = {
    "index": (_count, "a whole number >= 0"),
    "count": (_count, "a whole number >= 0"),
    "seconds": (lambda v: _number(v) and v >= 0, "a finite number >= 0"),
    "score": (lambda v: _number(v) or v is None, "a number"),
    "score?": (
        lambda v: v is None or _number(v) or (isinstance(v, float) and math.isnan(v)),
        "a number or null",
    ),
    "scores?": (
        lambda v: v is None or (isinstance(v, list) and all(_number(x) or x is None for x in v)),
        "a list of numbers or null",
    ),
    "text": (lambda v: isinstance(v, str), "a text"),
    "names": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of file names"),
    "rows": (lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v), "a list of history rows"),
    "weights": (_weights, "a dictionary of named tensors"),
    "optimizer": (
        lambda v: (
            isinstance(v, dict)
            and isinstance(v.get("state"), dict)
            and isinstance(v.get("param_groups"), list)
        ),
        "an optimiser state",
    ),
}


def _bad(path: Path | str, where: str, problem: str) -> ResumeStateError:
    return ResumeStateError(f"resume file '{path}': field '{where}': {problem} - {FIX}")


def _check_fields(
    path: Path | str, where: str, value: Any, spec: Mapping[str, str], required: tuple[str, ...]
) -> None:
    if not isinstance(value, dict):
        raise _bad(path, where, "is not a dictionary")
    for key in required:
        if key not in value:
            raise _bad(path, f"{where}.{key}", "is missing")
    for key, item in value.items():
        if key not in spec:
            raise _bad(path, f"{where}.{str(key)[:40]}", "is not a field of a resume state")
        ok, must = _KINDS[spec[key]]
        if not ok(item):
            raise _bad(path, f"{where}.{key}", f"is not {must}")


def check_payload(payload: dict, path: Path | str) -> None:
    """The structure of a resume file's payload: types of every field the run reads, the inputs'
    SHA-256 texts, finite weights."""
    for key, ok, must in (
        ("name", lambda v: isinstance(v, str) and bool(v), "a model name"),
        ("config", lambda v: isinstance(v, dict), "a dictionary of settings"),
        (
            "inputs",
            lambda v: (
                isinstance(v, dict)
                and all(isinstance(k, str) and isinstance(h, str) and _HEX64.match(h) for k, h in v.items())
            ),
            "a dictionary of file: SHA-256",
        ),
        ("state", lambda v: isinstance(v, dict), "a dictionary"),
    ):
        if key not in payload:
            raise _bad(path, key, "is missing")
        if not ok(payload[key]):
            raise _bad(path, key, f"is not {must}")
    state = payload["state"]
    if not _KINDS["seconds"][0](state.get("seconds")):
        raise _bad(path, "state.seconds", "is not a finite number >= 0")
    if not isinstance(state.get("folds"), list):
        raise _bad(path, "state.folds", "is not a list")
    for i, fold in enumerate(state["folds"]):
        _check_fields(path, f"state.folds[{i}]", fold, _FOLD_FIELDS, _FOLD_REQUIRED)
    if state.get("current") is not None:
        _check_fields(path, "state.current", state["current"], _CURRENT_FIELDS, tuple(_CURRENT_FIELDS))
    for where, weights in _all_weights(state):
        for name, tensor in weights.items():
            if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
                raise _bad(path, f"{where}['{name[:60]}']", "holds NaN or infinite values")


def _all_weights(state: dict) -> list[tuple[str, dict]]:
    found = [(f"state.folds[{i}].state_dict", fold["state_dict"]) for i, fold in enumerate(state["folds"])]
    current = state.get("current")
    if current:
        found += [
            ("state.current.model", current["model"]),
            ("state.current.best_state", current["best_state"]),
        ]
    return found


def check_weights(
    state: dict,
    expected: Mapping[str, Any],
    params: list[tuple[int, ...]] | None = None,
    label: str = "the resume state",
) -> None:
    """Every set of weights in `state` has exactly the tensors (names, shapes, dtypes) of
    `expected` (the state dict of the network the run builds), and the optimiser's moments the
    shapes of the parameters; a `ResumeStateError` otherwise."""
    for where, weights in _all_weights(state):
        for name, reference in expected.items():
            tensor = weights.get(name)
            if tensor is None:
                raise _bad(label, where, f"has no tensor '{name[:60]}' that the network needs")
            if tuple(tensor.shape) != tuple(reference.shape) or tensor.dtype != reference.dtype:
                raise _bad(
                    label,
                    f"{where}['{name[:60]}']",
                    f"is {tensor.dtype} {tuple(tensor.shape)}, the network needs "
                    f"{reference.dtype} {tuple(reference.shape)}",
                )
        extra = sorted(set(weights) - set(expected))
        if extra:
            raise _bad(label, where, f"has tensors the network lacks ({', '.join(extra[:3])})")
    if state.get("current") and params is not None:
        _check_moments(state["current"]["optimizer"], params, label)


def _check_moments(optimizer: dict, params: list[tuple[int, ...]], label: str) -> None:
    """Adam's per-parameter tensors (exp_avg, ...) shaped like the parameter they belong to."""
    groups = optimizer["param_groups"]
    indices = [i for g in groups if isinstance(g, dict) for i in g.get("params", [])]
    if len(indices) != len(params):
        return  # a frozen encoder optimises a subset: torch checks the count when it loads
    shape_of = dict(zip(indices, params))
    for index, moments in optimizer["state"].items():
        for key, tensor in moments.items() if isinstance(moments, dict) else []:
            if getattr(tensor, "ndim", 0) and tuple(tensor.shape) != shape_of.get(index):
                raise _bad(
                    label,
                    f"state.current.optimizer.state[{index}].{key}",
                    f"has shape {tuple(tensor.shape)}, the parameter has {shape_of.get(index)}",
                )


def check_against_config(state: dict, cfg: Any, in_channels: int) -> None:
    """`check_weights` against a fresh network built from the run's settings (on the CPU)."""
    from .models import build_model

    model = build_model(cfg.arch, **cfg.arch_args(in_channels))
    check_weights(state, model.state_dict(), [tuple(p.shape) for p in model.parameters()])
