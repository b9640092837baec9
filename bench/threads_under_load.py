"""Training-step speed by OpenMP wait policy and thread count, with N spinning processes beside it.

    python bench/threads_under_load.py [--busy 1] [--rounds 3] [--width 16] [--out bench/results/threads_under_load.json]

Each configuration runs in its own process (the wait policy is read when OpenMP starts), the
configurations interleaved round by round so that a change in the machine's load hits them alike.
The numbers behind `paulow.device.cpu_threads` (fewer threads when other processes use the cores).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = [("default", 0), ("default", 1), ("PASSIVE", 0), ("PASSIVE", 1)]  # threads 0: every core
PROBE = """
import json, os, sys, torch
sys.path.insert(0, {repo!r})
from paulow.config import TrainConfig
from paulow.training.planning import time_steps
if {threads}:
    torch.set_num_threads({threads})
cfg = TrainConfig(width={width}, patch=128, batch_size=8, device="cpu")
time_steps(cfg, 1, "cpu", steps=1)
print(json.dumps({{"threads": torch.get_num_threads(), "patches_s": 8 / time_steps(cfg, 1, "cpu", steps={steps})}}))
"""


def _spin() -> None:
    while True:
        pass


def probe(policy: str, threads: int, width: int, steps: int) -> dict:
    """Patches per second of one configuration, measured in a fresh process."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    if policy != "default":
        env["OMP_WAIT_POLICY"] = policy
    code = PROBE.format(repo=str(REPO), threads=threads, width=width, steps=steps)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=1, help="spinning processes beside the probes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/threads_under_load.json")
    args = parser.parse_args()
    spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.busy)]
    for p in spinners:
        p.start()
    rows = []
    try:
        for r in range(args.rounds):
            for policy, threads in CONFIGS:
                row = {
                    "round": r + 1,
                    "policy": policy,
                    **probe(policy, threads, args.width, args.steps),
                    "load_1min": round(os.getloadavg()[0], 2),
                }
                print(json.dumps(row), flush=True)
                rows.append(row)
    finally:
        for p in spinners:
            p.terminate()
    summary = {}
    for policy, threads in CONFIGS:
        got = sorted(
            r["patches_s"]
            for r in rows
            if r["policy"] == policy and r["threads"] == (threads or os.cpu_count())
        )
        summary[f"{policy}, {threads or 'all'} thread(s)"] = {
            "min": round(got[0], 2),
            "median": round(got[len(got) // 2], 2),
            "max": round(got[-1], 2),
        }
    result = {
        "command": " ".join(["python", *sys.argv]),
        "busy_processes": args.busy,
        "cores": os.cpu_count(),
        "width": args.width,
        "rows": rows,
        "patches_per_second": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
