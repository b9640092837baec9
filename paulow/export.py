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
import zipfile
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from .boundaries import mask_rule
from .errors import UsageError

FORMATS = ("bioimageio", "onnx", "torchscript")
OPSET = 18


class ProbabilityNet(nn.Module):
    """The members' encoder-decoder (no padding, no stored attention maps) and the output activation,
    averaged over an ensemble. Inputs must be a multiple of `size_step` on each side."""

    def __init__(self, members: Sequence[nn.Module], softmax: bool) -> None:
        super().__init__()
        self.members = nn.ModuleList(getattr(m, "_orig_mod", m) for m in members)
        self.softmax = softmax
        self.size_step = 2 ** (int(self.members[0].depth) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = None
        for member in self.members:
            logits = member._run(x)
            probs = torch.softmax(logits, dim=1) if self.softmax else torch.sigmoid(logits)
            total = probs if total is None else total + probs
        return total / len(self.members)


def probability_net(loaded) -> ProbabilityNet:
    """The export graph of a loaded model file (`paulow.checkpoint.LoadedModel`), on the CPU, eval mode."""
    softmax = loaded.meta.get("activation") == "softmax"
    net = ProbabilityNet([m.to("cpu").eval() for m in loaded.models], softmax).eval()
    for member in net.members:
        member.to(memory_format=torch.contiguous_format)
    return net


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
        torch.onnx.export(net, (_example(loaded, net),), str(path), input_names=["image"],
                          output_names=["probabilities"], opset_version=OPSET, dynamo=False,
                          dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                                        "probabilities": {0: "batch", 2: "height", 3: "width"}})
    return path


def export_meta(loaded, net_step: int) -> dict:
    """What a tool needs beside the graph: normalisation, threshold, classes, input size rule."""
    meta = loaded.meta
    return {"format": "paulow-export", "input": "normalised image (N, C, H, W) float32",
            "in_channels": loaded.in_channels, "classes": loaded.classes,
            "activation": meta.get("activation", "sigmoid"), "size_step": net_step,
            "normalisation": meta.get("normalisation", {}), "threshold": meta.get("threshold", 0.5),
            "mask": mask_rule(meta), "class_names": meta.get("class_names"), "arch": meta.get("arch")}


def export_model(model_path: Path, fmt: str, out_dir: Path | None = None) -> list[Path]:
    """Write `<name>.onnx` or `<name>.torchscript.pt` and its metadata `<that name>.json` beside the
    model (or in `out_dir`); an existing file is never overwritten (`_2`, `_3`, ...)."""
    from .checkpoint import load_checkpoint
    from .io import unique_path

    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")
    model_path = Path(model_path)
    if fmt == "bioimageio":
        package = export_bioimageio(model_path, out_dir)
        validate_bioimageio(package)
        return [package]
    loaded = load_checkpoint(model_path, device="cpu")
    out_dir = Path(out_dir) if out_dir else model_path.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = model_path.stem
    target = unique_path(out_dir / (f"{stem}.onnx" if fmt == "onnx" else f"{stem}.torchscript.pt"))
    written = [export_onnx(loaded, target) if fmt == "onnx" else export_torchscript(loaded, target)]
    info = unique_path(out_dir / f"{target.name}.json")
    info.write_text(json.dumps({**export_meta(loaded, probability_net(loaded).size_step),
                                "weights": target.name}, indent=2) + "\n")
    return written + [info]


# ---------------------------------------------------------------- bioimage.io
def _normalised_like_bioimageio(image: torch.Tensor, low: float, high: float, eps: float = 1e-6) -> torch.Tensor:
    """`scale_range` of the bioimage.io spec: per sample and channel over y, x."""
    flat = image.flatten(2).double()
    lo = torch.quantile(flat, low / 100, dim=2)[..., None, None]
    hi = torch.quantile(flat, high / 100, dim=2)[..., None, None]
    return ((image.double() - lo) / (hi - lo + eps)).float()


def _cover(image: torch.Tensor, probs: torch.Tensor, path: Path) -> None:
    from .report import sample_panel

    sample_panel(image[0].numpy(), None, probs[0, -1].numpy(), path, title="input | probability")


