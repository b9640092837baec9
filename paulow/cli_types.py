"""argparse types of the command line: each refuses a bad value with one line saying what is
expected."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number >= 1")
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number >= 0")
    return value


def _float_where(text: str, ok, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not ok(value):  # NaN fails every comparison
        raise argparse.ArgumentTypeError(f"'{text}' is not {what}")
    return value


def probability(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1 (NaN refused)."""
    return _float_where(text, lambda v: 0.0 < v < 1.0, "a number between 0 and 1 (e.g. 0.5)")


def tile_overlap(text: str) -> float:
    """An argparse type: a fraction in [0, 1)."""
    return _float_where(text, lambda v: 0.0 <= v < 1.0, "a fraction from 0 up to (not including) 1, e.g. 0.5")


def name_list(text: str) -> list[str]:
    """ "a, b,c" -> ["a", "b", "c"]."""
    return [name.strip() for name in text.split(",") if name.strip()]


def class_weights(text: str) -> str | list[float]:
    """`--class-weights`: "auto" or one number per class, "1,2,4"."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return [float(w) for w in name_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give 'auto' or one number per class, e.g. 1,2,4"
        ) from None
