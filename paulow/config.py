"""Training configuration: `TrainConfig`, the presets, and the mapping from user options to a config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

AUTO = "auto"  # `boundary_target`: settled from the masks when training starts

PRESETS = {
    # The published settings, for a GPU.
    "paper": {
        "width": 64,
        "folds": 5,
        "optimizer": "adam",
        "lr": 1e-5,
        "batch_size": 4,
        "epochs": 100,
        "per_epoch": None,
        "time_limit": None,
        "val_tiles": 96,
        "boundary_target": None,
    },  # the published binary target
    # Fits a 2-core CPU: a 10-image dataset trains to a useful model in minutes.
    "cpu": {
        "width": 16,
        "folds": 5,
        "optimizer": "adamw",
        "lr": 2e-3,
        "batch_size": 8,
        "epochs": 40,
        "per_epoch": 192,
        "time_limit": 15.0,
    },
    # val_tiles 96: tiles are the 128 px patch on a GPU, the pixels of the CPU's 24 tiles of 256 px
    # batch 64, lr 2e-3 (square-root scaled from 1e-3 at 16): see `paulow.gpu_preset`
    "gpu": {
        "width": 32,
        "folds": 5,
        "optimizer": "adamw",
        "lr": 2e-3,
        "batch_size": 64,
        "epochs": 100,
        "per_epoch": None,
        "time_limit": None,
        "val_tiles": 96,
    },
}


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run (saved in the model file and the report). Frozen: a changed
    setting is a new config (`dataclasses.replace`), so the caller's config is never altered."""

    arch: str = "paulow_attention_unet"
    arch_extra: dict = field(default_factory=dict)  # e.g. {"batch_norm": False} for `unet`
    width: int = 16
    depth: int = 4
    classes: int = 1
    class_names: list = field(default_factory=list)  # one name per class 0..K-1 (optional)
    palette: list | None = None  # [[R, G, B], ...] per class: colour masks -> class indices (K >= 2)
    loss: str = "dynamic"
    loss_args: dict = field(default_factory=dict)
    context: int = 0  # 2.5-D: sections z-N..z+N of a stack as input channels (paulow.context)
    window: list | None = None  # [low, high]: a fixed intensity window (CT: HU) instead of percentiles
    border_weight: list | None = None  # [w0, sigma]: Ronneberger's border weight map on the BCE/CE terms
    # ring width: learn background / interior / boundary (K = 3). The front ends' default (see
    # `resolve_config`) is "auto": settled from the masks when training starts, see
    # `paulow.boundaries.choose_target`; a config built directly is binary unless told.
    boundary_target: int | str | None = None
    optimizer: str = "adamw"
    epochs: int = 40
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.05
    schedule: str = "cosine"  # cosine (warm-up + cosine), step (x gamma per epoch), constant
    gamma: float = 0.92  # per-epoch factor of the step schedule
    patch: int = 128
    overlap: int = 64
    random_fraction: float = 0.5
    per_epoch: int | None = 192
    augment: bool = True
    rotate: bool = True  # 90-degree turns in augmentation (off for oriented structures)
    folds: int = 5
    test_fraction: float = 0.1
    seed: int = 0
    device: str = "auto"
    time_limit: float | None = 15.0  # minutes for the whole run
    patience: int = 12
    ensemble: bool = False
    workers: int = 0
    threshold: float = 0.5
    tune_threshold: bool = True  # pick the threshold on the validation images after training
    infer_overlap: float = 0.5
    panel_every: int = 5
    freeze_encoder: bool = False
    encoder_weights: str | None = None  # vgg16_unet: a VGG16 state dict the user supplies
    val_share: float = 0.25  # validation seconds per training second (set by the budget planner)
    val_tiles: int = 24  # between-epoch validation: at most this many inference tiles (0: whole images)

    def names(self) -> list[str]:
        """One name per class: the given `class_names`, else "class 0", "class 1", ..."""
        if not self.class_names:
            return [f"class {i}" for i in range(self.classes)]
        if len(self.class_names) != self.classes:
            from .errors import UsageError

            raise UsageError(
                f"--class-names gives {len(self.class_names)} name(s) "
                f"({', '.join(self.class_names)}) for {self.classes} classes; "
                "name every class, background (class 0) first"
            )
        return [str(name) for name in self.class_names]

    def mask_classes(self) -> int:
        """The class count of the mask files: 1 for a boundary model (its 3-class target is made
        from their instances), else `classes`."""
        return 1 if self.boundary_target else self.classes

    def arch_args(self, in_channels: int) -> dict:
        return {
            "in_channels": in_channels,
            "classes": self.classes,
            "width": self.width,
            "depth": self.depth,
            **self.arch_extra,
        }


