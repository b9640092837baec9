"""bench/patch_floor.py reads learning curves from a report's history.csv (hand-written here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"

HISTORY = """fold,epoch,train_loss,val_dice,patches
1,1,0.9,0.50,100
1,2,0.8,,100
1,3,0.7,0.85,100
1,4,0.6,0.89,100
1,5,0.5,0.90,100
2,1,0.9,0.70,50
2,2,0.8,0.80,50
"""


def test_patches_until_the_validation_dice_comes_near_its_best(tmp_path):
    sys.path.insert(0, str(BENCH))
    import patch_floor

    report = tmp_path / "ws" / "Use_Model" / "saved_models" / "m_report"
    report.mkdir(parents=True)
    (report / "history.csv").write_text(HISTORY)
    curves = patch_floor.learning_curve(report / "history.csv")
    assert curves == {1: [(100, 0.50), (300, 0.85), (400, 0.89), (500, 0.90)], 2: [(50, 0.70), (100, 0.80)]}
    assert [patch_floor.patches_to_reach(curves[1], m) for m in (0.01, 0.02, 0.05)] == [400, 400, 300]
    out = tmp_path / "floor.json"
    assert patch_floor.main([str(report), "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["fold"], r["patches_trained"], r["patches_within_0.05"]) for r in rows] == [
        (1, 500, 300),
        (2, 100, 100),
    ]
