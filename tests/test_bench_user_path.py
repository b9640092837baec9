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

    code = user_path.main(
        [
            "--datasets",
            "synthetic_small",
            "--time-limit",
            "0.3",
            "--out",
            str(tmp_path / "out"),
            "--work",
            str(tmp_path / "ws"),
            "--train-args",
            "--folds 1 --width 8 --patch 64 --overlap 32 --per-epoch 0 --epochs 6",
        ]
    )
    assert code == 0
    result = json.loads((tmp_path / "out" / "user_path.json").read_text())
    (row,) = result["results"]
    assert row["dataset"] == "synthetic_small" and (row["train_pages"], row["test_pages"]) == (6, 2)
    assert 0.0 <= row["pooled"]["dice"] <= 1.0 and row["pooled"]["images"] == 2
    assert row["train_command"].startswith("train_model.py --yes --name bench --time-limit 0.3")
    assert (tmp_path / "ws" / "synthetic_small" / "Use_Model" / "saved_models" / "bench.pth").is_file()
    assert (
        row["timing"]["seconds"]["gradient_steps"] > 0 and "percent" in row["timing"]
    )  # where the time went


def test_passed_on_options_may_start_with_a_dash():
    sys.path.insert(0, str(BENCH))
    import user_path

    assert user_path._joined(
        ["--train-args", "--border-weight", "--use-args", "--instances", "--busy", "1"]
    ) == ["--train-args=--border-weight", "--use-args=--instances", "--busy", "1"]


@pytest.mark.slow
def test_user_path_bench_scores_instance_labels_of_a_boundary_model(tmp_path):
    sys.path.insert(0, str(BENCH))
    import user_path

    code = user_path.main(
        [
            "--datasets",
            "synthetic_small",
            "--time-limit",
            "0",
            "--out",
            str(tmp_path / "out"),
            "--work",
            str(tmp_path / "ws"),
            "--pages",
            "3",
            "--train-args",
            "--folds 1 --width 8 --patch 64 --overlap 32 --per-epoch 0 --epochs 2 "
            "--boundary-target --border-weight",
            "--use-args",
            "--instances",
        ]
    )
    assert code == 0
    (row,) = json.loads((tmp_path / "out" / "user_path.json").read_text())["results"]
    assert row["objects_from"] == "instance labels" and row["use_command"].endswith(
        "--model bench --instances"
    )
    assert "--boundary-target --border-weight" in row["train_command"]
    assert 0.0 <= row["pooled"]["object_f1"] <= 1.0
    out = tmp_path / "ws" / "synthetic_small" / "Use_Model" / "OUTPUT_MASKS"
    assert (out / "test1_labels.tif").is_file()
