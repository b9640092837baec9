"""paulow.heap: `PAULOW_HEAP` picks how glibc's malloc reuses freed memory, once per process
(each probe runs in a fresh interpreter)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAD = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from paulow.heap import tune_heap\n"
FREED = """print(tune_heap())
import numpy as np, psutil
process, n = psutil.Process(), 16 << 20
first = np.ones(n, np.uint8); del first  # glibc's own rule: threshold raised to 16 MiB
second = np.ones(n, np.uint8); held = process.memory_info().rss
del second
print((held - process.memory_info().rss) >> 20)
"""
glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")


def probe(code: str, heap: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PAULOW_HEAP"}
    env.update({} if heap is None else {"PAULOW_HEAP": heap})
    return subprocess.run([sys.executable, "-c", HEAD + code], capture_output=True, text=True, env=env)


@glibc
def test_mmap_mode_returns_a_freed_16_mib_array_to_the_system():
    out = probe(FREED, "mmap").stdout.split()
    assert out[0] == "mmap" and int(out[1]) >= 15


@glibc
def test_the_default_mode_is_one_arena_and_default_leaves_malloc_alone():
    assert probe("print(tune_heap())", None).stdout.strip() == "arena"
    assert probe("print(tune_heap())", "default").stdout.strip() == "default"


def test_an_unknown_mode_is_one_usage_error():
    run = probe("tune_heap()", "fast")
    assert run.returncode != 0
    assert "PAULOW_HEAP=fast: unknown - choose one of arena, mmap, default" in run.stderr
