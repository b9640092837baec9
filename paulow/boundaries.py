"""Learned boundaries (`--boundary-target WIDTH`): instances become a 3-class target, background (0) /
interior (1) / boundary ring (2), the network learns it with the softmax (K = 3) path, and instances
come back from a seeded watershed: the interior components are the seeds, the objects are the pixels
whose object probability 1 - P(background) is above the model's threshold (tuned on the validation
images in training, as a binary model's), and the flood climbs the boundary probability.

The ring is the object's pixels whose (2 WIDTH + 1)-square neighbourhood holds another label or
background, so it is WIDTH px thick inside the object's edge and along every line where two
objects touch; the image edge is not a boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from .slices import Slice, foreground_fraction

if TYPE_CHECKING:
    from .config import TrainConfig

BACKGROUND, INTERIOR, BOUNDARY = 0, 1, 2
DEFAULT_WIDTH = 2
# `boundary_target="auto"` learns boundaries when at least this share of the masks' object pixels is
# interior (more than DEFAULT_WIDTH px from an edge): nuclei, cells and the ISBI cell bodies hold
# 80-90 %, the 2-5 px filaments 0 % (`bench/target_choice.py`): a ring would swallow them whole.
AUTO_INTERIOR_SHARE = 0.5


def boundary_target(labels: np.ndarray, width: int = DEFAULT_WIDTH) -> np.ndarray:
    """`(H, W)` uint8 target 0 / 1 / 2 from instance labels (0 = background)."""
    from scipy import ndimage

    labels = np.asarray(labels)
    size = 2 * int(width) + 1
    highest = ndimage.maximum_filter(labels, size=size, mode="nearest")
    lowest = ndimage.minimum_filter(labels, size=size, mode="nearest")
    target = np.where(labels > 0, INTERIOR, BACKGROUND).astype(np.uint8)
    target[(labels > 0) & (highest != lowest)] = BOUNDARY
    return target


def with_boundary_targets(slices: Sequence[Slice], width: int) -> list[Slice]:
    """The slices with their masks replaced by the 3-class target of their instances (the mask
    file's labels, else the connected components of a binary mask); sparse labels lose the object
    pixels next to unlabelled ones (`labelled_for_boundaries`)."""
    out = []
    for s in slices:
        target = boundary_target(s.instances(), width)
        info = {**s.info, "foreground_fraction": foreground_fraction(target)}
        labelled = None if s.labelled is None else labelled_for_boundaries(target, s.labelled, width)
        out.append(replace(s, mask=target, info=info, labels=s.instances(), labelled=labelled))
    return out


def labelled_for_boundaries(target: np.ndarray, labelled: np.ndarray, width: int) -> np.ndarray:
    """Sparse labels: the labelled pixels whose boundary class is known. An object pixel within
    `width` px (the ring's square) of an unlabelled one could be interior or boundary (the
    unlabelled neighbour may be background), so it is left unlabelled; background stays labelled."""
    from scipy import ndimage

    labelled = np.asarray(labelled, bool)
    near = ndimage.maximum_filter(~labelled, size=2 * int(width) + 1, mode="constant", cval=False)
    return labelled & ~((target != BACKGROUND) & near)


def interior_share(slices: Sequence[Slice], width: int = DEFAULT_WIDTH) -> float:
    """The share of the masks' object pixels that the `width` px ring leaves as interior (0.0 when
    the masks have no objects)."""
    objects = inside = 0
    for s in slices:
        target = boundary_target(s.instances(), width)
        objects += int(np.count_nonzero(target))
        inside += int(np.count_nonzero(target == INTERIOR))
    return inside / objects if objects else 0.0


def choose_target(slices: Sequence[Slice], cfg: TrainConfig, echo=print) -> TrainConfig:
    """`cfg` with `boundary_target="auto"` settled from the training masks, saying why: objects with
    an inside (`AUTO_INTERIOR_SHARE`) get the 3-class boundary target of `DEFAULT_WIDTH` px, so the
    model also learns where touching objects meet; thin structures keep the binary target. Binary
    class names other than three keep the binary target too. Any other config comes back as given."""
    from .config import AUTO, as_boundary_model

    if cfg.boundary_target != AUTO:
        return cfg
    share = interior_share(slices, DEFAULT_WIDTH)
    named = bool(cfg.class_names) and len(cfg.class_names) != 3
    if cfg.classes > 1 or named or share < AUTO_INTERIOR_SHARE:
        if cfg.classes <= 1 and not named:
            echo(
                f"target: binary ({share:.0%} of the object pixels lie more than {DEFAULT_WIDTH} px inside "
                "an object: thin or small objects; --boundary-target learns boundaries anyway)"
            )
        return replace(cfg, boundary_target=None)
    echo(
        f"target: background / interior / boundary ({share:.0%} of the object pixels lie more than "
        f"{DEFAULT_WIDTH} px inside an object): masks are written as before, and use_model.py --instances "
        "separates touching objects (--no-boundary-target: a binary model)"
    )
    return as_boundary_model(cfg, DEFAULT_WIDTH)


def boundary_width(meta: dict) -> int | None:
    """The ring width of a model trained with `--boundary-target` (its classes: background, interior,
    boundary), else None."""
    width = meta.get("boundary_target") or (meta.get("config") or {}).get("boundary_target")
    return int(width) if isinstance(width, (int, float)) and not isinstance(width, bool) and width else None


def is_boundary_model(meta: dict) -> bool:
    """True for a model trained with `--boundary-target`."""
    return boundary_width(meta) is not None


def mask_rule(meta: dict) -> str:
    """How a model file's probabilities become its mask, in words (export metadata, documentation)."""
    from .model_file import stored_threshold

    threshold = stored_threshold(meta)
    if is_boundary_model(meta):
        return (
            f"objects where 1 - P(background) > {threshold:.2f} (channels: background, interior, "
            "boundary; the boundary channel splits touching objects)"
        )
    if int(meta.get("classes", 1)) <= 1:
        return f"foreground where the probability > {threshold:.2f}"
    return "the most probable class of each pixel"


