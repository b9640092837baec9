"""Fine-tuning a loaded model on image/mask pairs: the one implementation behind `paulow.finetune`
and `paulow finetune` / `finetune_model.py` (the command adds the prompts, the drop folders, the
printing, saving under a free name and clearing its inputs).

The steps, in the order both callers run them: `finetune_settings` (options to settings, before
any reading), the pairs read as the model learns them (`read_finetune_folders` for the command,
`finetune_slices` for arrays or files), `plan_finetune` (channels checked, images split into tune /
validation / held out, the starting member chosen) and `fit_finetune` (the fit, the scores of parent
and new model on the held-out images, the new metadata).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ..config import TrainConfig
from ..errors import UsageError
from .inputs import ArrayOrPath, make_slices
from .model import Echo, Model

if TYPE_CHECKING:  # `import paulow.api` stays light
    from ..palette import Palette
    from ..slices import Slice

OnEpoch = Callable[[dict], None]


@dataclass(frozen=True)
class FinetunePlan:
    """What a fine-tuning run starts from: its settings, the learnable slices and their split (tune,
    validation, held out) and the member it starts from."""

    cfg: TrainConfig
    slices: list[Slice]
    tune: list[Slice]
    val: list[Slice]
    held: list[Slice]
    parent: Any


@dataclass(frozen=True)
class Finetuning:
    """A fine-tuned network, its metadata, its scores (parent vs new model on the held-out images,
    plus old-domain scores when asked), its settings and its fit history (one row per epoch)."""

    network: Any
    meta: dict
    scores: dict
    cfg: TrainConfig
    history: list


def require_one_process(message: str) -> None:
    """A `UsageError` (`message`) when started by torchrun with more than one process."""
    from .. import distributed

    if distributed.world_size() > 1:
        raise UsageError(message)


def load_parent(path: Path, device: str | None = None) -> Model:
    """A model file to fine-tune, on `device` ("auto"/None: CUDA when present), its members set to
    the output activation its metadata names (so its scores are those of the file as used)."""
    from ..checkpoint import load_checkpoint
    from ..device import pick_device
    from ..inference_networks import set_activation

    where = pick_device(device or "auto")
    loaded = load_checkpoint(path, where)
    set_activation(loaded.models, loaded.meta)  # softmax only for models that say so
    return Model(loaded.models, loaded.meta, where)


def parent_identity(path: Path) -> dict:
    """The parent as a fine-tuned model's metadata records it: file name and SHA-256."""
    from ..checkpoint import sha256_file

    return {"name": path.name, "sha256": sha256_file(path)}


def free_model_path(path: Path) -> Path:
    """`path`, or the first free `<stem>_2`, `_3`, ... beside it (nothing is overwritten)."""
    from ..io.atomic import unique_path

    return unique_path(path)


def save_finetuned(path: Path, run: Finetuning) -> Path:
    """Write the fine-tuned model file (verified after writing); its path."""
    from ..checkpoint import save_checkpoint

    return save_checkpoint(path, [run.network.state_dict()], run.meta)


def finetune_settings(meta: dict, options: Mapping[str, Any], device: str) -> TrainConfig:
    """The settings of a fine-tuning run of a model with metadata `meta` (see
    `paulow.training.finetune_config`): a `UsageError` for a bad option, before any work."""
    from ..training.finetune_config import finetune_config

    return finetune_config(meta, options, device)


def holdout_share(given: float | None) -> float:
    """The share of the images held out: `given`, else the fine-tuning default (0.25)."""
    from ..training.finetune_config import FINETUNE_DEFAULTS

    return given if given is not None else float(FINETUNE_DEFAULTS["holdout"])


def mask_classes(meta: dict, classes: int) -> int:
    """The class count the model's masks are read with: 1 for a boundary model (binary or instance
    labels), else its classes."""
    from ..boundaries import boundary_width

    return 1 if boundary_width(meta) else classes


def _learnable(slices: list[Slice], meta: dict, width: int | None) -> list[Slice]:
    """Slices as the model learns them: its context channels, and a boundary model's background /
    interior / boundary targets (ring `width`) made from the masks' instances."""
    from ..boundaries import with_boundary_targets
    from ..context import add_context, model_context

    slices = add_context(slices, model_context(meta))
    return with_boundary_targets(slices, width) if width else slices


def finetune_slices(
    model: Model,
    cfg: TrainConfig,
    images: Sequence[ArrayOrPath] | ArrayOrPath,
    masks: Sequence[ArrayOrPath] | ArrayOrPath,
    labelled: Sequence[np.ndarray | None] | None = None,
) -> list[Slice]:
    """Images and masks (arrays or files; `labelled`: sparse labels) as `model` learns them."""
    slices = make_slices(
        images, masks, cfg.mask_classes(), model.meta.get("normalisation"), cfg.palette, labelled
    )
    return _learnable(slices, model.meta, cast(int | None, cfg.boundary_target))  # a saved model's width


