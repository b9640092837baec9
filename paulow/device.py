"""Device choice: CUDA when present, else the CPU, its OpenMP wait policy and threads set by the load.

Why (bench/threads_under_load.py, a width-16 training step on a 2-core machine other processes also
used): libgomp's default, spinning wait policy with two threads made 0.4-0.6 patches/s, one thread
1.9-2.1, `OMP_WAIT_POLICY=PASSIVE` with two threads 3.3-5.5. On an idle machine the default policy
with every core is fastest (38 against 32 patches/s with PASSIVE). So a busy machine at start gets
PASSIVE (it must be set before torch loads OpenMP); if torch was loaded already, or the machine gets
busy later, the spinning policy is kept and the threads are cut to the cores left free.
"""

from __future__ import annotations

import logging
import os
import sys
import time

log = logging.getLogger("paulow")

BUSY_CORE = 0.5  # another process using this much of a core counts as taking it
_startup_busy: float | None = None  # sampled by `choose_wait_policy`, used once by `cpu_threads`


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


def choose_wait_policy(busy: float | None = None, torch_loaded: bool | None = None) -> str | None:
    """Set `OMP_WAIT_POLICY=PASSIVE` when other processes keep a core busy (sampled when `busy` is
    not given); returns the policy set, or None when nothing was changed: the machine is idle, the
    user set a policy (or GOMP_SPINCOUNT), or torch, which reads it when it loads, is loaded already."""
    torch_loaded = "torch" in sys.modules if torch_loaded is None else torch_loaded
    if torch_loaded or "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return None
    global _startup_busy
    busy = others_busy_cores() if busy is None and usable_cores() > 1 else busy
    _startup_busy = busy
    if not busy or busy < BUSY_CORE:
        return None
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    log.info("other processes keep %.1f core(s) busy: OMP_WAIT_POLICY=PASSIVE", busy)
    return "PASSIVE"


def cpu_threads(cores: int | None = None, busy: float | None = None) -> int:
    """Threads for the CPU: every usable core, or with the spinning wait policy the cores not kept
    busy by other processes (at least one).

    An OMP_NUM_THREADS the user set is obeyed. `busy` (cores other processes use) is sampled when
    not given.
    """
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    # torchrun's processes on one machine share its cores
    cores = cores or max(1, usable_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
        return cores  # waiting threads sleep: every core is still the fastest under load
    global _startup_busy
    if busy is None and _startup_busy is not None:
        busy, _startup_busy = _startup_busy, None
    busy = others_busy_cores() if busy is None and cores > 1 else busy
    if not busy or busy < BUSY_CORE:
        return cores
    threads = max(1, cores - max(1, round(busy)))
    log.info("other processes keep %.1f of %d cores busy: %d thread(s)", busy, cores, threads)
    return threads


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (else platform.processor())."""
    import platform
    from pathlib import Path

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
