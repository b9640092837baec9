"""Report files parse back; plots are real PNGs of the expected size; tables are aligned exactly."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from paulow.errors import ShapeMismatchError
from paulow.report import (
    dataset_summary,
    display_image,
    format_table,
    plot_curves,
    sample_panel,
    snr,
    write_csv,
    write_json,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as im:
        return im.size


def test_write_json_converts_numpy_and_non_finite(tmp_path):
    obj = {
        "dice": np.float32(0.5),
        "n": np.int64(3),
        "ok": np.bool_(True),
        "shape": (2, 3),
        "arr": np.arange(3, dtype=np.uint8),
        "nan": float("nan"),
        "inf": np.float64("inf"),
        "path": Path("a/b.tif"),
        7: "int key",
        np.int64(8): "numpy key",
    }
    path = write_json(tmp_path / "out" / "m.json", obj)
    assert json.loads(path.read_text()) == {
        "dice": 0.5,
        "n": 3,
        "ok": True,
        "shape": [2, 3],
        "arr": [0, 1, 2],
        "nan": None,
        "inf": None,
        "path": "a/b.tif",
        "7": "int key",
        "8": "numpy key",
    }
    assert [p.name for p in path.parent.iterdir()] == ["m.json"]  # no temporary file left


def test_write_json_keeps_old_file_when_object_cannot_be_written(tmp_path):
    path = write_json(tmp_path / "m.json", {"a": 1})
    with pytest.raises(TypeError):
        write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_write_csv_header_is_union_of_keys_in_first_appearance_order(tmp_path):
    rows = [
        {"file": "a.tif", "dice": np.float64(0.25)},
        {"file": "b.tif", "page": 2, "dice": None},
        {"extra": "x"},
    ]
    path = write_csv(tmp_path / "r.csv", rows)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["file", "dice", "page", "extra"]
        assert list(reader) == [
            {"file": "a.tif", "dice": "0.25", "page": "", "extra": ""},
            {"file": "b.tif", "dice": "", "page": "2", "extra": ""},
            {"file": "", "dice": "", "page": "", "extra": "x"},
        ]


def test_write_csv_with_a_header_streams_an_iterator_to_the_same_bytes(tmp_path):
    rows = [{"label": k, "area_px": 10 * k, "mean_intensity": np.float64(k / 4)} for k in (1, 2, 3)]
    held = write_csv(tmp_path / "held.csv", rows)
    streamed = write_csv(tmp_path / "streamed.csv", iter(rows), header=["label", "area_px", "mean_intensity"])
    assert streamed.read_bytes() == held.read_bytes()
    assert streamed.read_text().splitlines()[1:] == ["1,10,0.25", "2,20,0.5", "3,30,0.75"]


def test_write_csv_of_no_rows_is_an_empty_file(tmp_path):
    assert write_csv(tmp_path / "r.csv", []).read_text() == ""


def _history(regimes: bool) -> list[dict]:
    rows = []
    for epoch in range(1, 4):
        row = {"fold": 1, "epoch": epoch, "train_loss": 1.0 / epoch, "val_dice": 0.2 * epoch}
        if regimes:
            row.update(regime_empty=4, regime_small=8 - 2 * epoch, regime_large=2 * epoch)
        rows.append(row)
    return rows


def test_plot_curves_with_regime_panel(tmp_path):
    path = plot_curves(_history(regimes=True), tmp_path / "curves.png", title="fold 1")
    assert _png_size(path) == (700, 800)


def test_plot_curves_without_regimes_has_two_panels(tmp_path):
    history = _history(regimes=False)
    for row in history:
        row["val_loss"] = 2.0
    history[1]["train_loss"] = float("nan")  # an epoch without a finished batch
    path = plot_curves(history, tmp_path / "curves.png")
    assert _png_size(path) == (700, 550)


def _slice() -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:40, :50]
    truth = ((yy - 20) ** 2 + (xx - 25) ** 2 < 100).astype(np.uint8)
    image = (truth + 0.1 * np.random.default_rng(0).random((40, 50))).astype(np.float32)
    return image, truth


def test_sample_panel_mask_and_probability(tmp_path):
    # 40 x 50 image: panels 4 x 3.2 inches plus 0.5 for the title, at 100 dpi
    image, truth = _slice()
    assert _png_size(sample_panel(image[None], truth, truth, tmp_path / "a.png", "t")) == (1200, 370)
    prob = np.clip(image - 0.05, 0, 1).astype(np.float32)
    assert _png_size(sample_panel(image, truth, prob, tmp_path / "b.png")) == (1200, 370)
    assert _png_size(sample_panel(np.stack([image] * 3), None, truth, tmp_path / "c.png")) == (800, 370)


def test_sample_panel_rejects_mismatched_shapes(tmp_path):
    image, truth = _slice()
    with pytest.raises(ShapeMismatchError, match="prediction"):
        sample_panel(image, truth, truth[:, :10], tmp_path / "a.png")
    assert not (tmp_path / "a.png").exists()


def test_display_image_stretches_between_percentiles():
    image = np.arange(1001, dtype=np.float32).reshape(1, 7, 143)  # 1st pct = 10, 99.8th = 998
    shown = display_image(image)
    assert shown.shape == (7, 143)
    assert (shown.ravel()[10], shown.ravel()[504]) == pytest.approx((0.0, 0.5))
    assert (shown.min(), shown.max()) == (0.0, 1.0)
    assert display_image(np.zeros((3, 4, 5))).shape == (4, 5, 3)
    assert display_image(np.ones((2, 4, 5))).tolist() == np.zeros((4, 5)).tolist()  # first channel, constant


def test_format_table_exact():
    rows = [
        {"name": "a", "dice": 0.5, "n": 3},
        {"name": "long name", "dice": np.float32(0.12345), "n": 12, "extra": 1},
        {"name": "b", "n": None},
    ]
    assert format_table(rows, ["name", "dice", "n"]) == (
        "name        dice   n\n---------  -----  --\na          0.500   3\nlong name  0.123  12\nb"
    )


def test_format_table_without_rows_is_header_and_rule():
    assert format_table([], ["a", "bb"]) == "a  bb\n-  --"


def test_dataset_summary_aggregates():
    infos = [
        {
            "file": "a.tif",
            "page": 0,
            "shape": [4, 5],
            "dtype": "uint8",
            "min": 3.0,
            "max": 200.0,
            "foreground_fraction": 0.25,
            "snr": 4.0,
            "channels": 1,
        },
        {
            "file": "a.tif",
            "page": 1,
            "shape": [4, 5],
            "dtype": "uint8",
            "min": 0.0,
            "max": 180.0,
            "foreground_fraction": 0.0,
            "snr": float("nan"),
            "channels": 1,
        },
        {
            "file": "b.tif",
            "page": 0,
            "shape": [8, 8],
            "dtype": "uint16",
            "min": 10.0,
            "max": 4000.0,
            "foreground_fraction": 0.5,
            "snr": 8.0,
            "channels": 3,
        },
    ]
    assert dataset_summary(infos) == {
        "slices": 3,
        "files": 2,
        "shapes": {"4x5": 2, "8x8": 1},
        "dtypes": {"uint8": 2, "uint16": 1},
        "intensity_min": 0.0,
        "intensity_max": 4000.0,
        "foreground_fraction": {"mean": 0.25, "min": 0.0, "max": 0.5},
        "empty_masks": 1,
        "snr": {"mean": 6.0, "min": 4.0, "max": 8.0},
        "channels": {1: 2, 3: 1},
    }


def test_dataset_summary_of_nothing():
    s = dataset_summary([])
    assert (s["slices"], s["files"], s["intensity_min"]) == (0, 0, None)
    assert (s["foreground_fraction"], s["snr"]) == (None, None)


def test_snr_by_hand():
    raw = np.array([[10.0, 10.0], [2.0, 4.0]])
    mask = np.array([[1, 1], [0, 0]])
    # foreground mean 10, background mean 3, background std (population) 1
    assert snr(raw, mask) == pytest.approx(7.0)
    assert math.isnan(snr(raw, np.zeros((2, 2))))


def test_plots_never_import_pyplot(tmp_path):
    """No pyplot: no global backend switch, no figure kept open (run in a fresh interpreter)."""
    import subprocess
    import sys

    code = (
        "import sys; from paulow.report import plot_curves; "
        f"plot_curves([{{'epoch': 1, 'train_loss': 1.0, 'val_dice': 0.5}}], r'{tmp_path / 'c.png'}'); "
        "print('matplotlib.pyplot' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert (tmp_path / "c.png").read_bytes()[:8] == PNG_MAGIC


def test_long_thin_panels_show_the_most_annotated_square(tmp_path):
    from paulow.report import representative_window

    truth = np.zeros((250, 1024), np.uint8)
    truth[10:20, 700:800] = 1
    rows, cols = representative_window(truth.shape, truth)
    assert (rows, cols.stop - cols.start) == (slice(0, 250), 250)
    assert cols.start <= 700 and cols.stop >= 800  # the foreground is inside the square
    assert representative_window((300, 500), truth[:, :500][:300]) == (slice(0, 300), slice(0, 500))
    tall = representative_window((1000, 100), np.zeros((1000, 100)))
    assert tall == (slice(0, 100), slice(0, 100))
    image = np.random.default_rng(0).random((250, 1024)).astype(np.float32)
    path = sample_panel(image, truth, truth, tmp_path / "long.png")
    width, height = _png_size(path)
    assert height > width / 3 - 50  # square panels, not a 250 x 1024 strip


def test_attention_heatmap_blends_colour_over_the_image():
    from paulow.attention import heatmap_overlay

    grey = np.full((2, 2), 100, np.uint8)
    amap = np.array([[0.0, 1.0], [0.5, 0.0]], np.float32)
    out = heatmap_overlay(grey, amap)
    assert out.shape == (2, 2, 3) and out.dtype == np.uint8
    # jet: 0 is dark blue (0, 0, 128 in RGB), 1 is dark red (128, 0, 0); blended half and half with 100
    assert out[0, 0].tolist() == [50, 50, 114] and out[0, 1].tolist() == [114, 50, 50]
