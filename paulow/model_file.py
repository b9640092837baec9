"""The typed record of a `.pth` model file's metadata: one schema, checked deeply once at load.

`ModelMeta.parse(meta, path)` checks every field a reader relies on (type and range), that the
whole dictionary holds plain JSON values only (no bytes, complex numbers or tensors; bounded depth
and size, walked without recursion), and raises one `ModelMetaError` line:
`model file 'FILE': field X: reason - fix`. Loaders keep using the checked dictionary
(`ModelMeta.meta`), so files written by earlier versions load as before.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import limits
from .errors import ModelError

FIX = "the file is damaged or was not written by PAULow; retrain it or re-download it"
MAX_DEPTH = 32  # nesting of dictionaries and lists
MAX_NODES = 500_000  # values in the whole metadata (a 10,000-page training run's lists stay far below)

Check = Callable[[Any], "str | None"]  # None when the value is fine, else what it must be


class ModelMetaError(ModelError):
    """A model file's metadata breaks the schema (one line: file, field, reason, fix)."""


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def whole(low: int, high: int) -> Check:
    def check(value: Any) -> str | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
        return None if ok else f"a whole number from {low} to {high}"

    return check


def number(low: float, high: float, high_open: bool = False) -> Check:
    def check(value: Any) -> str | None:
        ok = (
            _number(value)
            and math.isfinite(value)
            and low <= value
            and (value < high if high_open else value <= high)
        )
        return (
            None if ok else f"a finite number from {low:g} to {high:g}{' (exclusive)' if high_open else ''}"
        )

    return check


def text(max_len: int = 1000, choices: tuple[str, ...] = ()) -> Check:
    def check(value: Any) -> str | None:
        if choices:
            return None if value in choices else f"one of {', '.join(choices)}"
        return (
            None
            if isinstance(value, str) and 0 < len(value) <= max_len
            else f"a text of 1 to {max_len} characters"
        )

    return check


def optional(inner: Check) -> Check:
    def check(value: Any) -> str | None:
        return None if value is None else (None if inner(value) is None else f"null or {inner(value)}")

    return check


def mapping(value: Any) -> str | None:
    return None if isinstance(value, dict) else "a dictionary"


def iso_date(value: Any) -> str | None:
    try:
        ok = isinstance(value, str) and len(value) <= 64 and bool(_dt.datetime.fromisoformat(value))
    except ValueError:
        ok = False
    return None if ok else "an ISO date text such as 2026-12-06T09:30:00"


def palette(value: Any) -> str | None:
    what = f"null or a list of at most {limits.MAX_PALETTE} [R, G, B] colours, each a whole number 0..255"
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > limits.MAX_PALETTE:
        return what
    rgb = whole(0, 255)
    ok = all(isinstance(c, list) and len(c) == 3 and all(rgb(v) is None for v in c) for c in value)
    return None if ok else what


def class_names(value: Any) -> str | None:
    ok = (
        isinstance(value, list)
        and len(value) <= limits.MAX_CLASSES
        and all(text(limits.MAX_CLASS_NAME)(v) is None for v in value)
    )
    return (
        None
        if value is None or ok
        else f"null or a list of class names (texts of 1 to {limits.MAX_CLASS_NAME} characters)"
    )


