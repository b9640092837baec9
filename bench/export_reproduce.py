"""How well a bioimage.io package reproduces the toolkit, and which tile and halo it needs.

    python bench/export_reproduce.py --model M.pth --image IMG [--truth MASK] [--halos 0 16 32 64 96]
                                     [--tiles 128 256 512] [--out bench/results/export_reproduce.json]

For one model and one whole image:
- tile dependence: the toolkit's mask (`Model.predict`) at each tile size against its default tile's;
- the package (`paulow.export`, bioimage.io format) predicted blockwise by bioimageio.core with each halo
  (the package's rdf.yaml rewritten per halo) against the toolkit's default mask: Dice of the masks
  and the largest probability difference; with `--truth`, each against the truth.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from machine import machine_line


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a) > 0, np.asarray(b) > 0
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def with_halo(package: Path, halo: int, folder: Path) -> Path:
    """A copy of `package` whose outputs declare `halo`."""
    target = folder / f"halo{halo}.zip"
    with zipfile.ZipFile(package) as src, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "rdf.yaml":
                # the spec's halo is at least 1: no halo is no `halo` key
                data = (
                    re.sub(rb"halo: \d+", b"halo: %d" % halo, data)
                    if halo
                    else re.sub(rb"\n *halo: \d+", b"", data)
                )
            dst.writestr(item, data)
    return target


def measure(args: argparse.Namespace) -> dict:
    import paulow
    from paulow.bioimageio_package import package_tile, predict_blockwise
    from paulow.io import read_image, read_mask

    model = paulow.load_model(args.model)
    raw = read_image(Path(args.image)).data[0]
    truth = read_mask(Path(args.truth))[0] if args.truth else None
    tile = package_tile(model.meta)
    reference = model.predict(raw, tile=tile)
    rows = {"tile": tile, "foreground_fraction": float(reference.mask.mean()), "tiles": [], "halos": []}
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
        for halo in args.halos:
            start = time.perf_counter()
            out = predict_blockwise(with_halo(package, halo, Path(tmp)), raw)
            mask = out["foreground"][0] if "foreground" in out else np.argmax(out["probabilities"], axis=0)
            rows["halos"].append(
                {
                    "halo": halo,
                    "dice_vs_toolkit": dice(mask, reference.mask),
                    "max_prob_diff": float(np.abs(out["probabilities"] - reference.probabilities).max()),
                    "dice_vs_truth": None if truth is None else dice(mask, truth),
                    "seconds": round(time.perf_counter() - start, 1),
                }
            )
            print(rows["halos"][-1], flush=True)
    if truth is not None:
        rows["toolkit_dice_vs_truth"] = dice(reference.mask, truth)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--truth")
    parser.add_argument("--halos", type=int, nargs="+", default=[0, 16, 32, 64, 96])
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
