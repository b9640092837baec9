"""Helpers shared by the benchmarks: device choice, thread count, table and JSON output."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# The benches measure what users get: libgomp's default wait policy. On a quiet 2-core machine it is
# the faster one (width 16 trained at 40 patches/s against 32 with PASSIVE); when other processes
# share the cores, export OMP_WAIT_POLICY=PASSIVE (2-8x faster under load).
import torch

# Run from a checkout without installing: `python bench/train_speed.py`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def pick_device(name: str | None, threads: int | None = None) -> torch.device:
    """`name`, or cuda when available, else cpu; on cpu use `threads` (default: every core)."""
    device = torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu":
        torch.set_num_threads(threads or os.cpu_count() or 1)
    return device


def describe(device: torch.device) -> str:
    """A one-line description of the device the numbers were measured on."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (bf16 autocast, channels_last)"
    return (
        f"cpu, {torch.get_num_threads()} threads, OMP_WAIT_POLICY="
        f"{os.environ.get('OMP_WAIT_POLICY', 'default')} (fp32, channels_last)"
    )


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> None:
    """Print `rows` as an aligned table; `columns` holds (key, header, format spec)."""
    cells = [[header for _, header, _ in columns]]
    cells += [[format(row[key], spec) for key, _, spec in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    for line in cells:
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths)))


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    """Write `payload` as indented JSON when a path was given."""
    if path:
        Path(path).write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {path}")