def model_palette(meta: dict, name: str) -> Palette | None:
    """The palette stored in the model file `name`, or None."""
    from ..palette import from_colours

    return (
        from_colours(meta["palette"], source=f"the palette of model '{name}'")
        if meta.get("palette")
        else None
    )


def read_finetune_folders(
    model: Model,
    cfg: TrainConfig,
    images: Path,
    masks: Path,
    name: str,
    palette: str | None = None,
    refused: list | None = None,
) -> tuple[TrainConfig, list[Slice]]:
    """A folder pair read as `model` (the file `name`) learns it, and `cfg` with the palette it was
    read with: colour masks through `palette` (a file), else `masks`/palette.txt, else the model's.
    Unreadable pairs go to `refused` (path, reason) when given."""
    from ..boundaries import boundary_width
    from ..pair_loading import load_pairs
    from ..palette import find_palette

    stored = model_palette(model.meta, name)
    found = find_palette(masks, mask_classes(model.meta, model.classes), palette, fallback=stored)
    cfg = replace(cfg, palette=found.as_list()) if found else cfg
    slices = load_pairs(
        images,
        masks,
        mask_classes(model.meta, model.classes),
        model.meta.get("normalisation"),
        refused,
        found,
    )
    return cfg, _learnable(slices, model.meta, boundary_width(model.meta))


def plan_finetune(
    model: Model, slices: list[Slice], cfg: TrainConfig, holdout: float, where: str, who: str
) -> FinetunePlan:
    """Check the channels (`who`: the model, for the message), split the images by image (`where`
    names them, for the message) and choose the member to start from."""
    from ..slices import check_channels
    from ..training.finetuning import split_for_finetuning, start_member

    check_channels(slices, model.in_channels, who)
    tune, val, held = split_for_finetuning(slices, holdout, cfg.seed, where)
    return FinetunePlan(cfg, slices, tune, val, held, start_member(model.networks, model.meta))


def fit_finetune(
    model: Model,
    plan: FinetunePlan,
    name: str | None = None,
    parent: dict | None = None,
    *,
    device: str,
    report_dir: Path | None = None,
    title: str = "fine-tuning",
    tensorboard: Path | None = None,
    echo: Echo = lambda _: None,
    on_epoch: OnEpoch | None = None,
    check: Sequence[Path] | None = None,
) -> Finetuning:
    """Fit a copy of the plan's member (the parent is not changed), score parent and new model on
    the held-out images and describe the new model `name` (default: the model's name +
    "_finetuned"; `parent`: the parent's identity, default its name). Curves go to
    `report_dir`/curves.png (titled `title`) and to `tensorboard`; `check` (images, masks folders):
    both models' Dice on old-domain images too (colour masks through their palette.txt, else the
    palette stored in the parent's file)."""
    from ..training.finetuning import finetune_network, finetuned_meta
    from ..watch import FoldWatch

    parent = parent if parent is not None else {"name": model.meta.get("name")}
    name = name or f"{model.meta.get('name') or 'paulow_model'}_finetuned"
    curves = report_dir / "curves.png" if report_dir else None
    watch = FoldWatch(curves, title, tensorboard) if report_dir or tensorboard else None
    done = finetune_network(
        plan.parent,
        plan.tune,
        plan.val,
        plan.cfg,
        device,
        report_dir,
        echo,
        watch,
        model.meta,
        on_epoch,
        plan.held,
    )
    if check:
        stored = model_palette(model.meta, str(parent.get("name")))
        done.scores.update(_old_domain_scores(check, plan.parent, done, model.meta, device, stored))
    meta = finetuned_meta(model.meta, name, done, parent, plan.slices)
    return Finetuning(done.network, meta, done.scores, done.cfg, done.result.history)


def _old_domain_scores(
    check: Sequence[Path], parent: Any, done: Any, meta: dict, device: str, stored: Palette | None
) -> dict:
    """Both models' Dice on old-domain images, each as its model file is used."""
    from ..boundaries import boundary_width
    from ..pair_loading import load_pairs
    from ..palette import find_palette
    from ..training.evaluation import dice_on_slices
    from ..training.finetuning import as_evaluated

    classes = mask_classes(meta, done.cfg.classes)
    palette = find_palette(check[1], classes, fallback=stored)
    slices = _learnable(
        load_pairs(check[0], check[1], classes, meta.get("normalisation"), palette=palette),
        meta,
        boundary_width(meta),
    )
    return {
        "check_parent_dice": dice_on_slices(
            parent,
            slices,
            as_evaluated(done.cfg, meta),
            device,
            min_size=int(meta.get("min_object_px") or 0),
        ),
        "check_finetuned_dice": dice_on_slices(
            done.network, slices, done.cfg, device, min_size=int(done.scores.get("min_object_px") or 0)
        ),
        "check_images": len(slices),
    }
