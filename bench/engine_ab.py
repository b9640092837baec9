"""The device engine against the code before it, in one run: whole-image `predict_slice` with this
checkout's `paulow.infer` and with `paulow/infer.py` of git revision `--base` (loaded from git as a
second module), alternated `--repeats` times on the same image and network; then segmenting
`--files` files with `Model.segment_files` (background I/O) against the sequential loop
(`predict_stack` + `write_mask` per file); then the device probe's choice against the defaults
(tile 256, batch 8 on a CPU), timed on the same image.

    python bench/engine_ab.py [--base 319a627] [--widths 16] [--size 512] [--repeats 3]
                              [--files 4] [--device cpu|cuda] [--json OUT]

Ratios are `after / before` speeds (> 1: faster now). Medians over the repeats.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import describe, pick_device, write_json
from machine import machine_line

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="319a627", help="git revision of the code before")
    parser.add_argument("--widths", type=int, nargs="+", default=[16])
    parser.add_argument("--size", type=int, default=512, help="side of the square test image")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--files", type=int, default=4, help="files for the background I/O run (0: skip)")
    parser.add_argument("--skip-probe", action="store_true")
    parser.add_argument(
        "--pointwise",
        action="store_true",
        help="a 1x1 convolution instead of the U-Net: the engine's own cost, not the network's",
    )
    parser.add_argument("--device", default=None)
    parser.add_argument("--json", default=None)
    return parser.parse_args(argv)


def old_infer(base: str):
    """`paulow/infer.py` at `base` as the module `paulow._infer_before` (relative imports work)."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{base}:paulow/infer.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    spec = importlib.util.spec_from_loader("paulow._infer_before", loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "paulow"
    sys.modules[spec.name] = module
    exec(compile(source, f"{base}:paulow/infer.py", "exec"), module.__dict__)  # noqa: S102 - our own file
    return module


def network(width: int, device: torch.device, pointwise: bool = False):
    from paulow.models import build_model

    torch.manual_seed(0)
    if pointwise:
        return torch.nn.Conv2d(1, 1, 1).to(device).eval()
    return (
        build_model("paulow_attention_unet", in_channels=1, classes=1, width=width, depth=4).to(device).eval()
    )


def seconds(call) -> float:
    started = time.perf_counter()
    call()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - started


def engine_rows(args, device, before) -> list[dict]:
    from paulow import infer

    image = np.random.default_rng(0).normal(size=(1, args.size, args.size)).astype(np.float32)
    rows = []
    for width in args.widths:
        net = network(width, device, args.pointwise)
        options = {"tile": args.tile, "overlap": 0.5, "batch_size": 8, "device": device}
        old, new = before.predict_slice(net, image, **options), infer.predict_slice(net, image, **options)
        times = {"before": [], "after": []}
        for _ in range(args.repeats):
            times["before"].append(
                seconds(lambda net=net, options=options: before.predict_slice(net, image, **options))
            )
            times["after"].append(
                seconds(lambda net=net, options=options: infer.predict_slice(net, image, **options))
            )
        b, a = float(np.median(times["before"])), float(np.median(times["after"]))
        rows.append(
            {
                "width": 0 if args.pointwise else width,
                "size": args.size,
                "tile": args.tile,
                "before_s": b,
                "after_s": a,
                "speed_ratio": b / a,
                "max_abs_diff": float(np.abs(old - new).max()),
                "masks_equal": bool(((old > 0.5) == (new > 0.5)).all()),
            }
        )
        print(
            f"engine {'1x1 conv' if args.pointwise else f'width {width}'}, {args.size}^2, tile {args.tile}: before {b:.2f} s, after {a:.2f} s, "
            f"ratio {b / a:.3f}; max |diff| {rows[-1]['max_abs_diff']:.2e}, masks equal {rows[-1]['masks_equal']}"
        )
    return rows


