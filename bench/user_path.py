"""Quality through the user's path: the real `train_model.py` and `use_model.py` on a dataset's fixed
train/test split, with the defaults a user gets (only `--time-limit` set), scored on the test split.

    python bench/user_path.py [--datasets isbi2012_em_cells paulow_filaments nih3t3_nuclei synthetic_large]
                              [--time-limit 10] [--busy N] [--train-args "..."] [--use-args "..."]
                              [--out bench/results/user_path]

Each dataset's train pages are written as one TIFF per page into a fresh workspace's
`Train_Model/TRAINING_IMAGES|TRAINING_MASKS` (raw values as read, masks 0/255), the test pages into
`Use_Model/INPUT_IMAGES`; `train_model.py --yes --name bench --time-limit T` trains (its own
cross-validation plan, test share and threshold tuning), `use_model.py --yes --model bench` segments,
and `paulow.api.score_masks` scores the masks against the test truth (pooled Dice, object F1).
`--use-args` adds `use_model.py` options: with `--instances` (e.g. for a `--boundary-target` model, or
`--instances --split-touching`) the object scores use the `_labels.tif` instance images it writes,
the pixel scores their foreground; without, objects are the mask's connected components.
The JSON records the wall time of training against the limit and, when the run writes one, its
`timing.json` (where the time went). `--busy N` runs N spinning processes beside it (a laptop that
is not idle). `synthetic_large` is 27 + 6 synthetic nuclei images of 768 x 1024 (made here, seeded):
many large images, the shape of the data the default plan under-trained on.

This is the mode for README numbers; `bench/quality.py` (one split, its own settings) is for ablations.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from datasets import ALL_DATASETS, CLASS_NAMES, DATASETS, REPO, classes_of, load_dataset
from machine import machine_line

from paulow.api import class_scores, read_mask, score_masks, synthetic_image, write_image, write_mask

SYNTHETIC = {
    "synthetic_large": {"n_train": 27, "n_test": 6, "size": (768, 1024)},
    "synthetic_small": {"n_train": 6, "n_test": 2, "size": (96, 96)},
}  # the test suite's


def synthetic_split(
    name: str,
) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[tuple[np.ndarray, np.ndarray]]]:
    """(train, test) lists of (raw image, 0/1 mask) made by `paulow.synthetic`, seeded."""
    spec = SYNTHETIC[name]
    pages = [
        synthetic_image("nuclei", spec["size"], seed=1000 + i)
        for i in range(spec["n_train"] + spec["n_test"])
    ]
    return pages[: spec["n_train"]], pages[spec["n_train"] :]


def real_split(name: str, root: Path | None) -> tuple[list, list]:
    """(train, test) lists of (raw first channel, 0/1 mask) of a `../shared/data` dataset."""

    def pages(slices: Sequence) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(s.info["raw"], s.mask) for s in slices]

    train, test = load_dataset(name, root)
    return pages(train), pages(test)


def write_pages(pages, images: Path, masks: Path | None, prefix: str, classes: int = 1) -> list[str]:
    """One TIFF per page (`prefix`N.tif), masks as 0/255 `maskN.tif` (class indices for K > 1);
    returns the image stems."""
    stems = []
    for i, (image, mask) in enumerate(pages, start=1):
        write_image(images / f"{prefix}{i}.tif", image)
        if masks is not None:
            write_mask(
                masks / f"mask{i}.tif", mask if classes == 1 else mask.astype(np.uint8), binary=classes == 1
            )
        stems.append(f"{prefix}{i}")
    return stems


def _spin() -> None:
    while True:
        pass


def run_script(
    script: str, args: Sequence[str], core: int | None = None
) -> tuple[float, subprocess.CompletedProcess]:
    """Run one of the scripts; with `core`, pinned to that CPU core with one thread (`taskset`)."""
    pin, env = [], None
    if core is not None:
        pin, env = ["taskset", "-c", str(core)], {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.monotonic()
    done = subprocess.run(
        [*pin, sys.executable, str(REPO / script), *args], capture_output=True, text=True, env=env
    )
    return time.monotonic() - start, done


def class_args(name: str) -> list[str]:
    """`--classes K --class-names ...` for a multi-class dataset (nothing for a binary one)."""
    names = CLASS_NAMES.get(name)
    return ["--classes", str(len(names)), "--class-names", ",".join(names)] if names else []


def predicted_pages(out: Path, stems: Sequence[str], test: Sequence) -> list[tuple]:
    """(stem, 0, prediction, truth) per test page: the instance labels `use_model.py --instances`
    wrote when there are any, else the mask."""
    pages = []
    for stem, (_, truth) in zip(stems, test):
        labels = out / f"{stem}_labels.tif"
        pages.append((stem, 0, read_mask(labels if labels.is_file() else out / f"{stem}_mask.tif")[0], truth))
    return pages


def bench_dataset(
    name: str,
    time_limit: float,
    train_args: Sequence[str],
    root: Path | None,
    work: Path,
    pages_limit: int | None = None,
    use_args: Sequence[str] = (),
) -> dict:
    """Train and segment through the scripts; return the scores and times. `pages_limit`: use only
    the first N train and test pages (smoke runs of the bench itself, not numbers)."""
    train, test = synthetic_split(name) if name in SYNTHETIC else real_split(name, root)
    if pages_limit:
        train, test = train[:pages_limit], test[:pages_limit]
    classes = classes_of(name)
    ws = work / name
    subprocess.run(
        [sys.executable, str(REPO / "directory_setup.py"), "--root", str(ws)], check=True, capture_output=True
    )
    write_pages(
        train, ws / "Train_Model" / "TRAINING_IMAGES", ws / "Train_Model" / "TRAINING_MASKS", "image", classes
    )
    stems = write_pages(test, ws / "Use_Model" / "INPUT_IMAGES", None, "test")
    command = [
        "--root",
        str(ws),
        "--yes",
        "--name",
        "bench",
        "--time-limit",
        f"{time_limit:g}",
        *class_args(name),
        *train_args,
    ]
    train_seconds, trained = run_script("train_model.py", command)
    if trained.returncode != 0:
        raise RuntimeError(f"train_model.py failed on {name}: {trained.stderr[-2000:]}")
    use_command = ["--root", str(ws), "--yes", "--model", "bench", *use_args]
    use_seconds, used = run_script("use_model.py", use_command)
    if used.returncode != 0:
        raise RuntimeError(f"use_model.py failed on {name}: {used.stderr[-2000:]}")
    out = ws / "Use_Model" / "OUTPUT_MASKS"
    scored = score_masks(predicted_pages(out, stems, test), name, classes)
    timing = ws / "Use_Model" / "saved_models" / "bench_report" / "timing.json"
    per_class = class_scores(scored.pooled, CLASS_NAMES[name]) if classes > 1 else None
    return {
        "dataset": name,
        "classes": classes,
        "per_class": per_class,
        "train_pages": len(train),
        "test_pages": len(test),
        "time_limit_s": time_limit * 60,
        "train_wall_s": round(train_seconds, 1),
        "segment_wall_s": round(use_seconds, 1),
        "pooled": scored.pooled,
        "timing": json.loads(timing.read_text()) if timing.is_file() else None,
        "train_command": "train_model.py " + shlex.join(command[2:]),
        "use_command": "use_model.py " + shlex.join(use_command[2:]),
        "objects_from": "instance labels"
        if (out / f"{stems[0]}_labels.tif").is_file()
        else "mask components",
        "train_log_tail": trained.stdout[-1500:],
    }


PASSED_ON = ("--train-args", "--use-args")


def _joined(argv: Sequence[str]) -> list[str]:
    """`--train-args --border-weight` as `--train-args=--border-weight`: argparse would take a value
    that starts with a dash and has no space for an option of its own."""
    out, items = [], iter(argv)
    for item in items:
        out.append(f"{item}={next(items, '')}" if item in PASSED_ON else item)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=list(DATASETS),
        choices=[*ALL_DATASETS, *SYNTHETIC],
        help="default: the binary sets; drosophila_vnc_sstem (5 classes) is scored per class",
    )
    parser.add_argument(
        "--time-limit", type=float, default=10.0, help="minutes (train_model.py --time-limit)"
    )
    parser.add_argument("--train-args", default="", help="more train_model.py options (ablations only)")
    parser.add_argument(
        "--use-args",
        default="",
        help='more use_model.py options, e.g. "--instances" (object F1 from its label images)',
    )
    parser.add_argument("--busy", type=int, default=0, help="spinning background processes beside the run")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--work", type=Path, default=None, help="workspace folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "user_path")
    parser.add_argument(
        "--pages",
        type=int,
        default=None,
        help="only the first N train and test pages (a smoke run of the bench, not a result)",
    )
    args = parser.parse_args(_joined(sys.argv[1:] if argv is None else argv))
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.busy)]
    for p in spinners:
        p.start()
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name in args.datasets:
                row = bench_dataset(
                    name,
                    args.time_limit,
                    shlex.split(args.train_args),
                    args.data_root,
                    args.work or Path(tmp),
                    args.pages,
                    shlex.split(args.use_args),
                )
                results.append(row)
                if row["per_class"]:
                    print(
                        f"{name}: "
                        + ", ".join(f"{r['class']} Dice {r['dice']:.4f}" for r in row["per_class"]),
                        flush=True,
                    )
                print(
                    f"{name}: test Dice {row['pooled'].get('dice', row['pooled'].get('mean_dice')):.4f}, object F1 "
                    f"{row['pooled'].get('object_f1', float('nan')):.4f}, training {row['train_wall_s']:.0f} s "
                    f"for a {row['time_limit_s']:.0f} s limit",
                    flush=True,
                )
    finally:
        for p in spinners:
            p.terminate()
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {
        "command": "python bench/user_path.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_line(),
        "busy_processes": args.busy,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "date": time.strftime("%Y-%m-%d"),
        "results": results,
    }
    path = args.out / "user_path.json"
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
