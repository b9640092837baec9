"""End to end through the real scripts, per network width: `use_model.py` throughput on a folder of
large uint16 images (MPix/s) and `train_model.py` patches/s, written as one JSON file.

    python bench/gpu.py [--device cuda] [--widths 64 32] [--size 4096] [--images 8]
                        [--time-limit 2] [--train-size 1024] [--train-images 8]
                        [--use-args "--overlap 0.5 --compile"] [--train-args "--batch-size 32"]
                        [--parts use train] [--out bench/results/gpu_<device>.json] [--smoke]

Segmenting: `--images` synthetic uint16 nuclei images of `--size`² (tiles of `paulow.synthetic`,
seeded, turned and flipped) are copied into a fresh workspace's `Use_Model/INPUT_IMAGES`; an
untrained model of the width (the architecture and metadata training writes; speed does not depend
on the weights) is saved with `paulow.checkpoint.save_checkpoint`; `use_model.py --yes --model NAME`
runs as a subprocess. MPix/s = every pixel of the folder / the process's wall seconds; `segment_s`
is the time from the script's `model: ...` line (after start-up and loading the model; `--compile`
compiles on the first batch, inside it) to its exit.

Training: `--train-images` synthetic nuclei pages of `--train-size`² in a fresh workspace,
`train_model.py --yes --name b --time-limit T --width W` (the device's own preset otherwise). The
report's `history.csv` gives the patches trained (steps x batch size, summed over epochs and folds)
and `timing.json` the seconds of gradient steps and of the whole run: patches/s of gradient-step
time, of the run (`timing.json` total) and of the process's wall time.

The JSON is rewritten after every measurement, so a run cut off still leaves what it measured.
`--smoke` (2 images of 256², training on 4 pages of 256², width 8, 0.1 min): checks the bench
itself on a CPU; its numbers are no result.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import print_table, write_json
from user_path import write_pages

REPO = Path(__file__).resolve().parents[1]
MODEL = "bench"
UNITS = {
    "wall_s": "s (the script's process, start to exit)",
    "segment_s": "s (from the script's 'model:' line to its exit)",
    "startup_s": "s",
    "mpix": "megapixels (10^6 pixels)",
    "mpix_per_s": "MPix/s (every input pixel / wall_s)",
    "mpix_per_s_segmenting": "MPix/s (every input pixel / segment_s)",
    "patches": "training patches of `patch`² pixels (steps x batch size: a last short batch counts whole)",
    "gradient_steps_s": "s (timing.json)",
    "run_s": "s (timing.json total)",
    "patches_per_s_steps": "patches/s (patches / gradient_steps_s)",
    "patches_per_s_run": "patches/s (patches / run_s)",
    "patches_per_s_wall": "patches/s (patches / wall_s)",
    "time_limit_min": "min",
}
USE_COLUMNS = [
    ("width", "width", "d"),
    ("images", "images", "d"),
    ("size", "size", "d"),
    ("wall_s", "wall s", ".1f"),
    ("mpix_per_s", "MPix/s", ".2f"),
    ("segment_s", "segmenting s", ".1f"),
    ("mpix_per_s_segmenting", "MPix/s segmenting", ".2f"),
]
TRAIN_COLUMNS = [
    ("width", "width", "d"),
    ("batch_size", "batch", "d"),
    ("patches", "patches", "d"),
    ("patches_per_s_steps", "patches/s steps", ".1f"),
    ("patches_per_s_run", "patches/s run", ".1f"),
    ("wall_s", "wall s", ".1f"),
    ("patches_per_s_wall", "patches/s wall", ".1f"),
]
SMOKE = {"widths": [8], "size": 256, "images": 2, "train_size": 256, "train_images": 4, "time_limit": 0.1}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--device", default=None, help="passed to the scripts as --device (default: theirs, auto)"
    )
    parser.add_argument("--widths", type=int, nargs="+", default=None, help="network widths (default 64 32)")
    parser.add_argument("--size", type=int, default=None, help="side of each image to segment (default 4096)")
    parser.add_argument("--images", type=int, default=None, help="images to segment (default 8)")
    parser.add_argument(
        "--train-size", type=int, default=None, help="side of each training page (default 1024)"
    )
    parser.add_argument("--train-images", type=int, default=None, help="training pages (default 8)")
    parser.add_argument(
        "--time-limit", type=float, default=None, help="train_model.py --time-limit, minutes (2)"
    )
    parser.add_argument(
        "--use-args", default="", help='more use_model.py options, e.g. "--overlap 0.5 --compile"'
    )
    parser.add_argument("--train-args", default="", help="more train_model.py options")
    parser.add_argument("--parts", nargs="+", choices=("use", "train"), default=["use", "train"])
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON file (default bench/results/gpu_<device>.json)"
    )
    parser.add_argument(
        "--work", type=Path, default=None, help="workspaces here (default: a temporary folder)"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes, to check the bench on a CPU (no result)"
    )
    args = parser.parse_args(argv)
    defaults = {
        "widths": [64, 32],
        "size": 4096,
        "images": 8,
        "train_size": 1024,
        "train_images": 8,
        "time_limit": 2.0,
    }
    for key, value in (SMOKE if args.smoke else defaults).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key in ("size", "images", "train_size", "train_images"):
        if getattr(args, key) < 1:
            parser.error(f"--{key.replace('_', '-')} must be at least 1")
    if min(args.widths) < 1 or args.time_limit <= 0:
        parser.error("--widths must be at least 1 and --time-limit above 0")
    try:
        device = torch.device(args.device or "cpu")
    except RuntimeError:
        parser.error(f"--device {args.device}: use cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: no CUDA device is visible to torch {torch.__version__}")
    return args


def nuclei_pages(n: int, size: int, seed: int, tile: int = 512) -> list[tuple[np.ndarray, np.ndarray]]:
    """`n` (uint16 image, 0/1 mask) pages of `size`²: a pool of four `paulow.api.synthetic_image`
    tiles, each page assembled from randomly chosen, turned and flipped copies (seeded). Drawing a
    4096² image whole would take minutes; the network's speed does not depend on the content."""
    from paulow.api import synthetic_image

    tile = min(tile, size)
    pool = [synthetic_image("nuclei", (tile, tile), seed=seed + i, bit_depth=16) for i in range(4)]
    rng = np.random.default_rng(seed)
    count = -(-size // tile)
    pages = []
    for _ in range(n):
        image = np.empty((count * tile, count * tile), np.uint16)
        mask = np.empty(image.shape, np.uint8)
        for y in range(count):
            for x in range(count):
                img, msk = pool[rng.integers(len(pool))]
                turns, flip = int(rng.integers(4)), bool(rng.integers(2))
                window = np.s_[y * tile : (y + 1) * tile, x * tile : (x + 1) * tile]
                image[window] = _turned(img, turns, flip)
                mask[window] = _turned(msk, turns, flip)
        pages.append((image[:size, :size].copy(), mask[:size, :size].copy()))
    return pages


def _turned(array: np.ndarray, turns: int, flip: bool) -> np.ndarray:
    array = np.rot90(array, turns)
    return array[:, ::-1] if flip else array


def untrained_model(path: Path, width: int) -> Path:
    """A model file of an untrained network of `width` with the metadata training writes."""
    from paulow.checkpoint import save_checkpoint
    from paulow.config import TrainConfig
    from paulow.models import build_model
    from paulow.normalisation import NORMALISATION

    cfg = TrainConfig(width=width)
    arch_args = cfg.arch_args(1)
    net = build_model(cfg.arch, **arch_args)
    meta = {
        "arch": cfg.arch,
        "arch_args": arch_args,
        "in_channels": 1,
        "classes": 1,
        "class_names": cfg.names(),
        "activation": "sigmoid",
        "normalisation": dict(NORMALISATION),
        "patch": cfg.patch,
        "overlap": cfg.infer_overlap,
        "threshold": 0.5,
        "name": path.stem,
    }
    return save_checkpoint(path, [net.state_dict()], meta)


def run_script(script: str, args: Sequence[str], marker: str | None = None) -> dict[str, Any]:
    """Run a top-level script; its wall seconds, the seconds from the first output line starting
    with `marker` to its exit (None without one), exit code and the tail of its output."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    start = time.monotonic()
    seen = None
    lines: list[str] = []
    with subprocess.Popen(
        [sys.executable, str(REPO / script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if seen is None and marker and line.startswith(marker):
                seen = time.monotonic()
            lines.append(line)
    end = time.monotonic()
    return {
        "wall_s": end - start,
        "after_marker_s": None if seen is None else end - seen,
        "returncode": proc.returncode,
        "output_tail": "".join(lines)[-3000:],
    }


def device_args(args: argparse.Namespace) -> list[str]:
    return ["--device", args.device] if args.device else []


def bench_use(width: int, source: Path, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Segment the images in `source` with an untrained model of `width` through `use_model.py`."""
    from paulow.workspace import Workspace

    ws = Workspace(work / f"use_w{width}")
    ws.setup()
    for path in sorted(source.iterdir()):
        shutil.copy2(path, ws.use_inputs / path.name)
    untrained_model(ws.models / f"{MODEL}.pth", width)
    command = ["--yes", "--model", MODEL, *device_args(args), *shlex.split(args.use_args)]
    done = run_script("use_model.py", ["--root", str(ws.root), *command], marker="model:")
    masks = len(list(ws.use_outputs.glob("*_mask.tif")))
    row: dict[str, Any] = {
        "width": width,
        "images": args.images,
        "size": args.size,
        "command": "use_model.py " + shlex.join(command),
    }
    if done["returncode"] != 0 or masks != args.images:
        return {
            **row,
            "error": f"exit {done['returncode']}, {masks} of {args.images} masks written",
            "output_tail": done["output_tail"],
        }
    mpix = args.images * args.size**2 / 1e6
    segment = done["after_marker_s"]
    return {
        **row,
        "mpix": mpix,
        "wall_s": done["wall_s"],
        "mpix_per_s": mpix / done["wall_s"],
        "segment_s": segment,
        "startup_s": None if segment is None else done["wall_s"] - segment,
        "mpix_per_s_segmenting": None if not segment else mpix / segment,
        "output_tail": done["output_tail"][-800:],
    }


def bench_train(width: int, pages: list, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Train `width` on `pages` through `train_model.py`; patches/s from the run's report."""
    from paulow.workspace import Workspace

    ws = Workspace(work / f"train_w{width}")
    ws.setup()
    write_pages(pages, ws.train_images, ws.train_masks, "image")
    command = [
        "--yes",
        "--name",
        "b",
        "--time-limit",
        f"{args.time_limit:g}",
        "--width",
        str(width),
        *device_args(args),
        *shlex.split(args.train_args),
    ]
    done = run_script("train_model.py", ["--root", str(ws.root), *command])
    report = ws.models / "b_report"
    row: dict[str, Any] = {
        "width": width,
        "train_images": args.train_images,
        "train_size": args.train_size,
        "time_limit_min": args.time_limit,
        "command": "train_model.py " + shlex.join(command),
    }
    if done["returncode"] != 0 or not (report / "timing.json").is_file():
        return {**row, "error": f"exit {done['returncode']}", "output_tail": done["output_tail"]}
    timing = json.loads((report / "timing.json").read_text())
    config = json.loads((report / "config.json").read_text())
    with open(report / "history.csv", newline="") as f:
        history = list(csv.DictReader(f))
    patches = sum(int(r["patches"]) for r in history)
    steps, run = timing["seconds"]["gradient_steps"], timing["total_seconds"]
    return {
        **row,
        "batch_size": config["batch_size"],
        "patch": config["patch"],
        "folds": config["folds"],
        "epochs": len(history),
        "patches": patches,
        "gradient_steps_s": steps,
        "run_s": run,
        "wall_s": done["wall_s"],
        "patches_per_s_steps": patches / steps if steps > 0 else None,
        "patches_per_s_run": patches / run,
        "patches_per_s_wall": patches / done["wall_s"],
        "timing": timing,
        "output_tail": done["output_tail"][-800:],
    }


def environment(args: argparse.Namespace) -> dict[str, Any]:
    """torch, the device the scripts run on (by name for CUDA), the git commit."""
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, None
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": str(device),
        "device_name": name,
        "git_commit": commit,
        "git_dirty": dirty,
        "python": sys.version.split()[0],
    }


def default_out(env: dict[str, Any], smoke: bool) -> Path:
    tag = env["device"].replace(":", "") + ("_smoke" if smoke else "")
    return REPO / "bench" / "results" / f"gpu_{tag}.json"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    env = environment(args)
    out = args.out or default_out(env, args.smoke)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "benchmark": "gpu",
        "command": "python bench/gpu.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "smoke": args.smoke,
        **env,
        "units": UNITS,
        "use_model": [],
        "train_model": [],
    }
    print(f"end-to-end benchmark on {env['device_name']} ({env['device']}), torch {env['torch']}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        if "use" in args.parts:
            source = work / "images"
            source.mkdir(parents=True, exist_ok=True)
            write_pages(nuclei_pages(args.images, args.size, seed=0), source, None, "image")
            for width in args.widths:
                payload["use_model"].append(row := bench_use(width, source, args, work))
                write_json(str(out), payload)
                print(
                    row.get("error") or f"use_model.py width {width}: {row['mpix_per_s']:.2f} MPix/s",
                    flush=True,
                )
        if "train" in args.parts:
            pages = nuclei_pages(args.train_images, args.train_size, seed=100)
            for width in args.widths:
                payload["train_model"].append(row := bench_train(width, pages, args, work))
                write_json(str(out), payload)
                print(
                    row.get("error")
                    or f"train_model.py width {width}: {row['patches_per_s_wall']:.1f} patches/s end to end",
                    flush=True,
                )
    _print_tables(payload)
    failed = [r for r in payload["use_model"] + payload["train_model"] if "error" in r]
    for r in failed:
        print(f"error: {r['command']}: {r['error']}\n{r['output_tail']}", file=sys.stderr)
    return 1 if failed else 0


def _print_tables(payload: dict[str, Any]) -> None:
    nan = float("nan")
    for key, columns in (("use_model", USE_COLUMNS), ("train_model", TRAIN_COLUMNS)):
        rows = [
            {k: (nan if r.get(k) is None else r[k]) for k, _, _ in columns}
            for r in payload[key]
            if "error" not in r
        ]
        if rows:
            print(f"\n{key}.py")
            print_table(rows, columns)


if __name__ == "__main__":
    sys.exit(main())
