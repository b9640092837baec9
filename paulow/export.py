"""Export a trained model for tools that cannot read a `.pth`: a bioimage.io package (Fiji/deepImageJ,
ilastik, QuPath), TorchScript and ONNX.

The exported network maps a normalised image `(N, C, H, W)` float32 to probabilities `(N, K, H, W)`
(sigmoid for K = 1 and one-vs-rest models, softmax for softmax models), with H and W any multiple of
`2 ** (depth - 1)` (16 for the default depth). The percentile normalisation (1 / 99.8 per channel)
and the threshold stay outside the graph: the metadata file beside the weights records both.
An ensemble exports as the mean of its members' probabilities.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .boundaries import mask_rule
from .errors import UsageError
from .model_file import stored_threshold
from .probability_net import ProbabilityNet, probability_net

FORMATS = ("bioimageio", "onnx", "torchscript")
OPSET = 18


def _example(loaded, net: ProbabilityNet) -> torch.Tensor:
    side = max(64, net.size_step * 4)
    return torch.rand(1, loaded.in_channels, side, side, generator=torch.Generator().manual_seed(0))


def export_torchscript(loaded, path: Path) -> Path:
    """A traced TorchScript module (`torch.jit.load` in Python, deepImageJ, QuPath)."""
    net = probability_net(loaded)
    with torch.no_grad():
        traced = torch.jit.trace(net, _example(loaded, net), check_trace=False)
    traced.save(str(path))
    return path


def export_onnx(loaded, path: Path) -> Path:
    """ONNX (opset 18) with dynamic batch, height and width."""
    net = probability_net(loaded)
    with torch.no_grad():
        torch.onnx.export(
            net,
            (_example(loaded, net),),
            str(path),
            input_names=["image"],
            output_names=["probabilities"],
            opset_version=OPSET,
            dynamo=False,
            dynamic_axes={
                "image": {0: "batch", 2: "height", 3: "width"},
                "probabilities": {0: "batch", 2: "height", 3: "width"},
            },
        )
    return path


def export_meta(loaded, net_step: int) -> dict:
    """What a tool needs beside the graph: normalisation, threshold, classes, input size rule."""
    meta = loaded.meta
    return {
        "format": "paulow-export",
        "input": "normalised image (N, C, H, W) float32",
        "in_channels": loaded.in_channels,
        "classes": loaded.classes,
        "activation": meta.get("activation", "sigmoid"),
        "size_step": net_step,
        "normalisation": meta.get("normalisation", {}),
        "threshold": stored_threshold(meta),
        "mask": mask_rule(meta),
        "class_names": meta.get("class_names"),
        "arch": meta.get("arch"),
    }


def export_model(model_path: Path, fmt: str, out_dir: Path | None = None, example: Any = None) -> list[Path]:
    """Write `<name>.onnx` or `<name>.torchscript.pt` and its metadata `<that name>.json` beside the
    model (or in `out_dir`); an existing file is never overwritten (`_2`, `_3`, ...). `example` (a raw
    image path or array) gives a bioimage.io package its cover and test tensors."""
    from .checkpoint import load_checkpoint
    from .io.atomic import unique_path

    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")
    model_path = Path(model_path)
    if fmt == "bioimageio":
        package = export_bioimageio(model_path, out_dir, example)
        validate_bioimageio(package)
        return [package]
    loaded = load_checkpoint(model_path, device="cpu")
    out_dir = Path(out_dir) if out_dir else model_path.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = model_path.stem
    target = unique_path(out_dir / (f"{stem}.onnx" if fmt == "onnx" else f"{stem}.torchscript.pt"))
    written = [export_onnx(loaded, target) if fmt == "onnx" else export_torchscript(loaded, target)]
    info = unique_path(out_dir / f"{target.name}.json")
    info.write_text(
        json.dumps(
            {**export_meta(loaded, probability_net(loaded).size_step), "weights": target.name}, indent=2
        )
        + "\n"
    )
    return written + [info]


# ---------------------------------------------------------------- bioimage.io
def export_bioimageio(model_path: Path, out_dir: Path | None = None, example: Any = None) -> Path:
    """A bioimage.io model package (zip, format 0.5) that reproduces `use_model.py`: TorchScript and
    ONNX weights, one declared tile and halo, the normalisation as preprocessing, the threshold as
    `binarize`, the rest of the post-processing as an attachment, cover and test tensors from
    `example` (a raw image path or array; see `paulow.bioimageio_package`)."""
    from .bioimageio_package import write_package
    from .checkpoint import load_checkpoint
    from .io.atomic import unique_path

    model_path = Path(model_path)
    loaded = load_checkpoint(model_path, device="cpu")
    if loaded.meta.get("normalisation", {}).get("method") == "window":
        from .errors import UsageError

        raise UsageError(
            f"'{model_path}' was trained with a fixed intensity window (--window), which this "
            "bioimage.io package cannot describe yet - export it as onnx or torchscript (their JSON "
            "records the window)"
        )
    out_dir = Path(out_dir) if out_dir else model_path.parent
    return write_package(
        loaded, model_path, unique_path(out_dir / f"{model_path.stem}.bioimageio.zip"), example
    )


def validate_bioimageio(package: Path) -> None:
    """Raise `ModelError` unless the package passes bioimageio.spec validation (offline)."""
    from bioimageio.spec import load_description

    from .errors import ModelError

    descr = load_description(package, perform_io_checks=True)
    if not hasattr(descr, "weights"):
        raise ModelError(f"'{package}' is not a valid bioimage.io model: {descr.validation_summary.format()}")
