"""paulow.heap: after `return_large_frees`, a freed chunk-sized array leaves the resident set, even
when an earlier free of the same size would have raised glibc's dynamic mmap threshold."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import sys, numpy as np, psutil
sys.path.insert(0, {root!r})
from paulow.heap import return_large_frees
print(return_large_frees())
process, n = psutil.Process(), 16 << 20
first = np.ones(n, np.uint8); del first  # without the fix: threshold raised to 16 MiB
second = np.ones(n, np.uint8); held = process.memory_info().rss
del second
print((held - process.memory_info().rss) >> 20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_a_freed_16_mib_array_leaves_the_resident_set():
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(root=str(ROOT))], capture_output=True, text=True, check=True
    ).stdout.split()
    if out[0] == "False":
        pytest.skip("not glibc")
    assert int(out[1]) >= 15


def test_paulow_heap_default_leaves_malloc_alone():
    probe = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from paulow.heap import return_large_frees; print(return_large_frees())"
    env = {**os.environ, "PAULOW_HEAP": "default"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "False"
