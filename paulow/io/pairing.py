"""Pairing images with their masks by name (`pairing_key`), else in natural order with a warning."""

from __future__ import annotations

import re
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from paulow.errors import PairingError

from .listing import natural_sort_key


class PairingWarning(UserWarning):
    """Images and masks were paired by an assumption (natural sort order), not by name."""


_NAME_WORDS = frozenset(
    {
        "image",
        "images",
        "img",
        "imgs",
        "mask",
        "masks",
        "msk",
        "label",
        "labels",
        "labelled",
        "labeled",
        "lbl",
        "gt",
        "groundtruth",
        "seg",
        "segmentation",
        "segmented",
        "annotation",
        "annotations",
        "annot",
        "dna",
        "raw",
        "ground",
        "truth",
        "pred",
        "prediction",
        "predicted",
        "prob",
    }
)

_SEPARATORS = re.compile(r"[\s._-]+")

_GLUED_NUMBER = re.compile(r"^([a-z]*)(\d+)([a-z]*)$")


def _stem(path: Path) -> str:
    """File name without its extension (and without `.ome` for OME-TIFF)."""
    stem = path.stem
    return stem[:-4] if stem.lower().endswith((".ome", ".nii")) else stem


def _strip_glued_words(token: str) -> str:
    match = _GLUED_NUMBER.match(token)
    if not match:
        return token
    prefix, number, suffix = match.groups()
    prefix = "" if prefix in _NAME_WORDS else prefix
    suffix = "" if suffix in _NAME_WORDS else suffix
    return prefix + number + suffix


def pairing_key(path: str | Path) -> str:
    """The name an image and its mask share: lower case, words like image/mask/label/dna/raw and
    separators removed, leading zeros dropped (`Image_012.tif` and `mask12.png` give `12`)."""
    tokens = [t for t in _SEPARATORS.split(_stem(Path(path)).lower()) if t]
    kept = [_strip_glued_words(t) for t in tokens if t not in _NAME_WORDS]
    return "".join(re.sub(r"\d+", lambda m: str(int(m.group())), t) for t in kept)


def _group_by_key(paths: Iterable[Path]) -> dict[str, list[Path]]:
    groups: dict[str, list[Path]] = defaultdict(list)
    for path in paths:
        groups[pairing_key(path)].append(path)
    return groups


def _pair_by_stem(images: list[Path], masks: list[Path]) -> list[tuple[Path, Path]]:
    """Pairs with identical stems (case-insensitive), for names that share a key."""
    by_stem: dict[str, list[Path]] = defaultdict(list)
    for mask in masks:
        by_stem[_stem(mask).lower()].append(mask)
    pairs = []
    for image in images:
        candidates = by_stem.get(_stem(image).lower(), [])
        if len(candidates) == 1:
            pairs.append((image, candidates[0]))
    return pairs


def _pair_by_name(images: list[Path], masks: list[Path]) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """Pairs by key, and the files whose key is shared by several images or masks but that no
    identical stem resolved."""
    image_groups, mask_groups = _group_by_key(images), _group_by_key(masks)
    pairs: list[tuple[Path, Path]] = []
    unresolved: list[Path] = []
    for key, group in image_groups.items():
        candidates = mask_groups.get(key, [])
        if len(group) == 1 and len(candidates) == 1:
            pairs.append((group[0], candidates[0]))
        elif group and candidates:
            resolved = _pair_by_stem(group, candidates)
            pairs.extend(resolved)
            done = {p for pair in resolved for p in pair}
            unresolved.extend(p for p in group + candidates if p not in done)
    return pairs, unresolved


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'} {'has' if n == 1 else 'have'}"


def _names(paths: Iterable[Path]) -> str:
    return ", ".join(p.name for p in sorted(paths, key=natural_sort_key))


def _pairing_message(images: list[Path], masks: list[Path], unresolved: list[Path]) -> str:
    parts = []
    if images:
        parts.append(f"{_count(len(images), 'image')} no mask: {_names(images)}")
    if masks:
        parts.append(f"{_count(len(masks), 'mask')} no image: {_names(masks)}")
    if unresolved:
        parts.append(
            f"these share a number or name, so which goes with which is unclear: "
            f"{', '.join(p.name for p in unresolved)}"
        )
    return (
        "; ".join(parts) + " - give each image a mask with the same number or name "
        "(e.g. image12.tif <-> mask12.tif)"
    )


def _pair_in_order(images: list[Path], masks: list[Path]) -> list[tuple[Path, Path]]:
    pairs = list(zip(sorted(images, key=natural_sort_key), sorted(masks, key=natural_sort_key)))
    example = ", ".join(f"{i.name} <-> {m.name}" for i, m in pairs[:3])
    more = ", ..." if len(pairs) > 3 else ""
    warnings.warn(
        PairingWarning(
            f"no image name matches a mask name; assuming the {len(pairs)} images and {len(pairs)} "
            f"masks correspond in natural sort order ({example}{more})"
        ),
        stacklevel=3,
    )
    return pairs


def pair_images_masks(
    image_paths: Sequence[str | Path], mask_paths: Sequence[str | Path]
) -> list[tuple[Path, Path]]:
    """Pair each image with its mask by `pairing_key`, in natural order of the images.

    Names that share a key are paired only by identical stems. If no name pairs at all and the
    counts are equal, pairs in natural sort order with a `PairingWarning`. Otherwise raises
    `PairingError` listing every image without a mask and every mask without an image.
    """
    images = list(dict.fromkeys(Path(p) for p in image_paths))
    masks = list(dict.fromkeys(Path(p) for p in mask_paths))
    pairs, unresolved = _pair_by_name(images, masks)
    if not pairs and not unresolved and images and len(images) == len(masks):
        return _pair_in_order(images, masks)
    paired = {p for pair in pairs for p in pair}
    lonely_images = [p for p in images if p not in paired]
    lonely_masks = [p for p in masks if p not in paired]
    if lonely_images or lonely_masks:
        raise PairingError(_pairing_message(lonely_images, lonely_masks, unresolved))
    return sorted(pairs, key=lambda pair: natural_sort_key(pair[0]))
