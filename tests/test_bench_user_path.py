"""bench/user_path.py drives the real scripts end to end (tiny synthetic set, tiny network)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.slow
def test_user_path_bench_trains_segments_and_scores(tmp_path):
    sys.path.insert(0, str(BENCH))
    import user_path

    code = user_path.main(["--datasets", "synthetic_small", "--time-limit", "0.3", "--out", str(tmp_path / "out"),
                           "--work", str(tmp_path / "ws"), "--train-args",
                           "--folds 1 --width 8 --patch 64 --overlap 32 --per-epoch 0 --epochs 6"])
    assert code == 0
    result = json.loads((tmp_path / "out" / "user_path.json").read_text())
    (row,) = result["results"]
    assert row["dataset"] == "synthetic_small" and (row["train_pages"], row["test_pages"]) == (6, 2)
    assert 0.0 <= row["pooled"]["dice"] <= 1.0 and row["pooled"]["images"] == 2
    assert row["train_command"].startswith("train_model.py --yes --name bench --time-limit 0.3")
    assert (tmp_path / "ws" / "synthetic_small" / "Use_Model" / "saved_models" / "bench.pth").is_file()
    assert row["timing"]["seconds"]["gradient_steps"] > 0 and "percent" in row["timing"]  # where the time went