def export_bioimageio(model_path: Path, out_dir: Path | None = None) -> Path:
    """A bioimage.io model package (zip, format 0.5) with TorchScript and ONNX weights, the percentile
    normalisation as preprocessing (`scale_range` 1 / 99.8 per channel), probabilities as output,
    test tensors, a cover, documentation and the licence."""
    import tempfile

    import numpy as np
    import yaml

    from .checkpoint import load_checkpoint
    from .io import unique_path

    model_path = Path(model_path)
    loaded = load_checkpoint(model_path, device="cpu")
    net = probability_net(loaded)
    norm = loaded.meta.get("normalisation", {})
    if norm.get("method") == "window":
        from .errors import UsageError

        raise UsageError(f"'{model_path}' was trained with a fixed intensity window (--window), which this "
                         "bioimage.io package cannot describe yet - export it as onnx or torchscript (their JSON "
                         "records the window)")
    low, high = float(norm.get("low", 1.0)), float(norm.get("high", 99.8))
    step = net.size_step
    side = max(64, 4 * step)
    raw = torch.rand(1, loaded.in_channels, side, side, generator=torch.Generator().manual_seed(1)) * 200 + 20
    with torch.no_grad():
        probs = net(_normalised_like_bioimageio(raw, low, high))
    out_dir = Path(out_dir) if out_dir else model_path.parent
    target = unique_path(out_dir / f"{model_path.stem}.bioimageio.zip")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        export_torchscript(loaded, folder / "weights.torchscript.pt")
        export_onnx(loaded, folder / "weights.onnx")
        np.save(folder / "test_input.npy", raw.numpy())
        np.save(folder / "test_output.npy", probs.numpy())
        _cover(raw, probs, folder / "cover.png")
        (folder / "README.md").write_text(_documentation(loaded, model_path))
        (folder / "LICENSE").write_text("MIT License - the weights were trained with PAULow by its user.\n")
        rdf = _rdf(loaded, model_path.stem, step, low, high, probs.shape[1])
        (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf, sort_keys=False))
        out_dir.mkdir(parents=True, exist_ok=True)
        # the package is the folder zipped with rdf.yaml at its root (bioimageio.spec's own packager
        # fails with some pydantic versions); `validate_bioimageio` checks the result
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.iterdir()):
                archive.write(path, path.name)
    return target


def validate_bioimageio(package: Path) -> None:
    """Raise `ModelError` unless the package passes bioimageio.spec validation (offline)."""
    from bioimageio.spec import load_description

    from .errors import ModelError

    descr = load_description(package, perform_io_checks=True)
    if not hasattr(descr, "weights"):
        raise ModelError(f"'{package}' is not a valid bioimage.io model: {descr.validation_summary.format()}")


def _documentation(loaded, model_path: Path) -> str:
    meta = loaded.meta
    return (f"# {model_path.stem}\n\nA PAULow model ({meta.get('arch')}), trained on "
            f"{len(meta.get('training_files', {}) or [])} image file(s). Input: raw image, normalised per channel "
            f"to the 1st-99.8th percentiles. Output: probabilities; the mask: {mask_rule(meta)}."
            f"\n\nTraining data summary: "
            f"{json.dumps(meta.get('dataset_summary', {}), default=str)[:2000]}\n")


def _rdf(loaded, name: str, step: int, low: float, high: float, out_channels: int) -> dict:
    import torch as _torch

    classes = loaded.meta.get("class_names") or (["foreground"] if out_channels == 1 else
                                                  [f"class{i}" for i in range(out_channels)])
    space = [{"type": "space", "id": axis, "size": {"min": step * 4, "step": step}} for axis in ("y", "x")]
    return {
        "format_version": "0.5.4", "type": "model", "name": f"PAULow {name}"[:128],
        "description": "Attention U-Net trained with PAULow's threshold-based dynamic loss.",
        "authors": [{"name": "PAULow user"}], "license": "MIT", "documentation": "README.md",
        "covers": ["cover.png"], "tags": ["segmentation", "paulow", "attention-unet"],
        "cite": [{"text": "PAULow: patch-based attention U-Net with a threshold-based dynamic loss",
                  "url": "https://github.com/NTUMMIO/PAULow"}],
        "inputs": [{"id": "raw", "axes": [{"type": "batch"},
                                          {"type": "channel",
                                           "channel_names": [f"c{i}" for i in range(loaded.in_channels)]},
                                          *space],
                    "test_tensor": {"source": "test_input.npy"}, "data": {"type": "float32"},
                    "preprocessing": [{"id": "scale_range",
                                       "kwargs": {"axes": ["y", "x"], "min_percentile": low,
                                                  "max_percentile": high}}]}],
        "outputs": [{"id": "probabilities",
                     "axes": [{"type": "batch"}, {"type": "channel", "channel_names": list(classes)},
                              *[{"type": "space", "id": axis, "size": {"tensor_id": "raw", "axis_id": axis}}
                                for axis in ("y", "x")]],
                     "test_tensor": {"source": "test_output.npy"}, "data": {"type": "float32"}}],
        "weights": {"torchscript": {"source": "weights.torchscript.pt",
                                    "pytorch_version": _torch.__version__.split("+")[0]},
                    "onnx": {"source": "weights.onnx", "opset_version": OPSET}},
    }