def object_probability(prob: np.ndarray) -> np.ndarray:
    """`(1, H, W)` float32 probability of "object" (interior or boundary) from a boundary model's
    `(3, H, W)` probabilities: 1 - P(background), what its threshold is tuned and applied on."""
    return (1.0 - np.asarray(prob[BACKGROUND], dtype=np.float32))[None]


def object_mask(prob: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """A boundary model's `(H, W)` uint8 0/1 object mask: object probability above `threshold`."""
    from .postprocess import to_mask

    return to_mask(object_probability(prob), threshold)


def instances_from_boundaries(prob: np.ndarray, min_seed: int = 1, threshold: float = 0.5) -> np.ndarray:
    """Instance labels (uint16, uint32 above 65,535) from `(3, H, W)` probabilities: the objects of
    `object_mask(prob, threshold)`, split by a watershed on the boundary probability whose seeds are
    the 8-connected interior components (argmax = interior, inside the objects) of at least
    `min_seed` px. An object without a seed stays one object."""
    from scipy import ndimage

    from .postprocess import EIGHT_CONNECTED, _smallest_label_dtype, seeded_watershed, to_mask

    prob = np.asarray(prob)
    objects = object_mask(prob, threshold).astype(bool)
    seeds, _ = ndimage.label((to_mask(prob) == INTERIOR) & objects, structure=EIGHT_CONNECTED)
    if min_seed > 1:
        small = np.bincount(seeds.ravel()) < min_seed
        small[0] = False
        seeds[small[seeds]] = 0
    labels = seeded_watershed(np.asarray(prob[BOUNDARY], dtype=np.float32), seeds, objects)
    return _smallest_label_dtype(labels)
