"""The API as a notebook uses it: evaluate any model's prediction against 0/255 or label truth,
lists of images, `axes=` for channels-last arrays, progress that `verbose=False` silences."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paulow.api import Model, Prediction, evaluate
from paulow.boundaries import boundary_target
from paulow.errors import ModelError, ShapeMismatchError
from paulow.progress import progress


def _two_objects() -> np.ndarray:
    labels = np.zeros((40, 40), np.uint16)
    labels[5:15, 5:15] = 1  # 100 px
    labels[20:30, 20:35] = 2  # 150 px
    return labels


def _boundary_prediction(labels: np.ndarray) -> Prediction:
    """A boundary model's perfect probabilities for `labels` (one-hot of their 3-class target)."""
    target = boundary_target(labels, 2)
    probs = np.stack([(target == c).astype(np.float32) for c in range(3)])
    return Prediction(probs, (labels > 0).astype(np.uint8), 0.5, boundary=True, boundary_width=2)


@pytest.mark.parametrize("scale", [255, 1])
def test_boundary_prediction_scores_its_objects_against_0_255_or_0_1_truth(scale):
    labels = _two_objects()
    scores = evaluate(_boundary_prediction(labels), (labels > 0).astype(np.uint8) * scale)
    assert scores["dice"] == 1.0 and scores["object_f1"] == 1.0 and scores["object_n_true"] == 2
    assert scores["class_mean_dice"] == 1.0 and scores["class_dice_boundary"] == 1.0


def test_boundary_prediction_missing_one_object_scored_by_hand():
    labels = _two_objects()
    pred = _boundary_prediction(np.where(labels == 2, 0, labels))  # finds only the 100 px object
    scores = evaluate(pred, labels)  # label truth
    assert scores["dice"] == pytest.approx(2 * 100 / (100 + 250))
    assert (scores["object_precision"], scores["object_recall"]) == (1.0, 0.5)
    # classes: background perfect but for the missed object's 150 px; interior 2*36/(36+36+66); ...
    inside_missed = 11 * 6  # the 10 x 15 object's interior after a 2 px ring
    assert scores["class_dice_interior"] == pytest.approx(2 * 36 / (36 + 36 + inside_missed))


def test_binary_prediction_with_touching_label_truth_counts_each_object():
    labels = np.zeros((20, 20), np.uint16)
    labels[2:10, 2:10], labels[2:10, 10:18] = 1, 2  # touching: one blob in a binary mask
    mask = (labels > 0).astype(np.uint8)
    scores = evaluate(Prediction(mask[None].astype(np.float32), mask), labels)
    assert scores["dice"] == 1.0 and scores["object_n_true"] == 2 and scores["object_n_pred"] == 1
    with pytest.raises(
        ShapeMismatchError, match=r"the truth mask is \(10, 10\) but the prediction \(20, 20\)"
    ):
        evaluate(Prediction(mask[None].astype(np.float32), mask), labels[:10, :10])


def _model(in_channels: int) -> Model:
    net = torch.nn.Conv2d(in_channels, 1, 1)
    with torch.no_grad():
        net.weight.fill_(20.0 / in_channels)
        net.bias.fill_(-10.0)
    meta = {
        "in_channels": in_channels,
        "classes": 1,
        "threshold": 0.5,
        "patch": 32,
        "min_size": 0,
        "normalisation": {"mode": "percentile", "low": 1.0, "high": 99.0},
    }
    return Model([net.eval()], meta)


def _rgb() -> np.ndarray:
    image = np.zeros((48, 40, 3), np.uint8)
    image[10:30, 10:20] = 200
    return image


def test_lists_and_channels_last_rgb_arrays():
    model = _model(3)
    preds = model.predict([_rgb(), _rgb()[:32]], verbose=False)  # (H, W, 3): read as YXC
    assert [p.mask.shape for p in preds] == [(48, 40), (32, 40)]
    assert preds[0].mask[20, 15] == 1 and preds[0].mask[40, 35] == 0
    same = model.predict(np.moveaxis(_rgb(), -1, 0), verbose=False)  # (3, H, W)
    np.testing.assert_array_equal(same.mask, preds[0].mask)
    grey = _model(1).predict(_rgb()[:, :, 0], verbose=False)
    np.testing.assert_array_equal(grey.mask, preds[0].mask)


def test_channel_errors_name_the_axes_used():
    model = _model(1)
    with pytest.raises(ModelError, match=r"^'array1 read as YXC' has 5 channel\(s\) but the model expects 1"):
        model.predict(np.zeros((32, 32, 5), np.uint8), axes="YXC", verbose=False)
    with pytest.raises(ModelError, match=r"^'array1 read as CYX \(pass axes= if not\)' has 32 channel\(s\)"):
        model.predict(np.zeros((32, 32, 32), np.uint8), verbose=False)
    with pytest.raises(ShapeMismatchError, match="axes 'YX' do not describe an array of shape"):
        model.predict(np.zeros((32, 32, 3), np.uint8), axes="YX", verbose=False)
    stack = model.predict_stack(np.zeros((2, 32, 32), np.uint8), axes="ZYX")
    assert len(stack) == 2


def test_progress_bar_and_verbose_false(capsys):
    echo, on_epoch, bar = progress(False, None, None, "training")
    echo("nothing")
    assert on_epoch is None and bar is None and capsys.readouterr() == ("", "")
    rows = []
    echo, on_epoch, bar = progress(True, None, rows.append, "training")
    on_epoch({"fold": 2, "epoch": 3, "folds": 2, "epochs": 10, "val_dice": 0.5})
    assert (bar.bar.n, bar.bar.total) == (13, 20) and rows[0]["epoch"] == 3  # chained to the user's
    echo("plan: 2 folds")
    bar.close()
    err = capsys.readouterr()
    assert "plan: 2 folds" in err.out + err.err and "training" in err.err


def test_model_table_shows_a_boundary_models_object_dice_with_its_class_mean_beside(tmp_path):
    from paulow.checkpoint import describe, save_checkpoint
    from paulow.models import build_model

    net = build_model("unet", 1, 3, width=4, depth=2)
    args = {"in_channels": 1, "classes": 3, "width": 4, "depth": 2}
    path = save_checkpoint(
        tmp_path / "b.pth",
        [net.state_dict()],
        {
            "arch": "unet",
            "arch_args": args,
            "in_channels": 1,
            "classes": 3,
            "boundary_target": 2,
            "metrics": {"test_dice": 0.43, "test_dice_objects": 0.86},
        },
    )
    row = describe(path)
    assert row["test_dice"] == 0.86 and row["class_dice"] == "class mean 0.430"


def test_finetune_lines_give_a_boundary_models_object_dice():
    from paulow.finetuning import _dice_text

    assert (
        _dice_text({"dice": 0.43, "dice_objects": 0.86}, "parent model")
        == "object Dice of the parent model: 0.8600 (class mean Dice 0.4300)"
    )
    assert (
        _dice_text({"dice": 0.45, "dice_objects": 0.88}, "fine-tuned model", 0.02)
        == "object Dice of the fine-tuned model: 0.8800 (+0.0200; class mean Dice 0.4500)"
    )
    assert _dice_text({"dice": 0.9}, "parent model") == "Dice of the parent model: 0.9000"