def normalisation(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "a dictionary such as {'method': 'percentile', 'low': 1.0, 'high': 99.8}"
    method = value.get("method", "percentile")
    if method not in ("percentile", "scale255", "window"):
        return "method 'percentile', 'scale255' or 'window'"
    low, high = value.get("low", 1.0), value.get("high", 99.8)
    if method == "window":  # an intensity window in the image's own units (CT: Hounsfield units)
        finite = number(-1e12, 1e12)
        return (
            None
            if not (finite(low) or finite(high)) and low < high
            else "window 'low' < 'high', finite numbers"
        )
    pct = number(0.0, 100.0)
    if pct(low) or pct(high) or not low < high:
        return "percentiles 'low' < 'high', numbers from 0 to 100"
    return None


SIZE = whole(1, limits.MAX_PATCH)
ARCH_ARGS = {
    "in_channels": whole(1, limits.MAX_CHANNELS),
    "classes": whole(1, limits.MAX_CLASSES),
    "width": whole(1, limits.MAX_WIDTH),
    "depth": whole(1, limits.MAX_DEPTH),
}


def score(value: Any) -> str | None:
    """A Dice score: 0..1, or null / NaN (not measured)."""
    nan = isinstance(value, float) and math.isnan(value)
    return None if value is None or nan or number(0.0, 1.0)(value) is None else "a score from 0 to 1 or null"


METRICS = {
    "test_dice": score,
    "best_fold": whole(1, limits.MAX_FOLDS),
    "test_dice_objects": score,
    "folds": lambda v: None if isinstance(v, list) else "a list",
    "finetune": mapping,
}
# field: (required, check); every other field only has to be plain JSON
SCHEMA: dict[str, tuple[bool, Check]] = {
    "arch": (True, text(100)),
    "in_channels": (True, whole(1, limits.MAX_CHANNELS)),
    "arch_args": (False, mapping),
    "classes": (False, whole(1, limits.MAX_CLASSES)),
    "class_names": (False, class_names),
    "palette": (False, palette),
    "activation": (False, text(choices=("sigmoid", "softmax"))),
    "normalisation": (False, normalisation),
    "context": (False, whole(0, limits.MAX_CONTEXT)),
    "patch": (False, SIZE),
    "overlap": (False, number(0.0, 1.0, high_open=True)),
    "threshold": (False, number(0.0, 1.0)),
    "min_object_px": (False, whole(0, limits.MAX_MIN_SIZE)),
    "largest_object_px": (False, whole(0, limits.MAX_MIN_SIZE)),
    "boundary_target": (False, optional(whole(1, limits.MAX_BOUNDARY))),
    "date": (False, iso_date),
    "metrics": (False, mapping),
    "config": (False, mapping),
    "name": (False, optional(text(255))),
    "ensemble": (False, lambda v: None if isinstance(v, bool) else "true or false"),
}


@dataclass(frozen=True)
class ModelMeta:
    """The checked metadata of a model file: the fields every reader uses, typed, and the whole
    dictionary (`meta`, for the readers that take a mapping)."""

    arch: str
    in_channels: int
    classes: int
    arch_args: dict
    class_names: list | None
    palette: list | None
    activation: str
    normalisation: dict
    patch: int | None
    overlap: float | None
    threshold: float
    min_object_px: int
    boundary_target: int | None
    metrics: dict
    config: dict
    meta: dict

    @classmethod
    def parse(cls, meta: Any, path: Path | str) -> ModelMeta:
        """The record of `meta`, or a `ModelMetaError` naming `path` and the first bad field."""
        if not isinstance(meta, dict):
            raise ModelMetaError(f"model file '{path}': no 'meta' dictionary - {FIX}")
        for key, (required, check) in SCHEMA.items():
            if key not in meta:
                if required:
                    raise _bad(path, key, "is missing")
                continue
            _field(path, key, meta[key], check)
        _check_plain(meta, path)
        _check_nested(meta, path)
        boundary = meta.get("boundary_target") or meta.get("config", {}).get("boundary_target")
        return cls(
            arch=meta["arch"],
            in_channels=meta["in_channels"],
            classes=meta.get("classes", 1),
            arch_args=meta.get("arch_args", {}),
            class_names=meta.get("class_names"),
            palette=meta.get("palette"),
            activation=meta.get("activation", "sigmoid"),
            normalisation=meta.get("normalisation", {}),
            patch=meta.get("patch"),
            overlap=meta.get("overlap"),
            threshold=stored_threshold(meta),
            min_object_px=meta.get("min_object_px") or 0,
            boundary_target=boundary if isinstance(boundary, int) else None,
            metrics=meta.get("metrics", {}),
            config=meta.get("config", {}),
            meta=dict(meta),
        )


DEFAULT_THRESHOLD = 0.5  # a model file without a tuned threshold (the original PAULow state dicts)


def stored_threshold(meta: Mapping[str, Any]) -> float:
    """The probability threshold a model file stores (tuned on validation in training): the one
    place that reads it, so every front end and export applies the same default."""
    return float(meta.get("threshold", DEFAULT_THRESHOLD))


def _bad(path: Path | str, key: str, problem: str) -> ModelMetaError:
    return ModelMetaError(f"model file '{path}': field '{key}': {problem} - {FIX}")


def _field(path: Path | str, key: str, value: Any, check: Check) -> None:
    must = check(value)
    if must is not None:
        if isinstance(value, (dict, list)):  # never repr a container: it may be nested 10^4 deep
            shown = f"a {type(value).__name__} of {len(value)} item(s)"
        else:
            shown = repr(value)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise _bad(path, key, f"{shown} is not {must}")


def _check_nested(meta: dict, path: Path | str) -> None:
    """The fields inside `arch_args`, `metrics` and `config`, and their agreement with the top level."""
    classes = meta.get("classes", 1)
    for key, check in ARCH_ARGS.items():
        if key in meta.get("arch_args", {}):
            _field(path, f"arch_args.{key}", meta["arch_args"][key], check)
    args = meta.get("arch_args", {})
    if (
        isinstance(args.get("width"), int)
        and isinstance(args.get("depth"), int)
        and args["width"] * 2 ** (args["depth"] - 1) > limits.MAX_WIDEST
    ):
        raise _bad(
            path,
            "arch_args",
            f"width {args['width']} x 2^(depth {args['depth']} - 1) channels exceed {limits.MAX_WIDEST}",
        )
    names = meta.get("class_names")
    if names is not None and names and len(names) != classes:
        raise _bad(path, "class_names", f"{len(names)} names for {classes} classes")
    for key, check in METRICS.items():
        if key in meta.get("metrics", {}):
            _field(path, f"metrics.{key}", meta["metrics"][key], check)
    per_class = meta.get("metrics", {}).get("test_dice_per_class")
    if per_class is not None and (
        not isinstance(per_class, dict) or any(score(v) for v in per_class.values())
    ):
        raise _bad(
            path, "metrics.test_dice_per_class", "is not a dictionary of class name: Dice (0 to 1 or null)"
        )
    width = meta.get("config", {}).get("boundary_target")
    if width is not None and width != 0:
        _field(path, "config.boundary_target", width, whole(1, limits.MAX_BOUNDARY))
    _check_config(meta.get("config", {}), path)


# settings of `config` that fine-tuning reuses to size its work (others, e.g. a seed, are only recorded)
_CONFIG_CHECKED = ("patch", "depth", "width", "classes", "batch_size", "overlap", "threshold", "loss_args")


def _check_config(config: dict, path: Path | str) -> None:
    """The training settings fine-tuning starts from, through the command line's range checks."""
    from .errors import UsageError
    from .options_check import check_values

    try:
        check_values({k: config[k] for k in _CONFIG_CHECKED if k in config})
    except UsageError as exc:
        raise _bad(path, "config", str(exc).split(" - fix")[0]) from None


_SCALAR_TYPES = {str, int, float, bool, type(None)}
_CONV_WEIGHT = re.compile(r"(^|\.)(conv\d*|final|residual)\.weight$")  # the convolutions' kernels


def _check_plain(meta: dict, path: Path | str) -> None:
    """Only JSON values (text keys), at most MAX_DEPTH deep and MAX_NODES in all; walked with a
    stack so a deeply nested forgery cannot exhaust Python's recursion."""
    stack: list[tuple[str, Any, int]] = [("meta", meta, 0)]
    seen = 0
    while stack:
        where, container, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _bad(
                path,
                where.split(".")[1] if "." in where else where,
                f"is nested more than {MAX_DEPTH} levels deep",
            )
        seen += len(container)
        if seen > MAX_NODES:
            raise _bad(
                path, where.split(".")[1] if "." in where else where, f"holds more than {MAX_NODES} values"
            )
        if isinstance(container, dict):
            if not all(type(k) is str for k in container):
                raise _bad(path, where, "has a key that is not a text")
            items = [(f"{where}.{k}", v) for k, v in container.items()]
        else:
            items = [(where, v) for v in container]
        for name, value in items:
            if type(value) in _SCALAR_TYPES:
                continue
            if isinstance(value, (dict, list)):
                stack.append((name, value, depth + 1))
            else:
                raise _bad(
                    path,
                    name.removeprefix("meta."),
                    f"holds a {type(value).__name__}, not a plain JSON value",
                )


def check_legacy_state_dict(state_dict: Mapping[str, Any], path: Path | str) -> None:
    """A bare state dict: every value a tensor, and the weights the network is inferred from of the
    right rank (a convolution's 4-D), so shape reading cannot fail on a 1-D or scalar forgery."""
    import torch

    for key, value in state_dict.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ModelMetaError(
                f"model file '{path}': entry {str(key)[:60]!r} is not a named tensor - {FIX}"
            )
        if _CONV_WEIGHT.search(key) and value.dim() != 4:
            raise ModelMetaError(
                f"model file '{path}': tensor '{key[:60]}' has rank {value.dim()}, not 4 "
                f"(a convolution's weights) - {FIX}"
            )
