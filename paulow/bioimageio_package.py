"""A bioimage.io model package (format 0.5) that reproduces `use_model.py`.

What makes a consumer's result match the toolkit's (docs/export.md has the measurements):
- The network's output depends on the tile it sees (GroupNorm statistics are per tile), so the
  package carries the toolkit's tiling: its TorchScript weights are `paulow.package_blend.BlendedNet`,
  the network on the toolkit's default tile (`package_tile`) blended over overlapping tiles with the
  toolkit's Gaussian weights. The input takes any size from half a tile up; a whole image given at
  once (bioimageio.core's `predict` without blocking) gives the toolkit's probabilities.
- No halo (`PACKAGE_HALO`): a declared halo makes bioimageio.core pad the image before predicting
  (even without blocking), and the padded tiles no longer match the toolkit's.
- The percentile normalisation is the `scale_range` preprocessing (whole image, per channel).
- The threshold is a `binarize` post-processing of a second output, `foreground` (the foreground
  probability, 1 - P(background) for boundary models); the rest (smallest object, seeded watershed)
  is the attachment `paulow_postprocess.py` with its parameters in `postprocess.json`.
- Cover and test tensors come from a real image (`example`), never from noise.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from . import attachment_postprocess
from .boundaries import is_boundary_model, mask_rule
from .model_file import stored_threshold
from .package_blend import blended_script

# a halo pads the whole image before the package's own blending: the edge tiles would then differ
# from the toolkit's (docs/export.md)
PACKAGE_HALO = 0


def package_tile(meta: dict) -> int:
    """The tile the package declares: the toolkit's default tile for this model (CPU and GPU alike)."""
    from .infer import suggest_tile

    return suggest_tile(int(meta.get("patch", 128)), "cpu")


