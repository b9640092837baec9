"""Keep a long chunked run's resident memory flat: large frees go back to the operating system.

glibc serves allocations above its mmap threshold with `mmap` and returns them on `free`, but it
raises that threshold to the size of every such block freed (up to 32 MiB). After the first
chunk, chunk-sized numpy arrays (a 2048 px chunk's uint32 labels: 16 MiB) come from the heap
instead, whose freed pages fragment and stay resident: peak memory then grew with the number of
chunks (0.57 -> 0.73 GiB from 8k to 32k px images). Fixing the threshold keeps blocks of
`THRESHOLD` bytes and more on `mmap` for the whole process; smaller ones stay on the heap. The price: chunk-sized temporaries are mapped afresh each time (more page faults and
system time). `PAULOW_HEAP=default` in the environment leaves glibc's malloc as it is.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)
THRESHOLD = 1 << 20  # bytes


@functools.cache
def return_large_frees() -> bool:
    """Fix glibc's mmap threshold at `THRESHOLD` (once per process); False where not glibc."""
    if not sys.platform.startswith("linux") or os.environ.get("PAULOW_HEAP") == "default":
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and other C libraries: nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD))


__all__ = ["THRESHOLD", "return_large_frees"]
