"""What machine a benchmark ran on: the 2-core hosts differ by up to 2.8x in convolution speed
between sessions, so every result file names the CPU model."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from paulow.device import cpu_model  # noqa: E402


def machine_line() -> str:
    """`CPU model, N cores` for a results file."""
    return f"{cpu_model()}, {os.cpu_count()} cores"
