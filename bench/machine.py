"""What machine a benchmark ran on: the 2-core hosts differ by up to 2.8x in convolution speed
between sessions, so every result file names the CPU model."""
from __future__ import annotations

import os

from paulow.device import cpu_model


def machine_line() -> str:
    """`CPU model, N cores` for a results file."""
    return f"{cpu_model()}, {os.cpu_count()} cores"
