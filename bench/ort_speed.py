"""PyTorch against ONNX Runtime for CPU inference, side by side in one run: the same trained model,
the same whole test images, the toolkit's default tiling (`paulow.predict.predict_pages`, which
`use_model.py` and `Model.predict` use), timed alternately so a busy host slows both alike.

    python bench/ort_speed.py [--dataset nih3t3_nuclei] [--train-minutes 1.5] [--width 16]
                              [--repeats 3] [--images 3] [--data-root ../shared/data] [--json OUT]

A model is trained first through `paulow.train` (short, so the masks are real objects, not noise);
reported per runtime: seconds per image (median over repeats), MPix/s, the one-off export time of
ONNX Runtime, and how far the two agree: the largest probability difference, the pixels whose mask
differs and the Dice between the two masks (the toolkit adopts ONNX Runtime on the CPU only above
1.3x with equal masks).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from datasets import load_dataset
from machine import machine_line

import paulow
from paulow.infer import suggest_tile
from paulow.ort_runtime import with_runtime
from paulow.predict import predict_pages


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="nih3t3_nuclei")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--train-minutes", type=float, default=1.5)
    parser.add_argument("--width", type=int, default=16, help="network width (16: the CPU preset)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=3, help="test images timed")
    parser.add_argument(
        "--model",
        type=Path,
        default=None,
        help="a model file to time instead of training one (saved there when absent)",
    )
    parser.add_argument("--json", dest="json_out", default=None)
    return parser.parse_args(argv)


def timed(model: paulow.Model, raw: np.ndarray, runtime: str) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    probs = predict_pages(model.networks, model.meta, raw[None, None], device="cpu", runtime=runtime)[0]
    return time.perf_counter() - start, probs


def mask_of(model: paulow.Model, probs: np.ndarray) -> np.ndarray:
    from paulow.boundaries import is_boundary_model, object_mask

    if is_boundary_model(model.meta):
        return object_mask(probs, model.threshold)
    return probs[0] > model.threshold


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    train, test = load_dataset(args.dataset, args.data_root)
    if args.model is not None and args.model.is_file():
        model = paulow.load_model(args.model)
    else:
        model = paulow.train(
            [s.info["raw"] for s in train],
            [s.mask for s in train],
            time_limit=args.train_minutes,
            width=args.width,
            seed=0,
        )
        if args.model is not None:
            model.save(args.model)
    raws = [s.info["raw"] for s in test[: args.images]]
    start = time.perf_counter()
    with_runtime(
        model.networks,
        "onnxruntime",
        suggest_tile(int(model.meta.get("patch", 128)), "cpu"),
        model.in_channels,
    )
    export_s = time.perf_counter() - start
    rows = []
    for index, raw in enumerate(raws):
        times = {"torch": [], "onnxruntime": []}
        for _ in range(args.repeats):
            for runtime in times:  # alternate, so load on the host hits both
                seconds, probs = timed(model, raw, runtime)
                times[runtime].append(seconds)
                if runtime == "torch":
                    reference = probs
                else:
                    fast = probs
        a, b = mask_of(model, reference), mask_of(model, fast)
        # control: PyTorch against itself with one thread instead of all (another summation order)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            control = mask_of(model, timed(model, raw, "torch")[1])
        finally:
            torch.set_num_threads(threads)
        both = int((a & b).sum())
        row = {
            "image": index,
            "pixels": int(raw.size),
            "torch_s": statistics.median(times["torch"]),
            "onnxruntime_s": statistics.median(times["onnxruntime"]),
            "max_prob_diff": float(np.abs(reference - fast).max()),
            "mask_pixels_differing": int((a != b).sum()),
            "mask_dice": 2 * both / max(int(a.sum() + b.sum()), 1),
            "torch_1_thread_mask_pixels_differing": int((a != control).sum()),
            "foreground": float(a.mean()),
        }
        row["speedup"] = row["torch_s"] / row["onnxruntime_s"]
        rows.append(row)
        print(
            f"image {index}: torch {row['torch_s']:.2f} s, ONNX Runtime {row['onnxruntime_s']:.2f} s "
            f"({row['speedup']:.2f}x), masks differ in {row['mask_pixels_differing']} px "
            f"(Dice {row['mask_dice']:.5f}), max |dp| {row['max_prob_diff']:.2e}; PyTorch on 1 thread "
            f"differs from PyTorch on {torch.get_num_threads()} in {row['torch_1_thread_mask_pixels_differing']} px"
        )
    pixels = sum(r["pixels"] for r in rows)
    summary = {
        "machine": machine_line(),
        "date": time.strftime("%Y-%m-%d"),
        "dataset": args.dataset,
        "width": args.width,
        "threads": torch.get_num_threads(),
        "export_s": export_s,
        "torch_mpix_s": pixels / 1e6 / sum(r["torch_s"] for r in rows),
        "onnxruntime_mpix_s": pixels / 1e6 / sum(r["onnxruntime_s"] for r in rows),
        "rows": rows,
    }
    summary["speedup"] = summary["onnxruntime_mpix_s"] / summary["torch_mpix_s"]
    print(
        f"{machine_line()}: torch {summary['torch_mpix_s']:.3f} MPix/s, ONNX Runtime "
        f"{summary['onnxruntime_mpix_s']:.3f} MPix/s ({summary['speedup']:.2f}x); export {export_s:.1f} s once"
    )
    if args.json_out:
        import json

        Path(args.json_out).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