def resolve_config(overrides: dict, preset: str | None, device: str) -> TrainConfig:
    """Defaults (a binary run's target: "auto"), then the preset for the device (or the named one),
    then the user's explicit values."""
    name = preset or ("cpu" if device == "cpu" else "gpu")
    if name not in PRESETS:
        from .errors import UsageError

        raise UsageError(f"unknown preset '{name}': choose one of {', '.join(PRESETS)}")
    values = {
        "boundary_target": AUTO,
        **PRESETS[name],
        **{k: v for k, v in overrides.items() if v is not None},
    }
    if values.get("arch") == "vgg16_unet" and overrides.get("depth") is None:
        values["depth"] = 5  # the whole VGG16 configuration D
    known = {f for f in TrainConfig.__dataclass_fields__}
    return TrainConfig(**{k: v for k, v in values.items() if k in known})


# Options that are not `TrainConfig` fields: network options (into `arch_extra`) and the command
# line's negative switches. A value of 0 for `time_limit` / `per_epoch` means "none" (no limit, all).
NETWORK_OPTIONS = ("norm", "dropout", "batch_norm")
SWITCHES = {
    "no_augment": ("augment", False),
    "no_rotate": ("rotate", False),
    "no_batch_norm": ("batch_norm", False),
    "no_boundary_target": ("boundary_target", 0),
}
ZERO_MEANS_NONE = ("time_limit", "per_epoch")
# `class_weights` ("auto" or one number per class, K >= 2) goes into `loss_args`
LOSS_OPTIONS = ("class_weights",)


def option_names() -> set[str]:
    """Every training option a front end may pass to `config_from_options`."""
    return {f.name for f in fields(TrainConfig)} | set(NETWORK_OPTIONS) | set(SWITCHES) | set(LOSS_OPTIONS)


def _class_weights(weights: Any, classes: int) -> Any:
    """`class_weights` checked against the class count: "auto" or one number per class."""
    from .errors import UsageError

    if classes < 2:
        raise UsageError("--class-weights is for several classes: add --classes K (K >= 2)")
    if weights != "auto" and len(weights) != classes:
        raise UsageError(
            f"--class-weights gives {len(weights)} number(s) for {classes} classes: one per "
            "class, background (class 0) first, or auto"
        )
    return weights


# Values a config cannot take, checked once before any work: (test, what the value must be).
_VALUE_RULES = {
    "threshold": (lambda v: 0.0 < v < 1.0, "a number between 0 and 1 (e.g. 0.5)"),
    "lr": (lambda v: v > 0, "a positive number"),
    "gamma": (lambda v: v > 0, "a positive number"),
    "epochs": (lambda v: v >= 1, "a whole number >= 1"),
    "batch_size": (lambda v: v >= 1, "a whole number >= 1"),
    "patch": (lambda v: v >= 1, "a whole number >= 1"),
    "val_tiles": (lambda v: v >= 0 and v == int(v), "a whole number >= 0 (0 = validate on whole images)"),
}


def option_values(options: Mapping[str, Any], what: str = "training") -> dict[str, Any]:
    """The config fields that user options set (None = not given): an unknown name or a value out of
    range is a `UsageError` naming it; the negative switches become their field (`no_rotate` ->
    rotate False) and the network options go into `arch_extra`; `class_weights` stays (see
    `with_class_weights`)."""
    unknown = sorted(set(options) - option_names())
    if unknown:
        from .errors import UsageError

        raise UsageError(
            f"unknown {what} option(s): {', '.join(unknown)}: choose from {', '.join(sorted(option_names()))}"
        )
    from .options_check import check_values

    values = check_values({k: v for k, v in options.items() if v is not None})
    for name, (ok, must) in _VALUE_RULES.items():
        if name in values and not _passes(ok, values[name]):
            from .errors import UsageError

            raise UsageError(f"{name} {values[name]} is not {must}: fix --{name.replace('_', '-')}")
    for switch, (name, value) in SWITCHES.items():
        if values.pop(switch, False):
            values[name] = value
    extra = {**(values.get("arch_extra") or {}), **{k: values.pop(k) for k in NETWORK_OPTIONS if k in values}}
    if extra:
        values["arch_extra"] = extra
    return values


