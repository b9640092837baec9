"""The napari plugin's Qt-free parts: layer data <-> API arrays, the live training line, job refusals."""

from __future__ import annotations

import numpy as np
import pytest

from paulow.api import Prediction
from paulow.errors import ShapeMismatchError, UsageError
from paulow.napari import jobs
from paulow.napari.layers import (
    image_pages,
    label_pages,
    page_index,
    probability_array,
    sparse_masks,
    sparse_training_pairs,
    training_pairs,
)


def test_image_pages_for_grey_rgb_stacks_and_channels_first():
    grey = np.arange(12).reshape(3, 4)
    pages, shape = image_pages(grey, rgb=False)
    assert pages.shape == (1, 1, 3, 4) and shape == (3, 4) and np.array_equal(pages[0, 0], grey)
    rgb = np.arange(36).reshape(3, 4, 3)
    pages, shape = image_pages(rgb, rgb=True)
    assert pages.shape == (1, 3, 3, 4) and shape == (3, 4) and np.array_equal(pages[0, 2], rgb[..., 2])
    stack = np.arange(24).reshape(2, 3, 4)
    pages, shape = image_pages(stack, rgb=False)
    assert pages.shape == (2, 1, 3, 4) and shape == (2, 3, 4) and np.array_equal(pages[1, 0], stack[1])
    pages, shape = image_pages(stack, rgb=False, in_channels=2)  # a 2-channel model: channels first
    assert pages.shape == (1, 2, 3, 4) and shape == (3, 4)


def _prediction(mask: np.ndarray) -> Prediction:
    return Prediction(mask[None].astype(np.float32), mask.astype(np.uint8))


def test_instances_are_numbered_on_across_pages_and_probabilities_take_the_layer_shape():
    page = np.zeros((6, 6), np.uint8)
    page[0:2, 0:2] = 1
    page[4:6, 4:6] = 1
    preds = [_prediction(page), _prediction(page)]
    labels = label_pages(preds, instances=True)
    assert labels.shape == (2, 6, 6)
    assert sorted(np.unique(labels[0])) == [0, 1, 2] and sorted(np.unique(labels[1])) == [0, 3, 4]
    assert np.array_equal(label_pages(preds, instances=False), np.stack([page, page]))
    assert probability_array(preds, (2, 6, 6)).shape == (2, 6, 6)
    classes = [Prediction(np.zeros((3, 6, 6), np.float32), page)]
    assert probability_array(classes, (6, 6)).shape == (3, 6, 6)


def test_training_pairs_cut_pages_into_tiles_and_refuse_labels_of_another_size():
    image = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    labels = (image % 7 == 0).astype(np.uint8)
    images, masks = training_pairs(image, labels, rgb=False, tiles=2)
    assert [i.shape for i in images] == [(1, 32, 32)] * 4 and [m.shape for m in masks] == [(32, 32)] * 4
    assert np.array_equal(images[1][0], image[:32, 32:]) and np.array_equal(masks[2], labels[32:, :32])
    images, masks = training_pairs(np.stack([image, image]), np.stack([labels, labels]), rgb=False, tiles=1)
    assert len(images) == 2 and images[0].shape == (1, 64, 64)
    with pytest.raises(
        ShapeMismatchError, match=r"labels layer is \(32, 32\) but the image layer is \(64, 64\)"
    ):
        training_pairs(image, labels[:32, :32], rgb=False)


def test_sparse_labels_unpainted_is_ignored_label_1_is_background():
    labels = np.array([[0, 1, 2], [3, 3, 0], [1, 0, 4]], np.uint8)
    mask, painted = sparse_masks(labels, classes=False)  # any label >= 2 is its own object
    assert mask.tolist() == [[0, 0, 1], [2, 2, 0], [0, 0, 3]]
    assert painted.tolist() == [[False, True, True], [True, True, False], [True, False, True]]
    mask, painted = sparse_masks(labels, classes=True)  # label k + 1 is class k
    assert mask.tolist() == [[0, 0, 1], [2, 2, 0], [0, 0, 3]] and painted.sum() == 6
    image = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    strokes = np.zeros((64, 64), np.uint8)
    strokes[5, 2:20], strokes[40:50, 40] = 1, 2  # in the top-left and bottom-right tiles only
    images, masks, marks = sparse_training_pairs(image, strokes, rgb=False, tiles=2)
    assert len(images) == len(masks) == len(marks) == 2  # the unpainted tiles are left out
    assert np.array_equal(images[1][0], image[32:, 32:]) and int(masks[1].max()) == 1
    assert [int(m.sum()) for m in marks] == [18, 10]


def test_page_index_of_a_point():
    assert page_index([3.0, 4.0], (10, 10)) == 0
    assert page_index([2.2, 5.0, 5.0], (4, 10, 10)) == 2
    assert page_index([1.0, 2.0, 0.0, 0.0], (3, 4, 10, 10)) == 6
    assert page_index([9.0, 0.0, 0.0], (4, 10, 10)) == 3  # clipped to the last page


def test_epoch_rows_become_live_loss_and_dice():
    best = [-1.0]
    row = {"fold": 1, "epoch": 3, "folds": 1, "epochs": 10, "train_loss": 0.41234, "val_dice": 0.81}
    update = jobs._epoch_update(row, best)
    assert update == jobs.Update("epoch 3/10: loss 0.4123, validation Dice 0.8100 (best 0.8100)", 3, 10)
    row = {"fold": 2, "epoch": 4, "folds": 2, "epochs": 10, "train_loss": 0.3, "val_dice": None}
    update = jobs._epoch_update(row, best)
    assert update == jobs.Update("fold 2/2, epoch 4/10: loss 0.3000, validation Dice - (best 0.8100)", 14, 20)
    row = {"fold": 2, "epoch": 5, "folds": 2, "epochs": 10, "train_loss": 0.25, "val_dice": 0.5}
    assert jobs._epoch_update(row, best).message.endswith("validation Dice 0.5000 (best 0.8100)")


def test_jobs_refuse_missing_models_and_existing_outputs(tmp_path):
    with pytest.raises(UsageError, match="model file '.*nope.pth' not found: choose a saved PAULow model"):
        next(jobs.segment(tmp_path / "nope.pth", np.zeros((8, 8)), False))
    taken = tmp_path / "taken.pth"
    taken.write_bytes(b"keep me")
    with pytest.raises(UsageError, match="exists: choose another name"):
        next(jobs.train([], [], taken))
    with pytest.raises(UsageError, match="a name ending in .pth"):
        next(jobs.train([], [], tmp_path / "model.txt"))
    assert taken.read_bytes() == b"keep me"


def test_the_plugin_uses_paulow_only_through_its_api():
    """Every PAULow module the napari plugin imports (at the top or inside a function) is `paulow.api`."""
    import ast
    from pathlib import Path

    import paulow.napari

    used = set()
    for source in Path(paulow.napari.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                used.add(node.module)
            elif isinstance(node, ast.ImportFrom) and node.level > 1:
                used.add("paulow." + (node.module or ""))  # `from ..x import y`: outside the plugin
            elif isinstance(node, ast.Import):
                used.update(alias.name for alias in node.names)
    assert {name for name in used if name.split(".")[0] == "paulow"} == {"paulow.api"}
