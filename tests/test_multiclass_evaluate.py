"""`paulow evaluate --classes K`: per-class table (Dice, IoU, precision, recall), mean over the
foreground classes, mIoU / mPA, pooled over pages from the summed confusion matrix (issue 11)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from paulow.cli import main
from paulow.evaluate import class_rows, score_pages

# rows = true class, cols = predicted: M[0,0]=2, M[1,1]=1, M[1,2]=1, M[2,2]=1, M[2,0]=1
TRUTH = np.array([[0, 1, 1], [2, 2, 0]], np.uint8)
PRED = np.array([[0, 1, 2], [2, 0, 0]], np.uint8)


def test_pooled_over_pages_from_the_summed_confusion_matrix():
    # page 2 is perfect: class 0 tp 2, class 1 tp 2, class 2 tp 2
    perfect = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
    scored = score_pages([("a.tif", 0, PRED, TRUTH), ("b.tif", 0, perfect, perfect)], classes=3)
    pooled = scored.pooled
    # class 1: tp 1 + 2 = 3, fp 0, fn 1 -> Dice 6/7, IoU 3/4, precision 1, recall 3/4
    assert (pooled["dice_1"], pooled["iou_1"], pooled["precision_1"], pooled["pa_1"]) == pytest.approx(
        (6 / 7, 3 / 4, 1.0, 3 / 4)
    )
    # class 2: tp 1 + 2 = 3, fp 1, fn 1 -> Dice 6/8
    assert pooled["dice_2"] == pytest.approx(6 / 8)
    assert pooled["mean_dice"] == pytest.approx((6 / 7 + 6 / 8) / 2)
    assert pooled["mean_iou"] == pytest.approx((3 / 4 + 3 / 5) / 2)
    assert scored.rows[1]["mean_dice"] == 1.0
    rows = class_rows(pooled, ["bg", "a", "b"])
    assert [r["class"] for r in rows] == ["bg", "a", "b", "mean (foreground)"]
    assert rows[-1]["dice"] == pooled["mean_dice"]


def test_evaluate_classes_prints_the_per_class_table(tmp_path, capsys):
    truth, pred = tmp_path / "truth", tmp_path / "pred"
    truth.mkdir()
    pred.mkdir()
    tifffile.imwrite(truth / "img1.tif", TRUTH)
    tifffile.imwrite(pred / "img1_mask.tif", PRED)
    assert (
        main(
            [
                "evaluate",
                "--pred",
                str(pred),
                "--truth",
                str(truth),
                "--classes",
                "3",
                "--class-names",
                "bg,membrane,mito",
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.strip()}
    # membrane: tp 1, fp 0, fn 1 -> Dice 2/3, IoU 1/2, precision 1, recall 1/2
    assert lines["membrane"] == ["0.667", "0.500", "1.000", "0.500"]
    # mito: tp 1, fp 1, fn 1 -> Dice 1/2, IoU 1/3, precision 1/2, recall 1/2
    assert lines["mito"] == ["0.500", "0.333", "0.500", "0.500"]
    assert "mean (foreground)  0.583  0.417" in out
    assert f"mIoU {(2 / 3 + 1 / 2 + 1 / 3) / 3:.3f}, mPA {(1 + 1 / 2 + 1 / 2) / 3:.3f}" in out
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())[str(pred)]
    assert saved["class_names"] == ["bg", "membrane", "mito"]
    assert saved["pooled"]["dice_2"] == pytest.approx(0.5)


def test_a_value_beyond_the_classes_names_the_file_and_the_values():
    from paulow.errors import ShapeMismatchError

    with pytest.raises(ShapeMismatchError) as err:
        score_pages([("a.tif", 0, PRED, TRUTH)], classes=2)
    assert str(err.value) == (
        "'a.tif' page 0: prediction mask has values 0..2, outside 0..1 — fix the mask "
        "or the number of classes (--classes)"
    )
