"""bench/gpu.py runs the real use_model.py and train_model.py and writes its JSON (smoke sizes, CPU)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu.py"), *args], capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_gpu_bench_smoke_writes_positive_numbers(tmp_path):
    out = tmp_path / "x.json"
    done = _bench("--smoke", "--device", "cpu", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    assert result["command"] == f"python bench/gpu.py --smoke --device cpu --out {out}"
    assert (result["device"], result["device_name"], result["smoke"]) == ("cpu", "cpu", True)
    assert result["torch"] and result["date"] and "git_commit" in result
    (use,) = result["use_model"]
    assert (use["width"], use["images"], use["size"]) == (8, 2, 256)
    assert use["command"] == "use_model.py --yes --model bench --device cpu"
    assert use["mpix"] == pytest.approx(2 * 256 * 256 / 1e6)
    assert use["mpix_per_s"] == pytest.approx(use["mpix"] / use["wall_s"])
    assert 0 < use["segment_s"] < use["wall_s"] and use["startup_s"] > 0 and use["mpix_per_s_segmenting"] > 0
    (train,) = result["train_model"]
    assert train["command"] == "train_model.py --yes --name b --time-limit 0.1 --width 8 --device cpu"
    assert train["patches"] > 0 and train["patches"] % train["batch_size"] == 0
    for key in (
        "gradient_steps_s",
        "run_s",
        "wall_s",
        "patches_per_s_steps",
        "patches_per_s_run",
        "patches_per_s_wall",
    ):
        assert train[key] > 0, key
    assert train["patches_per_s_wall"] == pytest.approx(train["patches"] / train["wall_s"])
    assert train["run_s"] < train["wall_s"]
    assert {"mpix_per_s", "patches_per_s_steps", "wall_s"} <= set(result["units"])
    assert "MPix/s" in done.stdout and "patches/s steps" in done.stdout  # the printed tables


def test_gpu_bench_refuses_a_device_it_cannot_use(tmp_path):
    done = _bench("--device", "tpu7", "--out", str(tmp_path / "x.json"))
    assert done.returncode == 2 and "error: --device tpu7: use cpu, cuda or cuda:N" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "x.json").exists()
