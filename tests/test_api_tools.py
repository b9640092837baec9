"""The API behind the smaller commands and the bench: evaluate_run, files, network summary, inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from paulow import api
from paulow.errors import UsageError


def _square(size: int = 8) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[2:6, 2:6] = 255
    return mask


def test_evaluate_run_scores_a_folder_and_writes_the_files(tmp_path):
    truth, pred = tmp_path / "truth", tmp_path / "pred"
    truth.mkdir(), pred.mkdir()
    api.write_mask(truth / "mask1.tif", _square())
    half = _square()
    half[2:6, 4:6] = 0  # 8 of 16 pixels: Dice 2*8 / (8 + 16) = 2/3
    api.write_mask(pred / "image1_mask.tif", half)
    run = api.evaluate_run(truth, predictions=[pred])
    assert (run.classes, run.names, len(run.results)) == (1, ("class 0",), 1)
    assert run.results[0].pooled["dice"] == pytest.approx(2 / 3)
    assert run.keys[:2] == ["dice", "iou"] and run.comparison_rows()[0]["name"] == str(pred)
    out = api.write_evaluation(run, tmp_path / "out")
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "pooled.csv", "pred_per_image.csv"]
    saved = json.loads((out / "metrics.json").read_text())[str(pred)]
    assert saved["pooled"]["dice"] == pytest.approx(2 / 3) and saved["class_names"] is None


def test_evaluate_run_needs_something_to_score_and_images_for_models(tmp_path):
    api.write_mask(tmp_path / "mask1.tif", _square())
    with pytest.raises(UsageError, match="nothing to evaluate"):
        api.evaluate_run(tmp_path)
    with pytest.raises(UsageError, match="--model needs --images"):
        api.evaluate_run(tmp_path, models=[tmp_path / "m.pth"])


def test_score_masks_and_class_scores_give_exact_values():
    truth = np.array([[0, 1, 1, 2]], np.uint8)
    pred = np.array([[0, 1, 2, 2]], np.uint8)
    scored = api.score_masks([("a", 0, pred, truth)], "x", classes=3)
    rows = api.class_scores(scored.pooled, ["bg", "one", "two"])
    # class 1: truth 2 px, predicted 1 of them; class 2: truth 1 px, predicted with 1 more: Dice 2/3 each
    assert [r["class"] for r in rows] == ["bg", "one", "two", "mean (foreground)"]
    assert [r["dice"] for r in rows] == pytest.approx([1.0, 2 / 3, 2 / 3, 2 / 3])


def test_files_round_trip_and_binary_masks(tmp_path):
    image = np.arange(12, dtype=np.uint16).reshape(3, 4)
    api.write_image(tmp_path / "img.tif", image)
    assert api.read_image(tmp_path / "img.tif").shape == (1, 1, 3, 4)
    assert (api.read_image(tmp_path / "img.tif")[0, 0] == image).all()
    api.write_mask(tmp_path / "m.tif", np.array([[0, 1], [3, 0]]), binary=True)
    assert api.read_mask(tmp_path / "m.tif").tolist() == [[[0, 255], [255, 0]]]
    api.write_mask(tmp_path / "c.tif", np.array([[0, 1], [2, 0]], np.uint8))
    assert api.read_mask(tmp_path / "c.tif").tolist() == [[[0, 1], [2, 0]]]


def test_synthetic_image_is_the_generators_and_datasets_pair(tmp_path):
    from paulow.synthetic import nuclei_image

    image, mask = api.synthetic_image("nuclei", (32, 32), seed=3)
    expected = nuclei_image((32, 32), seed=3)
    assert (image == expected[0]).all() and (mask == expected[1]).all()
    pairs = api.write_synthetic_dataset(tmp_path / "i", tmp_path / "m", n=2, size=(32, 32), seed=1)
    assert api.image_pairs(tmp_path / "i", tmp_path / "m") == pairs


def test_network_summary_counts_the_parameters_of_the_built_network():
    from paulow.models import build_model

    info = api.network_summary("unet", width=4, depth=2)
    net = build_model("unet", in_channels=1, classes=1, width=4, depth=2)
    assert info.parameters == sum(p.numel() for p in net.parameters())
    assert info.title == "unet width 4 depth 2" and info.layers[0]["output"].endswith("x256x256")
    assert info.gflop_per_megapixel > 0


def test_find_inputs_lists_folders_and_refuses_missing_paths(tmp_path):
    api.write_image(tmp_path / "b.tif", np.zeros((4, 4), np.uint8))
    api.write_image(tmp_path / "a.tif", np.zeros((4, 4), np.uint8))
    assert [p.name for p in api.find_inputs([tmp_path])] == ["a.tif", "b.tif"]
    with pytest.raises(UsageError, match="no such file or folder"):
        api.find_inputs([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no images there"):
        api.find_inputs([tmp_path / "empty"])