def package_halo(tile: int, step: int) -> int:
    """Pixels dropped on each side of a tile by blockwise prediction: `PACKAGE_HALO` (0: none), at
    most a quarter of the tile, a multiple of `step`."""
    return min(PACKAGE_HALO, tile // 4) // step * step


def postprocess_params(meta: dict) -> dict:
    """`postprocess.json`: what `paulow_postprocess.py` needs to turn probabilities into masks."""
    if is_boundary_model(meta):
        rule = "boundary"
    elif int(meta.get("classes", 1)) <= 1:
        rule = "binary"
    else:
        rule = "classes"
    return {
        "format": "paulow-postprocess",
        "version": attachment_postprocess.VERSION,
        "rule": rule,
        "threshold": stored_threshold(meta),
        "min_object_px": int(meta.get("min_object_px") or 0),
        "description": mask_rule(meta),
        "class_names": meta.get("class_names"),
    }


def scale_range(image: np.ndarray, low: float, high: float, eps: float = 1e-6) -> np.ndarray:
    """bioimage.io's `scale_range` preprocessing of one raw (C, H, W) image, per channel over y, x."""
    flat = image.reshape(image.shape[0], -1).astype(np.float64)
    lo = np.quantile(flat, low / 100, axis=1)[:, None, None]
    hi = np.quantile(flat, high / 100, axis=1)[:, None, None]
    return ((image - lo) / (hi - lo + eps)).astype(np.float32)


def example_image(example: Any, in_channels: int) -> tuple[np.ndarray, str]:
    """The first page of `example` (a path or an (H, W) / (C, H, W) array) as raw (C, H, W), and
    where it came from; without one, a synthetic nuclei image (seed 0), said so in the package."""
    from .predict import match_channels

    if example is None:
        from .synthetic import nuclei_image

        image = nuclei_image((512, 512), seed=0)[0][None]
        return np.repeat(image, in_channels, axis=0), "a synthetic nuclei image (no example image was given)"
    if isinstance(example, (str, Path)):
        from .io.read import read_image

        page, source = read_image(Path(example)).data[0], Path(example).name
    else:
        array = np.asarray(example)
        page, source = (array[None] if array.ndim == 2 else array), "an example array"
    return match_channels(page[None], in_channels, str(source))[0], source


def _window(mask: np.ndarray, tile: int) -> tuple[slice, slice]:
    """The `tile` x `tile` window (on a tile / 4 grid) holding the most foreground of `mask`."""
    height, width = mask.shape
    stride = max(tile // 4, 1)
    best, at = -1, (0, 0)
    for y in range(0, max(height - tile, 0) + 1, stride):
        for x in range(0, max(width - tile, 0) + 1, stride):
            count = int(np.count_nonzero(mask[y : y + tile, x : x + tile]))
            if count > best:
                best, at = count, (y, x)
    return slice(at[0], at[0] + tile), slice(at[1], at[1] + tile)


def _padded(image: np.ndarray, tile: int) -> np.ndarray:
    """Reflect-pad (C, H, W) up to `tile` on each short side (as the toolkit does)."""
    pads = [(0, 0)] + [
        ((tile - n) // 2, tile - n - (tile - n) // 2) if n < tile else (0, 0) for n in image.shape[1:]
    ]
    return np.pad(image, pads, mode="reflect") if any(p != (0, 0) for p in pads) else image


def _cover(image: np.ndarray, mask: np.ndarray, path: Path) -> Path:
    """`image | image with the mask overlaid` (red), at most 512 px high, as PNG."""
    from .io.write import write_png
    from .report import display_image

    window = _window(mask, min(512, *mask.shape))
    shown = display_image(image[:, window[0], window[1]])
    rgb = np.repeat(shown[..., None], 3, axis=2) if shown.ndim == 2 else shown
    overlay = rgb.copy()
    objects = mask[window] > 0
    overlay[objects] = 0.55 * overlay[objects] + 0.45 * np.array([1.0, 0.1, 0.1])
    gap = np.ones((rgb.shape[0], 4, 3), dtype=np.float32)
    return write_png(path, (np.concatenate([rgb, gap, overlay], axis=1) * 255).round().astype(np.uint8))


def write_package(loaded, model_path: Path, target: Path, example: Any = None) -> Path:
    """Write the package zip for a loaded model file at `target` (a free path)."""
    from .predict import predict_pages
    from .probability_net import probability_net

    meta, params = loaded.meta, postprocess_params(loaded.meta)
    net = probability_net(loaded)
    tile, norm = package_tile(meta), meta.get("normalisation", {})
    halo = package_halo(tile, net.size_step)
    raw, source = example_image(example, loaded.in_channels)
    probs = predict_pages(loaded.models, meta, raw[None], tile=tile, device="cpu")[0]
    mask = attachment_postprocess.mask_from_probabilities(probs, params)
    window = _window(mask, tile)
    crop = _padded(raw[:, window[0], window[1]].astype(np.float32), tile)[None]
    low, high = float(norm.get("low", 1.0)), float(norm.get("high", 99.8))
    overlap = float(meta.get("overlap", 0.5))
    blended = blended_script(net, loaded.in_channels, tile, overlap, params["rule"])
    with torch.no_grad():
        outputs = blended(torch.from_numpy(scale_range(crop[0], low, high)[None]))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        blended.save(str(folder / "weights.torchscript.pt"))
        np.save(folder / "test_input.npy", crop)
        np.save(folder / "test_output.npy", outputs[0].numpy())
        binary = params["rule"] != "classes"
        if binary:
            np.save(folder / "test_foreground.npy", (outputs[1] > params["threshold"]).float().numpy())
        _cover(raw, mask, folder / "cover.png")
        shutil.copy(attachment_postprocess.__file__, folder / "paulow_postprocess.py")
        (folder / "postprocess.json").write_text(json.dumps(params, indent=2) + "\n")
        (folder / "README.md").write_text(_documentation(meta, model_path, tile, overlap, source, params))
        (folder / "LICENSE").write_text("MIT License - the weights were trained with PAULow by its user.\n")
        rdf = _rdf(
            loaded,
            model_path.stem,
            (tile, overlap, halo),
            (low, high),
            probs.shape[0],
            params if binary else None,
        )
        import yaml

        (folder / "rdf.yaml").write_text(yaml.safe_dump(rdf, sort_keys=False))
        target.parent.mkdir(parents=True, exist_ok=True)
        # rdf.yaml at the zip's root (bioimageio.spec's own packager fails with some pydantic versions);
        # `paulow.export.validate_bioimageio` checks the result
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(folder.iterdir()):
                archive.write(path, path.name)
    return target


def _documentation(meta: dict, model_path: Path, tile: int, overlap: float, source: str, params: dict) -> str:
    return (
        f"# {model_path.stem}\n\nA PAULow model ({meta.get('arch')}). Input: a raw image, normalised per "
        f"channel to its 1st-99.8th percentiles (`scale_range`).\n\n"
        f"## Tiling\nThe network's output depends on the tile it sees, so the weights carry PAULow's own "
        f"tiling: {tile} x {tile} px tiles overlapping by {overlap:g}, blended with Gaussian weights. Give "
        "the whole image at once (bioimageio.core's `predict` without blocking) to get exactly what "
        "PAULow's `use_model.py` gives; predicting in blocks works but changes the masks near block "
        f"borders (PAULow's docs/export.md measures how much). Images under {tile // 2} px on a side: "
        f"reflect-pad them to {tile} px first.\n\n"
        f"## Outputs\n- `probabilities`: per class ({', '.join(_class_names(meta, None))}).\n"
        f"- `foreground` (binary and boundary models): the mask, {params['description']} "
        "(`binarize` post-processing).\n\n"
        "## Post-processing as `use_model.py`\n`paulow_postprocess.py` (numpy, scipy, scikit-image; no "
        "PAULow) with `postprocess.json` turns `probabilities` into the mask (smallest objects of "
        f"{params['min_object_px']} px removed) and instance labels (seeded watershed for boundary models); "
        "see its docstring.\n\n"
        f"Cover and test tensors: {source}.\n"
    )


def _class_names(meta: dict, count: int | None) -> list[str]:
    names = meta.get("class_names")
    if names:
        return [str(n) for n in names]
    if is_boundary_model(meta):
        return ["background", "interior", "boundary"]
    count = count or int(meta.get("classes", 1))
    return ["foreground"] if count == 1 else [f"class{i}" for i in range(count)]


def _output(name: str, channels: list[str], halo: int, test: str, post: list | None = None) -> dict:
    space = [
        {
            "type": "space",
            "id": axis,
            "size": {"tensor_id": "raw", "axis_id": axis},
            **({"halo": halo} if halo else {}),
        }
        for axis in ("y", "x")
    ]  # the spec's halo is >= 1
    out = {
        "id": name,
        "axes": [{"type": "batch"}, {"type": "channel", "channel_names": channels}, *space],
        "test_tensor": {"source": test},
        "data": {"type": "float32"},
    }
    if post:
        out["postprocessing"] = post
    return out


def _rdf(
    loaded,
    name: str,
    tiling: tuple[int, float, int],
    percentiles: tuple[float, float],
    out_channels: int,
    params: dict | None,
) -> dict:
    tile, overlap, halo = tiling
    outputs = [_output("probabilities", _class_names(loaded.meta, out_channels), halo, "test_output.npy")]
    if params is not None:
        outputs.append(
            _output(
                "foreground",
                ["foreground"],
                halo,
                "test_foreground.npy",
                [{"id": "binarize", "kwargs": {"threshold": params["threshold"]}}],
            )
        )
    return {
        **_about(name),
        "inputs": [_input(loaded.in_channels, tile, percentiles)],
        "outputs": outputs,
        "weights": {
            "torchscript": {
                "source": "weights.torchscript.pt",
                "pytorch_version": torch.__version__.split("+")[0],
            },
        },
        "config": {
            "paulow": {
                "tile": tile,
                "overlap": overlap,
                "halo": halo,
                "postprocess": params or postprocess_params(loaded.meta),
            }
        },
    }


def _about(name: str) -> dict:
    """The RDF's description of the package: name, authors, licence, files to show and cite."""
    return {
        "format_version": "0.5.4",
        "type": "model",
        "name": f"PAULow {name}"[:128],
        "description": "Attention U-Net trained with PAULow's threshold-based dynamic loss.",
        "authors": [{"name": "PAULow user"}],
        "license": "MIT",
        "documentation": "README.md",
        "covers": ["cover.png"],
        "tags": ["segmentation", "paulow", "attention-unet"],
        "cite": [
            {
                "text": "PAULow: patch-based attention U-Net with a threshold-based dynamic loss",
                "url": "https://github.com/NTUMMIO/PAULow",
            }
        ],
        "attachments": [{"source": "paulow_postprocess.py"}, {"source": "postprocess.json"}],
    }


def _input(in_channels: int, tile: int, percentiles: tuple[float, float]) -> dict:
    """The raw input: any size from half a tile, scaled between the training percentiles."""
    channels = [f"c{i}" for i in range(in_channels)]
    return {
        "id": "raw",
        "axes": [
            {"type": "batch"},
            {"type": "channel", "channel_names": channels},
            *[{"type": "space", "id": a, "size": {"min": tile // 2, "step": 1}} for a in ("y", "x")],
        ],
        "test_tensor": {"source": "test_input.npy"},
        "data": {"type": "float32"},
        "preprocessing": [
            {
                "id": "scale_range",
                "kwargs": {
                    "axes": ["y", "x"],
                    "min_percentile": percentiles[0],
                    "max_percentile": percentiles[1],
                },
            }
        ],
    }


def _pipeline(package: str | Path):
    from bioimageio.core import create_prediction_pipeline, load_description
    from bioimageio.spec.model import AnyModelDescr

    descr = cast(AnyModelDescr, load_description(package, perform_io_checks=False))  # a model package
    return descr, create_prediction_pipeline(descr, weight_format="torchscript")


def _outputs(result) -> dict[str, np.ndarray]:
    return {str(name): np.asarray(tensor.data)[0] for name, tensor in result.members.items()}


def predict_package(package: str | Path, image: np.ndarray) -> dict[str, np.ndarray]:
    """Run `package` on one whole raw (C, H, W) image with bioimageio.core, as a consumer would
    (`bioimageio.core.predict` without blocking: the declared pre- and post-processing, the
    package's own tiling): each output as (channels, H, W)."""
    from bioimageio.core import predict

    descr, pipeline = _pipeline(package)
    return _outputs(predict(model=pipeline, inputs={"raw": np.asarray(image, dtype=np.float32)[None]}))


def predict_blockwise(package: str | Path, image: np.ndarray, block: int) -> dict[str, np.ndarray]:
    """`predict_package` on `block` x `block` px blocks of the image (bioimageio.core's fixed
    blocking), as a consumer with a memory limit would: each output as (channels, H, W)."""
    from bioimageio.core.digest_spec import create_sample_for_model

    descr, pipeline = _pipeline(package)
    sample = create_sample_for_model(descr, inputs={"raw": np.asarray(image, dtype=np.float32)[None]})
    shape = {"raw": {"batch": 1, "channel": image.shape[0], "y": block, "x": block}}
    return _outputs(pipeline.predict_sample_with_fixed_blocking(sample, input_block_shape=shape))
