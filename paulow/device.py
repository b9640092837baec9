"""Device choice: CUDA when present, else the CPU with as many threads as the other processes leave.

Why threads follow the load: with libgomp's default (spinning) wait policy, two threads on a 2-core
machine where another process also computes ran 3-5x slower than one thread (0.5-1.0 against 3.0-3.8
patches/s for a width-16 step, measured side by side); on an idle machine two threads are fastest.
"""
from __future__ import annotations

import logging
import os
import time

log = logging.getLogger("paulow")

BUSY_CORE = 0.5  # another process using this much of a core counts as taking it


def pick_device(requested: str = "auto") -> str:
    """'cuda' when present (or requested), else 'cpu' with the cores other processes leave free."""
    import torch

    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        from .errors import UsageError
        raise UsageError("--device cuda was asked for but no CUDA GPU is visible: use --device cpu")
    if requested == "cpu":
        torch.set_num_threads(cpu_threads())
    return requested


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU time of the whole machine from /proc/stat, or None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def others_busy_cores(seconds: float = 0.3) -> float | None:
    """Cores kept busy by other processes, sampled over `seconds` while this one waits; None when the
    machine cannot tell (not Linux)."""
    first = _cpu_jiffies()
    own = time.process_time()
    time.sleep(seconds)
    second = _cpu_jiffies()
    if first is None or second is None or second[1] <= first[1]:
        return None
    share = (second[0] - first[0]) / (second[1] - first[1])  # busy share of all cores
    cores = os.cpu_count() or 1
    own_cores = (time.process_time() - own) / seconds
    return max(0.0, share * cores - own_cores)


def cpu_threads(cores: int | None = None, busy: float | None = None) -> int:
    """Threads for the CPU: every usable core not kept busy by other processes (at least one).

    An OMP_NUM_THREADS the user set is obeyed. `busy` (cores other processes use) is sampled when
    not given.
    """
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    cores = cores or usable_cores()
    busy = others_busy_cores() if busy is None and cores > 1 else busy
    if not busy or busy < BUSY_CORE:
        return cores
    threads = max(1, cores - max(1, round(busy)))
    log.info("other processes keep %.1f of %d cores busy: %d thread(s)", busy, cores, threads)
    return threads
