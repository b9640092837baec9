"""A training run's settings and slices, for the API's `train` and the train command alike: settings
from the given options, the palette and class names beside the masks, the slices the network sees,
and the one call to the cross-validated run."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import TrainConfig
from ..errors import UsageError
from .workspace_run import training_config

if TYPE_CHECKING:  # the package's heavy parts are imported when a run starts
    from ..palette import Palette
    from ..slices import Slice
    from ..training.run import TrainingRun

Echo = Callable[[str], None]
ReadSlices = Callable[[int, Any], "list[Slice]"]  # (mask classes, normalisation) -> slices


def names_from_file(mask_dir: Path, classes: int) -> list[str]:
    """The class names of `classes.txt` beside the masks ([] without one); a count other than
    `classes` is an error naming the file."""
    from ..mask_classes import CLASS_NAMES_FILE, class_names_beside

    names = class_names_beside(mask_dir)
    if names and len(names) != classes:
        raise UsageError(
            f"'{mask_dir / CLASS_NAMES_FILE}' names {len(names)} class(es) ({', '.join(names)}) "
            f"for --classes {classes}: one name per line, background (class 0) first"
        )
    return names


def folder_config(
    mask_dir: Path, options: Mapping[str, Any], preset: str | None, device: str, palette: Path | None
) -> TrainConfig:
    """The run's settings from the options, with the palette (`palette`, else `palette.txt` beside the
    masks) and class names (given, else `classes.txt`, else the palette's) when not given."""
    from ..palette import find_palette, palette_names

    cfg = training_config(options, preset, device)
    found = find_palette(mask_dir, cfg.mask_classes(), palette)
    cfg = replace(cfg, palette=found.as_list() if found else None)
    if cfg.classes >= 2 and not cfg.class_names:
        cfg = replace(
            cfg, class_names=names_from_file(mask_dir, cfg.classes) or palette_names(found, cfg.classes)
        )
    return cfg


def run_palette(cfg: TrainConfig, mask_dir: Path, palette: Path | None) -> Palette | None:
    """The run's palette (its colours are in the settings, so a resumed run keeps them), named after
    its file for messages."""
    from ..palette import PALETTE_FILE, from_colours

    if not cfg.palette:
        return None
    path = Path(palette) if palette else mask_dir / PALETTE_FILE
    return from_colours(
        cfg.palette, cfg.mask_classes(), f"the palette '{path}'" if path.is_file() else "the run's palette"
    )


def network_slices(cfg: TrainConfig, read: ReadSlices) -> list[Slice]:
    """The slices as the network sees them: `read` normalises as `cfg` says (percentiles or a
    window), then the `context` neighbouring sections become channels."""
    from ..context import add_context
    from ..intensity import normalisation_spec

    return add_context(read(cfg.mask_classes(), normalisation_spec(cfg)), cfg.context)


def folder_slices(
    images: Path, masks: Path, cfg: TrainConfig, palette: Path | None, refused: list
) -> list[Slice]:
    """The training pairs of two folders as the network sees them (refused files added to `refused`)."""
    from ..pair_loading import load_pairs

    return network_slices(
        cfg,
        lambda classes, norm: load_pairs(
            images, masks, classes, norm, refused=refused, palette=run_palette(cfg, masks, palette)
        ),
    )


def fingerprinted(slices: Sequence[Slice], read_as: Mapping, masks: Path, refused: list) -> list[Slice]:
    """The pairs whose files were fingerprinted before reading; a pair added in between is refused
    (kept for the next run), since clearing could not tell whether it changed after it was read."""

    def pair(s: Slice) -> set[Path]:
        return {s.source, masks / s.info["mask_file"]}

    late = sorted({f for s in slices for f in pair(s) if f not in read_as})
    refused += [(f, "it was added while the run was starting - it is kept for the next run") for f in late]
    kept = [s for s in slices if not pair(s) & set(late)]
    if slices and not kept:
        raise UsageError("every training pair was added while the run was starting: run again")
    return kept


def fit(
    slices: Sequence[Slice],
    cfg: TrainConfig,
    device: str,
    report_dir: Path | None,
    echo: Echo,
    given: Collection[str],
    **extra: Any,
) -> TrainingRun:
    """The cross-validated run (`paulow.training.run.run_training`); `given`: the options the user
    set, so given folds or epochs are kept rather than planned; `extra`: its keyword options
    (`resume`, `save_state`, `file_hashes`, `tensorboard`, `on_epoch`)."""
    from ..training.run import run_training

    return run_training(
        slices,
        cfg,
        device,
        report_dir,
        echo,
        folds_explicit="folds" in given,
        epochs_explicit="epochs" in given,
        **extra,
    )
