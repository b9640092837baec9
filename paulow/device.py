"""Device choice: CUDA when present, else the CPU, its OpenMP wait policy and threads chosen by the load.

Why (bench/threads_under_load.py, a width-16 training step on a 2-core machine other processes also
used): libgomp's default, spinning wait policy with two threads made 0.4-0.6 patches/s, one thread
1.9-2.1, `OMP_WAIT_POLICY=PASSIVE` with two threads 3.3-5.5. On an idle machine the default policy
with every core is fastest (38 against 32 patches/s with PASSIVE). So a busy machine at start gets
PASSIVE (it must be set before torch loads OpenMP); if torch was loaded already, or the machine gets
busy later, the spinning policy is kept and the threads are cut to the cores left free.

Choosing is separate from applying: `pick_device` and `cpu_threads` return their choice and change
nothing; the entry that starts the work (a command's start) applies it once with `use_threads`,
given the load `choose_wait_policy` sampled before torch loaded (`StartupLoad.busy`).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import NamedTuple

log = logging.getLogger("paulow")

BUSY_CORE = 0.5  # another process using this much of a core counts as taking it


class StartupLoad(NamedTuple):
    """What `choose_wait_policy` found before torch loaded: the policy it set (None: nothing set)
    and the cores other processes kept busy then (None: not sampled), for the first `cpu_threads`."""

    policy: str | None = None
    busy: float | None = None


def pick_device(requested: str = "auto") -> str:
    """'cuda' when present (or requested), else 'cpu'; sets nothing (threads: `use_threads`)."""
    import torch

    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        from .errors import UsageError

        raise UsageError("--device cuda was asked for but no CUDA GPU is visible: use --device cpu")
    return requested


def use_threads(device: str, busy: float | None = None) -> int | None:
    """Apply the thread choice at the start of work, once: on the CPU torch gets `cpu_threads(busy=
    busy)` threads (`busy`: `StartupLoad.busy`, else sampled now); returns them (None on a GPU)."""
    if device != "cpu":
        return None
    import torch

    threads = cpu_threads(busy=busy)
    torch.set_num_threads(threads)
    return threads


def fewer_threads(device: str) -> int | None:
    """For a run already going on the CPU: `cpu_threads()` (sampled now) when fewer than torch uses,
    else None (nothing to cut); sets nothing."""
    if device != "cpu":
        return None
    import torch

    threads = cpu_threads()
    return threads if threads < torch.get_num_threads() else None


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


def choose_wait_policy(busy: float | None = None, torch_loaded: bool | None = None) -> StartupLoad:
    """Set `OMP_WAIT_POLICY=PASSIVE` when other processes keep a core busy (sampled when `busy` is
    not given); returns the policy set and the load. The policy is None when nothing was changed:
    the machine is idle, the user set a policy (or GOMP_SPINCOUNT), or torch, which reads it when it
    loads, is loaded already (then nothing is sampled either)."""
    torch_loaded = "torch" in sys.modules if torch_loaded is None else torch_loaded
    if torch_loaded or "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return StartupLoad()
    busy = others_busy_cores() if busy is None and usable_cores() > 1 else busy
    if not busy or busy < BUSY_CORE:
        return StartupLoad(None, busy)
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    log.info("other processes keep %.1f core(s) busy: OMP_WAIT_POLICY=PASSIVE", busy)
    return StartupLoad("PASSIVE", busy)


def cpu_threads(cores: int | None = None, busy: float | None = None) -> int:
    """Threads for the CPU: every usable core, or with the spinning wait policy the cores not kept
    busy by other processes (at least one).

    An OMP_NUM_THREADS the user set is obeyed. `busy` (cores other processes use) is sampled when
    not given. Returns the count and sets nothing (`use_threads` applies it).
    """
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    # torchrun's processes on one machine share its cores
    cores = cores or max(1, usable_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
        return cores  # waiting threads sleep: every core is still the fastest under load
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
