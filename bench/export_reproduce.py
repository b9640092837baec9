"""How well a bioimage.io package reproduces the toolkit, whole and in blocks.

    python bench/export_reproduce.py --model M.pth --image IMG [--truth MASK] [--blocks 512 1024]
                                     [--tiles 128 256 512] [--out bench/results/export_reproduce.json]

For one model and one whole image:
- tile dependence: the toolkit's mask (`Model.predict`) at each tile size against its default tile's;
- the package (`paulow.export`, bioimage.io format) run by bioimageio.core on the whole image
  (`predict_package`) and in fixed blocks of each `--blocks` size (`predict_blockwise`), against the
  toolkit's default mask: Dice of the masks and the largest probability difference; with `--truth`,
  each against the truth.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from machine import machine_line


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def measure(args: argparse.Namespace) -> dict:
    import paulow
    from paulow.api import read_image, read_mask
    from paulow.attachment_postprocess import mask_from_probabilities
    from paulow.bioimageio_package import package_tile, postprocess_params, predict_blockwise, predict_package

    model = paulow.load_model(args.model)
    raw = read_image(Path(args.image))[0]
    truth = read_mask(Path(args.truth))[0] if args.truth else None
    tile, params = package_tile(model.meta), postprocess_params(model.meta)
    reference = model.predict(raw, tile=tile)
    rows = {"tile": tile, "foreground_fraction": float(reference.mask.mean()), "tiles": [], "package": []}
    for size in args.tiles:
        pred = model.predict(raw, tile=size)
        rows["tiles"].append(
            {
                "tile": size,
                "dice_vs_default_tile": dice(pred.mask, reference.mask),
                "dice_vs_truth": None if truth is None else dice(pred.mask, truth),
            }
        )
        print(rows["tiles"][-1], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        package = model.export("bioimageio", tmp, example=args.image)[0]
        for block in [None, *args.blocks]:
            start = time.perf_counter()
            out = predict_package(package, raw) if block is None else predict_blockwise(package, raw, block)
            mask = mask_from_probabilities(out["probabilities"], params)  # the package's attachment
            rows["package"].append(
                {
                    "blocks": "whole image" if block is None else f"{block} px",
                    "dice_vs_toolkit": dice(mask, reference.mask),
                    "max_prob_diff": float(np.abs(out["probabilities"] - reference.probabilities).max()),
                    "dice_vs_truth": None if truth is None else dice(mask, truth),
                    "seconds": round(time.perf_counter() - start, 1),
                }
            )
            print(rows["package"][-1], flush=True)
    if truth is not None:
        rows["toolkit_dice_vs_truth"] = dice(reference.mask, truth)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--truth")
    parser.add_argument("--blocks", type=int, nargs="*", default=[512, 1024])
    parser.add_argument("--tiles", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--out")
    args = parser.parse_args()
    result = {
        "command": " ".join(sys.argv),
        "machine": machine_line(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        **measure(args),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
