"""The smaller tools behind `paulow summary`, `check-overfit`, `export` and `predict --input`:
network summaries, the one-batch overfit check, exporting a model file, and segmenting named files
and folders of any size chunk by chunk on one dask cluster."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import TrainConfig
from ..errors import PaulowError, UsageError

SUMMARY_SIZE = 256
_LEAVES = ("Conv2d", "ConvTranspose2d", "GroupNorm", "BatchNorm2d", "Dropout2d", "Linear")
Echo = Callable[[str], None]


def pick_device(requested: str | None = None) -> str:
    """The device to run on: `requested` ("cpu", "cuda", "cuda:N"), or "auto"/None for CUDA when
    present, else the CPU with the cores other processes leave free (`paulow.device`)."""
    from ..device import pick_device as pick

    return pick(requested or "auto")


def use_threads(device: str, busy: float | None = None) -> int | None:
    """Apply the CPU thread choice once, at the start of a command's work (`busy`: the cores other
    processes kept busy at startup, else sampled now); returns the count (None on a GPU). The rest
    of the API sets no threads."""
    from ..device import use_threads as apply

    return apply(device, busy)


@dataclass(frozen=True)
class NetworkSummary:
    """A network's layers (name, type, output shape, parameters), parameter count and forward
    convolution FLOPs per megapixel (a multiply-add is 2 FLOPs)."""

    title: str
    layers: list[dict]
    parameters: int
    gflop_per_megapixel: float


def layer_rows(model, in_channels: int, size: int = SUMMARY_SIZE) -> list[dict]:
    """One row per convolution / normalisation layer: name, type, output shape, parameters."""
    import torch

    rows, hooks = [], []
    for name, module in model.named_modules():
        if type(module).__name__ in _LEAVES or (type(module).__name__.endswith("Conv2d")):

            def hook(mod, _inp, out, name=name):
                rows.append(
                    {
                        "layer": name,
                        "type": type(mod).__name__,
                        "output": "x".join(str(d) for d in out.shape[1:]),
                        "params": sum(p.numel() for p in mod.parameters(recurse=False)),
                    }
                )

            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            model.eval()(torch.zeros(1, in_channels, size, size))
    finally:
        for h in hooks:
            h.remove()
    return rows


def network_summary(
    model: str | Path, *, in_channels: int = 1, classes: int = 1, width: int = 64, depth: int = 4
) -> NetworkSummary:
    """The summary of a model file (`.pth`), or of a new network named `model` ("attention_unet",
    ...) built with `in_channels`, `classes`, `width` and `depth`."""
    from ..checkpoint import load_checkpoint
    from ..models import build_model, count_conv_flops

    if str(model).lower().endswith(".pth"):
        loaded = load_checkpoint(Path(model))
        network, in_ch, title = loaded.models[0], loaded.in_channels, f"{model} ({loaded.meta['arch']})"
    else:
        network = build_model(str(model), in_channels=in_channels, classes=classes, width=width, depth=depth)
        in_ch, title = in_channels, f"{model} width {width} depth {depth}"
    layers = layer_rows(network, in_ch)
    flops = count_conv_flops(network, in_ch, SUMMARY_SIZE, SUMMARY_SIZE)
    return NetworkSummary(
        title=title,
        layers=layers,
        parameters=int(sum(p.numel() for p in network.parameters())),
        gflop_per_megapixel=flops / 1e9 / (SUMMARY_SIZE * SUMMARY_SIZE / 1e6),
    )


@dataclass(frozen=True)
class OverfitResult:
    """The loss at the first and last of `steps` steps on one fixed batch of `patches` patches, and
    the Dice on that batch at the end."""

    first_loss: float
    last_loss: float
    steps: int
    batch_dice: float
    patches: int


def training_pairs(images: Path, masks: Path, cfg: TrainConfig, palette: Path | None = None) -> list:
    """The image/mask pairs of two folders as `Slice` records for `cfg` (K >= 2 colour masks through
    `palette`, default `palette.txt` beside the masks, as training reads them)."""
    from ..pair_loading import load_pairs
    from ..palette import find_palette

    found = find_palette(masks, cfg.mask_classes(), palette)
    return load_pairs(images, masks, cfg.mask_classes(), palette=found)


def overfit_one_batch(slices: list, cfg: TrainConfig, device: str, steps: int) -> OverfitResult:
    """Train `cfg`'s network for `steps` steps on one fixed batch of `slices` (`training_pairs`), the
    patches with the most foreground; return the first and last loss and the batch Dice at the end."""
    import torch

    from ..losses import build_loss
    from ..patches import PatchDataset
    from ..training.network import build_network, loss_options
    from ..training.schedules import make_optimizer

    data = PatchDataset(slices, cfg.patch, cfg.overlap, 0.0, None, cfg.classes, cfg.seed)
    # The patches with the most foreground make the check meaningful (an empty batch is trivial).
    order = np.argsort([-float(data[i][1].sum()) for i in range(len(data))])[: cfg.batch_size]
    images = torch.stack([data[int(i)][0] for i in order]).to(device)
    targets = torch.stack([data[int(i)][1] for i in order]).to(device)
    model = build_network(cfg, images.shape[1], device, cfg.seed)
    for module in model.modules():  # dropout would keep the loss from reaching zero
        if isinstance(module, torch.nn.Dropout2d):
            module.p = 0.0
    loss_fn = build_loss(cfg.loss, **loss_options(cfg, slices))
    opt, sched = make_optimizer(model, cfg)
    losses = []
    model.train()
    for step in range(steps):
        sched.set(step / steps)
        loss = loss_fn(model(images), targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    with torch.inference_mode():
        pred = torch.sigmoid(model.eval()(images)) > 0.5
    truth = targets > 0.5
    tp = int((pred & truth).sum())
    denom = int(pred.sum() + truth.sum())
    return OverfitResult(
        first_loss=losses[0],
        last_loss=losses[-1],
        steps=steps,
        batch_dice=1.0 if denom == 0 else 2 * tp / denom,
        patches=len(order),
    )


def export_model_file(
    model: str | Path, format: str = "bioimageio", out: str | Path | None = None, example: Any = None
) -> list[Path]:
    """Write the model file `model` for other tools (`paulow.export`): `bioimageio`, `onnx` or
    `torchscript`, beside the model or in `out`, nothing overwritten; `example` (a raw image or its
    path) gives a bioimage.io package its cover and test tensors. Returns the written paths."""
    from ..export import export_model

    return export_model(Path(model), format, Path(out) if out is not None else None, example)


def find_inputs(paths: Sequence[Path]) -> list[Path]:
    """Files as given; a folder: its OME-Zarr images when it is not one itself, then its images."""
    from ..io.listing import list_images
    from ..lazy import is_lazy_input

    found: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise UsageError(f"--input '{path}': no such file or folder - check the path")
        if (
            path.is_dir()
            and path.suffix.lower() != ".zarr"
            and not (path / ".zattrs").exists()
            and not (path / "zarr.json").exists()
        ):
            found += sorted(
                p for p in path.iterdir() if p.is_dir() and is_lazy_input(p) and p.suffix.lower() == ".zarr"
            ) + list_images(path)
        else:
            found.append(path)
    if not found:
        raise UsageError(
            f"--input {' '.join(map(str, paths))}: no images there - give image files, "
            "OME-Zarr folders or folders holding them"
        )
    return found


@dataclass(frozen=True)
class InputResult:
    """One input of `predict_inputs`: the files written, or the error that stopped it."""

    path: Path
    outputs: list[Path] = field(default_factory=list)
    error: PaulowError | None = None


def predict_inputs(
    model: Any,
    inputs: Sequence[Path],
    out: Path,
    *,
    scheduler: Any = None,
    device: str = "cpu",
    progress: bool = False,
    echo: Echo | None = None,
    **options: Any,
) -> Iterator[InputResult]:
    """Segment each input (`Model.predict_file` options: chunk, format, threshold, min_size, tile,
    overlap, halo, batch_size, tta) into `out` on one dask cluster for all of them, yielding each
    input's result as it finishes; an input that fails with a `PaulowError` does not stop the others."""
    from ..chunked_run import predict_file
    from ..dask_runner import TaskRunner

    fmt = options.pop("format", None)
    with TaskRunner(scheduler, device) as runner:
        for path in inputs:
            try:
                record = predict_file(
                    model,
                    path,
                    Path(out),
                    fmt=fmt,
                    runner=runner,
                    device=device,
                    progress=progress,
                    echo=echo,
                    **options,
                )
            except PaulowError as exc:  # messages name the file; the other inputs go on
                yield InputResult(path, error=exc)
                continue
            yield InputResult(path, outputs=[Path(p) for p in record["outputs"]])
