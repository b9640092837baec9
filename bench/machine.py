"""What machine a benchmark ran on: the 2-core hosts differ by up to 2.8x in convolution speed
between sessions, so every result file names the CPU model."""
from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (else platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_line() -> str:
    """`CPU model, N cores` for a results file."""
    return f"{cpu_model()}, {os.cpu_count()} cores"
