"""2.5-D context against 2-D through the user's path: `train_model.py --context N` vs without, same
time limit, several seeds, on serial-section stacks (ISBI 2012 EM cells, the VNC 5-class stack).

    python bench/context_ablation.py [--datasets isbi2012_em_cells drosophila_vnc_sstem] [--contexts 0 1 2]
                                     [--seeds 0 1] [--time-limit 10] [--parallel]
                                     [--out bench/results/context_ablation]

For every dataset, seed and N a fresh workspace gets the train pages of the dataset's fixed split as
ONE stack (`train.tif`, sections in order, masks `train_mask.tif`) and the test pages as one stack
(`test.tif`): the sections are consecutive, so z-1 and z+1 are the real neighbours, and the 2-D
runs (N = 0) see exactly the same files. `train_model.py --yes --name bench --time-limit T --seed S
[--context N]` trains, `use_model.py --yes --model bench` segments `test.tif`, and
`paulow.api.score_masks` scores `test_mask.tif` against the test truth (pooled Dice, or the mean
foreground Dice for K classes). The JSON holds every run, the mean and spread per N over the seeds,
and which N has the best mean; a default should change only where context wins on every dataset
by more than the spread between seeds.

Measured on ISBI (2026-12-06, `--contexts 0 1 --seeds 0 1 --parallel`): see docs/volumes.md; VNC not yet.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from datasets import CLASS_NAMES, REPO, classes_of
from machine import machine_line
from user_path import class_args, real_split, run_script

from paulow.api import read_mask, score_masks, write_image, write_mask

DEFAULT_DATASETS = ("isbi2012_em_cells", "drosophila_vnc_sstem")


def write_stack(
    pages: Sequence[tuple[np.ndarray, np.ndarray]], image: Path, mask: Path | None, classes: int
) -> None:
    """The pages as one ZYX image stack and (if `mask`) one mask stack: 0/255, class indices for K > 1."""
    write_image(image, np.stack([p[0] for p in pages]), axes="ZYX")
    if mask is not None:
        write_mask(mask, np.stack([p[1] for p in pages]).astype(np.uint8), binary=classes == 1)


def one_run(
    name: str,
    context: int,
    seed: int,
    time_limit: float,
    root: Path | None,
    work: Path,
    pages_limit: int | None,
    core: int | None = None,
) -> dict:
    """Train with `--context N` (N = 0: plain 2-D) and seed `seed`, segment the test stack, score it."""
    train, test = real_split(name, root)
    if pages_limit:
        train, test = train[:pages_limit], test[:pages_limit]
    classes = classes_of(name)
    ws = work / f"{name}_c{context}_s{seed}"
    subprocess.run(
        [sys.executable, str(REPO / "directory_setup.py"), "--root", str(ws)], check=True, capture_output=True
    )
    write_stack(
        train,
        ws / "Train_Model" / "TRAINING_IMAGES" / "train.tif",
        ws / "Train_Model" / "TRAINING_MASKS" / "train_mask.tif",
        classes,
    )
    write_stack(test, ws / "Use_Model" / "INPUT_IMAGES" / "test.tif", None, classes)
    command = [
        "--root",
        str(ws),
        "--yes",
        "--name",
        "bench",
        "--time-limit",
        f"{time_limit:g}",
        "--seed",
        str(seed),
        *(["--context", str(context)] if context else []),
        *class_args(name),
    ]
    train_seconds, trained = run_script("train_model.py", command, core)
    if trained.returncode != 0:
        raise RuntimeError(f"train_model.py failed on {name} (context {context}): {trained.stderr[-2000:]}")
    use_seconds, used = run_script("use_model.py", ["--root", str(ws), "--yes", "--model", "bench"], core)
    if used.returncode != 0:
        raise RuntimeError(f"use_model.py failed on {name} (context {context}): {used.stderr[-2000:]}")
    predicted = read_mask(ws / "Use_Model" / "OUTPUT_MASKS" / "test_mask.tif")
    pages = [("test", z, predicted[z], truth) for z, (_, truth) in enumerate(test)]
    pooled = score_masks(pages, name, classes).pooled
    return {
        "dataset": name,
        "context": context,
        "seed": seed,
        "classes": classes,
        "dice": pooled.get("dice", pooled.get("mean_dice")),
        "pooled": pooled,
        "train_pages": len(train),
        "test_pages": len(test),
        "time_limit_s": time_limit * 60,
        "train_wall_s": round(train_seconds, 1),
        "segment_wall_s": round(use_seconds, 1),
        "train_command": "train_model.py " + shlex.join(command[2:]),
        "core": core,
    }


def summarise(runs: Sequence[dict]) -> list[dict]:
    """Per dataset and N: mean and spread (max - min) of the Dice over the seeds, and the best N."""
    rows = []
    for name in dict.fromkeys(r["dataset"] for r in runs):
        by_context: dict[int, list[float]] = {}
        for r in runs:
            if r["dataset"] == name:
                by_context.setdefault(r["context"], []).append(float(r["dice"]))
        means = {n: statistics.fmean(d) for n, d in by_context.items()}
        best = max(means, key=means.get)
        for n, dice in sorted(by_context.items()):
            rows.append(
                {
                    "dataset": name,
                    "context": n,
                    "seeds": len(dice),
                    "mean_dice": means[n],
                    "spread": max(dice) - min(dice),
                    "gain_over_2d": means[n] - means.get(0, float("nan")),
                    "best": n == best,
                }
            )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=list(DEFAULT_DATASETS),
        choices=["isbi2012_em_cells", *CLASS_NAMES, "vnc_mitochondria"],
    )
    parser.add_argument("--contexts", nargs="+", type=int, default=[0, 1, 2], help="N values; 0 = plain 2-D")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--time-limit", type=float, default=10.0, help="minutes per training run")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--work", type=Path, default=None, help="workspace folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "context_ablation")
    parser.add_argument(
        "--pages",
        type=int,
        default=None,
        help="only the first N train and test pages (a smoke run of the bench, not a result)",
    )
    parser.add_argument(
        "--parallel",
        action="store_true",
        help="run the N values of a seed side by side, each pinned to its own core with one thread",
    )
    args = parser.parse_args(argv)
    if args.parallel and len(args.contexts) > len(os.sched_getaffinity(0)):
        parser.error(f"--parallel runs {len(args.contexts)} N values at once: it needs as many cores")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            for seed in args.seeds:
                # --parallel: the N values of one seed at once, one core and one thread each, so both
                # arms see the same host; the cores swap with the seed so neither arm keeps one core
                cores = {
                    n: (i + seed) % len(args.contexts) if args.parallel else None
                    for i, n in enumerate(args.contexts)
                }
                with ThreadPoolExecutor(len(args.contexts) if args.parallel else 1) as pool:
                    futures = [
                        pool.submit(
                            one_run,
                            name,
                            n,
                            seed,
                            args.time_limit,
                            args.data_root,
                            args.work or Path(tmp),
                            args.pages,
                            cores[n],
                        )
                        for n in args.contexts
                    ]
                    rows = [f.result() for f in futures]
                for row in rows:
                    runs.append(row)
                    print(
                        f"{name} context {row['context']} seed {seed}: test Dice {row['dice']:.4f} "
                        f"(training {row['train_wall_s']:.0f} s)",
                        flush=True,
                    )
    summary = summarise(runs)
    for row in summary:
        print(
            f"{row['dataset']} context {row['context']}: mean Dice {row['mean_dice']:.4f} over {row['seeds']} "
            f"seed(s), spread {row['spread']:.4f}, vs 2-D {row['gain_over_2d']:+.4f}"
            + (" (best)" if row["best"] else "")
        )
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {
        "command": "python bench/context_ablation.py "
        + shlex.join(argv if argv is not None else sys.argv[1:]),
        "machine": machine_line(),
        "date": time.strftime("%Y-%m-%d"),
        "smoke": bool(args.pages),
        "summary": summary,
        "runs": runs,
    }
    path = args.out / ("context_ablation_smoke.json" if args.pages else "context_ablation.json")
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
