"""Mask values as training targets: binary or class-index targets, instance labels, the check of a
K-class task's mask values, and class names from `classes.txt`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import ShapeMismatchError


def binarise_mask(mask: np.ndarray, classes: int = 1) -> np.ndarray:
    """Binary task: any non-zero pixel is foreground (instance labels work). Else class indices."""
    if classes <= 1:
        return (mask != 0).astype(np.uint8)
    if mask.max(initial=0) >= classes or mask.min(initial=0) < 0:
        raise ValueError(f"values outside 0..{classes - 1}")
    return mask.astype(np.uint8)


def class_target(mask: np.ndarray, classes: int, name: str, page: int) -> np.ndarray:
    """`binarise_mask` of one page; values outside 0..K-1 are a `ShapeMismatchError` naming the mask."""
    try:
        return binarise_mask(mask, classes)
    except ValueError as exc:
        raise ShapeMismatchError(
            f"mask '{name}' page {page} has {exc} for a {classes}-class task — fix the mask or --classes"
        ) from None


def instance_source(mask: np.ndarray, classes: int = 1) -> np.ndarray | None:
    """A binary task's mask page when it holds instance labels (several non-zero values), else None
    (its connected components are the instances; class indices are not instances)."""
    if classes > 1 or np.unique(mask[mask != 0]).size < 2:
        return None
    return mask.astype(np.int32)


def _values_text(values: np.ndarray, most: int = 8) -> str:
    shown = ", ".join(str(int(v)) for v in values[:most])
    return shown + (f", ... ({len(values)} values)" if len(values) > most else "")


def check_class_values(loaded: list[tuple], classes: int) -> None:
    """K >= 2: every mask must hold class indices 0..K-1. One error names the first bad mask, the
    values found in it and the fix (`--classes`, or `--classes 1` for 0/255 binary masks)."""
    if classes < 2:
        return
    bad = []
    for _, mask, mask_path in loaded:
        values = np.unique(mask)
        if values.size and (values[0] < 0 or values[-1] >= classes):
            bad.append((mask_path.name, values))
    if not bad:
        return
    name, values = bad[0]
    if set(values.tolist()) <= {0, 255}:
        fix = (
            "it looks like a binary 0/255 mask: use --classes 1 for one foreground class, or save "
            f"class indices 0..{classes - 1} (0 = background)"
        )
    else:
        fix = (
            f"use --classes {int(values[-1]) + 1} if the mask has that many classes (0 = background), "
            f"or fix the mask to hold 0..{classes - 1}"
        )
    more = f" (and {len(bad) - 1} more mask(s): {', '.join(n for n, _ in bad[1:4])})" if len(bad) > 1 else ""
    raise ShapeMismatchError(
        f"mask '{name}' has values {_values_text(values)} but --classes {classes} "
        f"allows 0..{classes - 1}{more} — {fix}"
    )


CLASS_NAMES_FILE = "classes.txt"


def class_names_beside(mask_dir: Path) -> list[str]:
    """Class names from `classes.txt` in the masks folder (one name per line, class 0 first; blank
    lines ignored), or [] when there is none."""
    path = Path(mask_dir) / CLASS_NAMES_FILE
    if not path.is_file():
        return []
    from .textfile import read_text

    text = read_text(path, "class names file", "save it as UTF-8 text, one name per line")
    return [line.strip() for line in text.splitlines() if line.strip()]