def with_class_weights(cfg: TrainConfig, weights: Any) -> TrainConfig:
    """`cfg` with `class_weights` (None = not given) in its `loss_args`, checked against its classes."""
    if weights is None:
        return cfg
    return replace(cfg, loss_args={**cfg.loss_args, "class_weights": _class_weights(weights, cfg.classes)})


def _passes(ok, value: Any) -> bool:
    try:
        return not isinstance(value, bool) and bool(ok(float(value)))  # NaN fails every comparison
    except (TypeError, ValueError):
        return False


BOUNDARY_CLASS_NAMES = ["background", "interior", "boundary"]


def instance_options(cfg: TrainConfig, values: Mapping[str, Any]) -> TrainConfig:
    """`cfg` with `border_weight` ("W0,SIGMA" text or two numbers) and `boundary_target` checked and
    normalised (a ring width makes the run a 3-class background / interior / boundary model; "auto",
    the default of a binary run: see `paulow.boundaries.choose_target`; 0 / None: binary)."""
    if cfg.border_weight is not None:
        cfg = replace(cfg, border_weight=_border_weight(cfg.border_weight))
    if not cfg.boundary_target:
        return replace(cfg, boundary_target=None)
    if cfg.boundary_target == AUTO:  # decided from the masks when training starts (K = 1 only)
        if values.get("classes") not in (None, 1) or cfg.classes > 1:
            return replace(cfg, boundary_target=None)
        return cfg
    from .errors import UsageError

    if (
        isinstance(cfg.boundary_target, bool)
        or int(cfg.boundary_target) != cfg.boundary_target
        or cfg.boundary_target < 1
    ):
        raise UsageError(f"--boundary-target {cfg.boundary_target!r}: give the ring width in pixels (>= 1)")
    if values.get("classes") not in (None, 1, 3):
        raise UsageError(
            f"--boundary-target trains 3 classes (background, interior, boundary) from binary or "
            f"instance-label masks: leave out --classes {values.get('classes')}"
        )
    return as_boundary_model(cfg, int(cfg.boundary_target))


def as_boundary_model(cfg: TrainConfig, width: int) -> TrainConfig:
    """`cfg` as a 3-class background / interior / boundary model with a ring `width` pixels wide."""
    return replace(
        cfg, boundary_target=width, classes=3, class_names=cfg.class_names or list(BOUNDARY_CLASS_NAMES)
    )


def _border_weight(value: Any) -> list | None:
    """`border_weight` ("W0,SIGMA" text or two numbers) as [w0, sigma], checked."""
    from .weights import parse_border_weight

    text = value if isinstance(value, str) else ",".join(str(float(v)) for v in value)
    parsed = parse_border_weight(text)
    return list(parsed) if parsed is not None else None


def palette_option(cfg: TrainConfig) -> TrainConfig:
    """`cfg` with `palette` (a palette file's path, or `[[R, G, B], ...]`) as the colour list, checked
    against the classes the masks are read with."""
    if cfg.palette is None:
        return cfg
    from .palette import as_palette

    return replace(cfg, palette=as_palette(cfg.palette, cfg.mask_classes()).as_list())


def config_from_options(
    options: Mapping[str, Any], preset: str | None = None, device: str = "cpu"
) -> TrainConfig:
    """The one mapping from user options (command line, config file, API keywords) to a config:
    defaults, then the preset for the device (or `preset`), then every option given (None = not
    given). Unknown names and values out of range are a `UsageError` naming them."""
    from .intensity import window_option

    values = option_values(options)
    weights = values.pop("class_weights", None)
    cfg = resolve_config(
        {k: v for k, v in values.items() if not (k in ZERO_MEANS_NONE and v == 0)}, preset, device
    )
    unset: dict[str, Any] = {name: None for name in ZERO_MEANS_NONE if values.get(name) == 0}
    cfg = replace(cfg, device=device, **unset)
    if (preset or ("cpu" if device == "cpu" else "gpu")) == "gpu" and not {"batch_size", "lr"} & set(values):
        from .gpu_preset import fit_to_card

        cfg = fit_to_card(cfg, device)  # the preset's batch, and its rate, fitted to the card's memory
    cfg = palette_option(window_option(instance_options(cfg, values)))
    cfg = with_class_weights(cfg, weights)
    cfg.names()  # a class-name count that does not match the classes is an error before training
    return cfg