def files_row(args, device) -> dict:
    from paulow import io
    from paulow.api import Model, synthetic_image

    width = args.widths[0]
    meta = {
        "arch": "paulow_attention_unet",
        "in_channels": 1,
        "classes": 1,
        "patch": 128,
        "threshold": 0.5,
        "normalisation": {"method": "percentile", "low": 1.0, "high": 99.8},
    }
    model = Model([network(width, device)], meta, str(device))
    times = {"sequential": [], "background": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = [
            io.write_tiff(
                folder / f"img{i}.tif",
                synthetic_image("nuclei", (args.size, args.size), seed=i, bit_depth=16)[0],
            )
            for i in range(args.files)
        ]
        for repeat in range(args.repeats):
            out_seq, out_bg = folder / f"seq{repeat}", folder / f"bg{repeat}"

            def sequential(out_seq: Path = out_seq) -> None:
                for path in paths:
                    preds = model.predict_stack(path, tile=args.tile)
                    io.write_mask(
                        io.unique_path(out_seq / f"{path.stem}_mask.tif"),
                        io.binary_to_uint8(np.stack([p.mask for p in preds])),
                    )

            times["sequential"].append(seconds(sequential))
            times["background"].append(
                seconds(lambda out_bg=out_bg: model.segment_files(paths, out_bg, tile=args.tile))
            )
            same = all(
                (io.read_mask(out_seq / p.name) == io.read_mask(out_bg / p.name)).all()
                for p in sorted(out_seq.iterdir())
            )
    s, b = float(np.median(times["sequential"])), float(np.median(times["background"]))
    print(
        f"{args.files} files of {args.size}^2, width {width}: sequential {s:.2f} s, background I/O {b:.2f} s, "
        f"ratio {s / b:.3f}; masks equal {same}"
    )
    return {
        "files": args.files,
        "size": args.size,
        "width": width,
        "sequential_s": s,
        "background_s": b,
        "speed_ratio": s / b,
        "masks_equal": same,
    }


def probe_row(args, device) -> dict:
    from paulow import device_probe, infer

    width = args.widths[0]
    net = network(width, device)
    meta = {"arch": "paulow_attention_unet", "arch_args": {"width": width}, "in_channels": 1, "patch": 128}
    image = np.random.default_rng(0).normal(size=(1, args.size, args.size)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        import os

        os.environ["PAULOW_CACHE_DIR"] = tmp
        # the work of a typical run: 50 images of this size
        started = time.perf_counter()
        choice, _ = device_probe.probe(
            [net], meta, device, 50 * args.size**2 / 1e6, overlap=0.5, largest_side=args.size
        )
        probe_s = time.perf_counter() - started
    print(f"probe: {probe_s:.1f} s; {choice.reason}")
    default = {"tile": infer.suggest_tile(128, device), "batch_size": 8}
    chosen = {"tile": choice.tile, "batch_size": choice.batch_size}
    times = {"default": [], "probed": []}
    for _ in range(args.repeats):
        times["default"].append(seconds(lambda: infer.predict_slice(net, image, device=device, **default)))
        times["probed"].append(seconds(lambda: infer.predict_slice(net, image, device=device, **chosen)))
    d, p = float(np.median(times["default"])), float(np.median(times["probed"]))
    print(f"default {default}: {d:.2f} s; probed {chosen}: {p:.2f} s; ratio {d / p:.3f}")
    return {
        "probe_s": probe_s,
        "default": default,
        "probed": chosen,
        "default_s": d,
        "probed_s": p,
        "speed_ratio": d / p,
        "reason": choice.reason,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = pick_device(args.device)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {machine_line()}; {describe(device)}")
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine_line(),
        "device": describe(device),
        "command": "python bench/engine_ab.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "engine": engine_rows(args, device, old_infer(args.base)),
    }
    if args.files:
        result["background_io"] = files_row(args, device)
    if not args.skip_probe:
        result["probe"] = probe_row(args, device)
    write_json(args.json, result)


if __name__ == "__main__":
    main()
