"""bench/train_data_path.py times both data paths over the same patches and writes what it measured."""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_both_paths_draw_every_epoch_from_the_same_pool(tmp_path):
    sys.path.insert(0, str(BENCH))
    import train_data_path

    out = tmp_path / "run.json"
    train_data_path.main(
        ["--slices", "2", "--size", "64", "--patch", "32", "--batches", "4", "--epochs", "2"]
        + ["--device", "cpu", "--threads", "1", "--json", str(out)]
    )
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    # 2 slices x 9 grid patches + 9 random crops = 27: 6 whole batches of 4 each way
    assert row["patches_per_epoch"] == {"old": 24, "new": 24}
    assert len(row["seconds"]["old"]) == len(row["seconds"]["new"]) == 2
    assert row["where"] == "device" and result["validation"] is None
    old, new = row["mean_image_std_foreground"]["old"], row["mean_image_std_foreground"]["new"]
    assert abs(old[2] - new[2]) < 0.05  # the foreground share of the same pool
