"""Range checks of every numeric option, whether it comes from the command line, a config file or
an API keyword, before any work: one `UsageError` line naming the option, the value, the allowed
range and the fix. The ranges live in `paulow.limits`; docs/input-limits.md lists them."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from . import limits
from .errors import UsageError

# option: (whole number?, low, high, low excluded?, high excluded?, note on the range)
Rule = tuple[bool, float, float, bool, bool, str]
RULES: dict[str, Rule] = {
    "depth": (True, 1, limits.MAX_DEPTH, False, False, ""),
    "width": (True, 1, limits.MAX_WIDTH, False, False, ""),
    "patch": (True, 1, limits.MAX_PATCH, False, False, ""),
    "tile": (True, 1, limits.MAX_PATCH, False, False, ""),
    "classes": (
        True,
        1,
        limits.MAX_CLASSES,
        False,
        False,
        " (masks and label files hold uint8 class indices)",
    ),
    "in_channels": (True, 1, limits.MAX_CHANNELS, False, False, ""),
    "epochs": (True, 1, limits.MAX_EPOCHS, False, False, ""),
    "batch_size": (True, 1, limits.MAX_BATCH, False, False, ""),
    "per_epoch": (True, 0, limits.MAX_PER_EPOCH, False, False, " (0 = all patches)"),
    "workers": (True, 0, limits.MAX_WORKERS, False, False, ""),
    "seed": (True, 0, limits.MAX_SEED, False, False, ""),
    "folds": (True, 1, limits.MAX_FOLDS, False, False, ""),
    "patience": (True, 0, limits.MAX_EPOCHS, False, False, ""),
    "val_tiles": (True, 0, 1_000_000, False, False, " (0 = whole images)"),
    "min_size": (True, 0, limits.MAX_MIN_SIZE, False, False, " (0 keeps every object)"),
    "steps": (True, 1, 10_000_000, False, False, ""),
    "context": (True, 0, limits.MAX_CONTEXT, False, False, " sections on each side"),
    "test_fraction": (False, 0.0, 1.0, False, True, ""),
    "holdout": (False, 0.0, 1.0, True, True, ""),
    "threshold": (False, 0.0, 1.0, True, True, ""),
    "dropout": (False, 0.0, 1.0, False, True, ""),
    "lr": (False, 0.0, 10.0, True, False, ""),
    "gamma": (False, 0.0, 10.0, True, False, ""),
    "weight_decay": (False, 0.0, 10.0, False, False, ""),
    "time_limit": (False, 0.0, limits.MAX_MINUTES, False, False, " minutes (0 = no limit)"),
    "minutes": (False, 0.0, limits.MAX_MINUTES, True, False, ""),
    "tolerance": (False, 0.0, 1_000_000.0, False, False, " pixels"),
}
# the same name means a pixel count in training and a fraction in inference
COMMAND_RULES: dict[str, dict[str, Rule]] = {
    "predict": {"overlap": (False, 0.0, 1.0, False, True, " (a fraction of the tile)")},
    "train": {"overlap": (True, 0, limits.MAX_PATCH, False, False, " pixels")},
}
COMMAND_RULES["finetune"] = COMMAND_RULES["check-overfit"] = COMMAND_RULES["train"]
DEVICE = re.compile(r"^(auto|cpu|cuda(:\d{1,2})?)$")
_TEXT_LOSS_ARGS = ("empty", "small", "large", "large_multiclass")  # the dynamic loss's regimes: loss names


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _range(rule: Rule) -> str:
    whole, low, high, low_open, high_open, note = rule
    kind = "a whole number" if whole else "a number"
    left, right = ("above" if low_open else "from"), ("below" if high_open else "to")
    return f"{kind} {left} {_fmt(low)} {right} {_fmt(high)}{note}"


def checked(name: str, value: Any, rule: Rule, source: str = "") -> Any:
    """`value` as a number inside `rule`'s range (a numeric text from a config file is converted);
    a `UsageError` naming the option and the range otherwise."""
    whole, low, high, low_open, high_open, _ = rule
    number = value
    if isinstance(value, str):
        try:
            number = float(value) if not whole else int(value)
        except ValueError:
            number = None
    ok = (
        isinstance(number, (int, float))
        and not isinstance(number, bool)
        and math.isfinite(number)
        and (low < number if low_open else low <= number)
        and (number < high if high_open else number <= high)
        and (not whole or float(number).is_integer())
    )
    if not ok:
        option = f"--{name.replace('_', '-')}"
        where = f" in {source}" if source else ""
        raise UsageError(f"{option} {value!r}{where} is out of range: give {_range(rule)} - fix {option}")
    return int(number) if whole else float(number)


def check_values(values: Mapping[str, Any], command: str = "train", source: str = "") -> dict[str, Any]:
    """The options in `values` (None = not given) with every ranged one checked (and numeric texts
    converted); the device and loss settings checked too."""
    rules = {**RULES, **COMMAND_RULES.get(command, {})}
    out = dict(values)
    for name, value in values.items():
        if value is None:
            continue
        if name in rules:
            out[name] = checked(name, value, rules[name], source)
        elif name == "device":
            check_device(value)
        elif name == "loss_args":
            check_loss_args(value)
        elif name == "boundary_target" and not isinstance(value, str) and value not in (0, False):
            out[name] = checked(name, value, (True, 1, limits.MAX_BOUNDARY, False, False, " pixels"), source)
    width, depth = out.get("width"), out.get("depth")
    if isinstance(width, int) and isinstance(depth, int) and width * 2 ** (depth - 1) > limits.MAX_WIDEST:
        raise UsageError(
            f"--width {width} with --depth {depth} gives {width * 2 ** (depth - 1)} channels at the "
            f"deepest level, more than {limits.MAX_WIDEST}: lower --width or --depth"
        )
    return out


def check_device(value: Any) -> None:
    if not isinstance(value, str) or not DEVICE.match(value):
        raise UsageError(
            f"--device {value!r} is not supported: choose auto, cpu or cuda[:N] (lower case; "
            "Apple mps, TPUs and the meta device are not supported) - fix --device"
        )


def check_loss_args(value: Any) -> None:
    """`--loss-args`: a JSON object of loss settings: numbers, the dynamic loss's regimes (loss
    names), and `class_weights` (auto or one number per class)."""
    fix = 'fix --loss-args, e.g. \'{"alpha": 0.6, "beta": 0.4}\''
    if not isinstance(value, dict):
        raise UsageError(f"--loss-args {value!r} is not a JSON object of setting: value - {fix}")
    for key, item in value.items():
        if key in _TEXT_LOSS_ARGS:
            ok = isinstance(item, str) or (isinstance(item, list) and all(isinstance(x, str) for x in item))
            must = "a loss name or a list of loss names"
        elif key == "class_weights":
            ok = item == "auto" or (isinstance(item, list) and all(_finite(x) for x in item))
            must = "auto or a list of numbers"
        else:
            ok, must = _finite(item), "a finite number"
        if not ok:
            raise UsageError(f"--loss-args: '{key}' is {item!r}, not {must} - {fix}")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_namespace(
    args: Any, command: str, config_values: Mapping[str, Any] | None = None, config_path: Any = None
) -> None:
    """Check (and convert) the parsed options of a command in place; a value that came from the
    config file is named as such."""
    from_config = config_values or {}
    names = set(RULES) | {"overlap", "device", "loss_args", "boundary_target"}
    present = {n: getattr(args, n) for n in names if hasattr(args, n)}
    for name, value in present.items():
        source = f"config file '{config_path}'" if name in from_config and from_config[name] is value else ""
        checked_values = check_values({name: value}, command, source)
        setattr(args, name, checked_values[name])
    check_values({k: present.get(k) for k in ("width", "depth")})
