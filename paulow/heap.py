"""Keep a long chunked run's resident memory flat, by how glibc's malloc reuses freed memory.

glibc gives threads their own malloc arenas, each keeping the pages freed in it for reuse, and it
raises its mmap threshold to the size of every large block freed (up to 32 MiB), so chunk-sized
arrays (a 2048 px chunk's uint32 labels: 16 MiB) come from those arenas. In a chunked run the
driver, dask's worker thread, zarr's codec threads and torch's threads all allocate and free such
arrays, and every arena ended up holding its own fragmented free memory: peak memory rose with
the first chunks and kept creeping up with more of them. `PAULOW_HEAP` picks the setting:

- `arena` (the default): threads started from now on share the existing arenas (M_ARENA_MAX 1),
  so one thread's freed pages serve the next chunk whichever thread asks;
- `mmap`: a fixed mmap threshold of 1 MiB, so large blocks go back to the system when freed:
  the least memory, but every large temporary is mapped afresh (many more page faults, slower);
- `default`: glibc's malloc as it is.

`bench/chunked_memory.py` measures all three (docs/large-images.md, "Memory and speed").
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # glibc's mallopt parameters (malloc.h)
THRESHOLD = 1 << 20  # bytes, for PAULOW_HEAP=mmap
MODES = ("arena", "mmap", "default")


@functools.cache
def tune_heap() -> str:
    """Apply `PAULOW_HEAP` (once per process); the mode applied, "default" where not glibc."""
    mode = os.environ.get("PAULOW_HEAP", "arena")
    if mode not in MODES:
        from .errors import UsageError

        raise UsageError(f"PAULOW_HEAP={mode}: unknown - choose one of {', '.join(MODES)}")
    if mode == "default" or not sys.platform.startswith("linux"):
        return "default"
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and other C libraries: nothing to tune
        return "default"
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = mallopt(M_ARENA_MAX, 1) if mode == "arena" else mallopt(M_MMAP_THRESHOLD, THRESHOLD)
    return mode if done else "default"


__all__ = ["MODES", "THRESHOLD", "tune_heap"]
