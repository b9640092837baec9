"""`--boundary-target`: the 3-class target, the seeded watershed, and the scripts end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from _workflow import TINY_TRAIN, files, run_script

from paulow.boundaries import boundary_target, instances_from_boundaries, with_boundary_targets
from paulow.checkpoint import load_checkpoint
from paulow.config import config_from_options
from paulow.errors import UsageError
from paulow.slices import Slice


def _two_touching_squares() -> np.ndarray:
    labels = np.zeros((7, 11), dtype=np.int32)
    labels[1:6, 1:6] = 1
    labels[1:6, 6:11] = 2  # touches square 1 along columns 5|6, and the right image edge
    return labels


def test_target_of_two_touching_labelled_squares_width_1():
    expected = np.array(
        [
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            [0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2],
            [0, 2, 1, 1, 1, 2, 2, 1, 1, 1, 1],
            [0, 2, 1, 1, 1, 2, 2, 1, 1, 1, 1],
            [0, 2, 1, 1, 1, 2, 2, 1, 1, 1, 1],
            [0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2],
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ],
        dtype=np.uint8,
    )
    assert np.array_equal(boundary_target(_two_touching_squares(), 1), expected)


def test_binary_mask_gets_only_the_outer_ring_and_width_2_is_thicker():
    binary = (_two_touching_squares() > 0).astype(np.uint8)
    s = Slice(np.zeros((1, 7, 11), np.float32), binary, Path("a"), 0)
    target = with_boundary_targets([s], 1)[0].mask
    assert target[3, 5] == 1 and target[3, 6] == 1  # one component: the touching line is interior
    assert target[1, 3] == 2 and target[3, 1] == 2 and target[0, 3] == 0
    wide = boundary_target(_two_touching_squares(), 2)
    # 2 px ring: square 1 keeps only its centre; square 2 its centre row up to the image edge
    assert sorted(zip(*np.nonzero(wide == 1))) == [(3, 3), (3, 8), (3, 9), (3, 10)]
    assert np.array_equal(wide > 0, _two_touching_squares() > 0)


def test_watershed_separates_two_touching_objects():
    # a 3-class map of two 6x6 squares touching along one column, as a boundary model predicts it
    prob = np.zeros((3, 10, 16), dtype=np.float32)
    prob[0] = 1.0
    objects = np.zeros((10, 16), bool)
    objects[2:8, 2:14] = True  # one blob: squares [2:8, 2:8] and [2:8, 8:14]
    interiors = np.zeros((10, 16), bool)
    interiors[3:7, 3:7] = interiors[3:7, 9:13] = True
    prob[:, objects] = [[0.1], [0.2], [0.7]]  # ring: boundary most probable
    prob[:, interiors] = [[0.1], [0.8], [0.1]]
    prob[2, 2:8, 7:9] = 0.9  # the touching line is the highest boundary
    labels = instances_from_boundaries(prob)
    assert labels.dtype == np.uint16 and set(np.unique(labels)) == {0, 1, 2}
    assert np.array_equal(labels > 0, objects)
    assert np.all(labels[2:8, 2:8] == labels[4, 4]) and np.all(labels[2:8, 8:14] == labels[4, 10])
    assert labels[4, 4] != labels[4, 10]
    from paulow.api import Prediction  # the API's predictions of a boundary model give the same objects
    from paulow.boundaries import object_mask

    pred = Prediction(prob, object_mask(prob), boundary=True)
    assert np.array_equal(pred.labels(), labels) and len(pred.objects()) == 2
    assert pred.labels(min_size=40).max() == 0  # each object has 36 px
    # foreground with no interior at all stays one object
    prob[:, interiors] = [[0.1], [0.2], [0.7]]
    assert set(np.unique(instances_from_boundaries(prob))) == {0, 1}


def _slice(mask: np.ndarray) -> Slice:
    return Slice(np.zeros((1, *mask.shape), np.float32), mask.astype(np.uint8), Path("a"), 0)


def _square_and_line() -> tuple[np.ndarray, np.ndarray]:
    square = np.zeros((30, 30), np.uint8)
    square[5:25, 5:25] = 1  # 20 x 20: a 2 px ring leaves its 16 x 16 centre, 256 of 400 px
    line = np.zeros((30, 30), np.uint8)
    line[10:13, 0:30] = 1  # 3 px wide: every pixel is within 2 px of the background
    return square, line


def test_object_mask_thresholds_one_minus_background_and_labels_follow_it():
    from paulow.boundaries import object_mask, object_probability

    # columns: P(background) 0.9, 0.6, 0.4 (argmax background: interior 0.35, boundary 0.25), 0.1, 0.05
    prob = np.array(
        [[[0.9, 0.6, 0.4, 0.1, 0.05]], [[0.05, 0.3, 0.35, 0.8, 0.9]], [[0.05, 0.1, 0.25, 0.1, 0.05]]],
        dtype=np.float32,
    )
    assert object_probability(prob).shape == (1, 1, 5)
    assert np.allclose(object_probability(prob)[0, 0], [0.1, 0.4, 0.6, 0.9, 0.95])
    assert object_mask(prob).tolist() == [[0, 0, 1, 1, 1]]  # more likely object than background
    assert object_mask(prob, 0.3).tolist() == [[0, 1, 1, 1, 1]]
    assert object_mask(prob, 0.92).tolist() == [[0, 0, 0, 0, 1]]
    # the instances are the thresholded objects; a seed outside them is dropped
    assert instances_from_boundaries(prob).tolist() == [[0, 0, 1, 1, 1]]
    assert instances_from_boundaries(prob, threshold=0.92).tolist() == [[0, 0, 0, 0, 1]]
    assert instances_from_boundaries(prob, threshold=0.3).tolist() == [[0, 1, 1, 1, 1]]


def test_mask_rule_says_how_each_kind_of_model_makes_its_mask():
    from paulow.boundaries import mask_rule

    assert mask_rule({"classes": 1, "threshold": 0.85}) == "foreground where the probability > 0.85"
    assert mask_rule({"classes": 4}) == "the most probable class of each pixel"
    assert mask_rule({"classes": 3, "boundary_target": 2, "threshold": 0.7}).startswith(
        "objects where 1 - P(background) > 0.70 (channels: background, interior, boundary"
    )


def test_object_threshold_is_tuned_on_the_object_probability():
    from paulow.scoring import object_dice, sweep_object_thresholds

    prob = np.zeros((3, 1, 4), np.float32)
    prob[0, 0] = [0.9, 0.7, 0.2, 0.1]  # object probability 0.1, 0.3, 0.8, 0.9
    prob[1, 0] = 1.0 - prob[0, 0]
    truth = np.array([[0, 0, 1, 2]], np.uint8)  # the 3-class target: interior and boundary are objects
    t, dice = sweep_object_thresholds([prob], [truth], (0.2, 0.5, 0.85))
    assert (t, dice) == (0.5, 1.0)  # 0.2 takes (0, 1) too, 0.85 misses (0, 2)
    assert object_dice([prob], [truth], threshold=0.2) == pytest.approx(4 / 5)
    assert object_dice([prob], [truth], threshold=0.85) == pytest.approx(2 / 3)


def test_interior_share_counted_by_hand():
    from paulow.boundaries import interior_share

    square, line = _square_and_line()
    assert interior_share([_slice(square)]) == pytest.approx(256 / 400)
    assert interior_share([_slice(line)]) == 0.0
    assert interior_share([_slice(square), _slice(line)]) == pytest.approx(256 / 490)
    assert interior_share([_slice(np.zeros((8, 8)))]) == 0.0  # no objects at all
    # labelled squares touching along a line: the 1 px ring runs along it too (see the target above)
    labelled = Slice(
        np.zeros((1, 7, 11), np.float32),
        (_two_touching_squares() > 0).astype(np.uint8),
        Path("a"),
        0,
        labels=_two_touching_squares(),
    )
    assert interior_share([labelled], 1) == pytest.approx(21 / 50)


def test_auto_target_learns_boundaries_of_objects_with_an_inside_only():
    from paulow.boundaries import choose_target

    square, line = _square_and_line()
    said: list[str] = []
    given = config_from_options({})
    assert given.boundary_target == "auto" and given.classes == 1 and given.mask_classes() == 1
    cfg = choose_target([_slice(square)], given, said.append)
    assert (cfg.boundary_target, cfg.classes, cfg.class_names) == (
        2,
        3,
        ["background", "interior", "boundary"],
    )
    assert given == config_from_options({})  # the given config is not changed
    assert said[0].startswith("target: background / interior / boundary (64% of the object pixels")
    assert "--no-boundary-target" in said[0]
    said = []
    cfg = choose_target([_slice(line), _slice(square)], given, said.append)  # 256 of 490 px: still over half
    assert cfg.boundary_target == 2
    said = []
    cfg = choose_target([_slice(line)], given, said.append)
    assert (cfg.boundary_target, cfg.classes) == (None, 1)
    assert said == [
        "target: binary (0% of the object pixels lie more than 2 px inside an object: thin or "
        "small objects; --boundary-target learns boundaries anyway)"
    ]
    again = choose_target([_slice(square)], cfg, said.append)  # settled once: a second call changes nothing
    assert again is cfg and len(said) == 1
    named = config_from_options({"class_names": ["nucleus"]})  # a binary model named: stays one
    cfg = choose_target([_slice(square)], named, said.append)
    assert (cfg.boundary_target, cfg.classes) == (None, 1) and len(said) == 1
    fixed = config_from_options({"boundary_target": 1})
    assert choose_target([_slice(line)], fixed, said.append) is fixed  # an explicit width is obeyed
    assert fixed.boundary_target == 1 and fixed.classes == 3


def test_boundary_target_options():
    cfg = config_from_options({"boundary_target": 2})
    assert (cfg.classes, cfg.mask_classes(), cfg.class_names) == (
        3,
        1,
        ["background", "interior", "boundary"],
    )
    assert config_from_options({}).boundary_target == "auto"
    assert config_from_options({"no_boundary_target": True}).boundary_target is None
    assert config_from_options({"boundary_target": 0}).boundary_target is None
    assert config_from_options({"classes": 3}).boundary_target is None  # K classes: no auto target
    assert config_from_options({}, preset="paper").boundary_target is None  # the published binary target
    assert config_from_options({"classes": 1}).boundary_target == "auto"
    with pytest.raises(UsageError, match="leave out --classes 2"):
        config_from_options({"boundary_target": 2, "classes": 2})
    with pytest.raises(
        UsageError, match="--boundary-target 1.5 is out of range: give a whole number from 1 to 1000"
    ):
        config_from_options({"boundary_target": 1.5})


def test_boundary_model_through_the_scripts(tmp_path):
    from paulow.synthetic import write_dataset
    from paulow.workspace import Workspace

    ws = Workspace(tmp_path)
    ws.setup()
    write_dataset(ws.train_images, ws.train_masks, kind="nuclei", n=4, size=(64, 64), seed=3)
    write_dataset(ws.use_inputs, tmp_path / "gt", kind="nuclei", n=1, size=(64, 64), seed=9)
    done = run_script(
        "train_model.py",
        "--root",
        str(tmp_path),
        "--name",
        "bd",
        "--epochs",
        "2",
        "--boundary-target",
        "--border-weight",
        *TINY_TRAIN,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    meta = load_checkpoint(ws.models / "bd.pth").meta
    assert meta["boundary_target"] == 2 and meta["classes"] == 3
    assert meta["class_names"] == ["background", "interior", "boundary"]
    used = run_script("use_model.py", "--root", str(tmp_path), "--model", "bd", "--yes", "--instances")
    assert used.returncode == 0, used.stdout + used.stderr
    out = files(ws.use_outputs)
    assert "image1_mask.tif" in out and "image1_labels.tif" in out and "objects.csv" in out
    mask = tifffile.imread(ws.use_outputs / "image1_mask.tif")
    labels = tifffile.imread(ws.use_outputs / "image1_labels.tif")
    assert set(np.unique(mask)) == {0, 255}  # a binary object mask with objects in it, not the 3 classes
    assert np.array_equal(labels > 0, mask > 0)
    rows = (ws.use_outputs / "objects.csv").read_text().splitlines()[1:]
    assert len(rows) == len(np.unique(labels)) - 1 >= 1  # one row per object, and there are objects


def test_finetuning_a_boundary_model_keeps_its_target_and_takes_border_weight(tmp_path):
    from paulow.synthetic import write_dataset
    from paulow.workspace import Workspace

    ws = Workspace(tmp_path)
    ws.setup()
    write_dataset(ws.train_images, ws.train_masks, kind="nuclei", n=3, size=(64, 64), seed=4)
    done = run_script(
        "train_model.py",
        "--root",
        str(tmp_path),
        "--name",
        "bd",
        "--epochs",
        "1",
        "--boundary-target",
        "1",
        *TINY_TRAIN,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    write_dataset(ws.finetune_images, ws.finetune_masks, kind="nuclei", n=3, size=(64, 64), seed=6)
    tuned = run_script(
        "finetune_model.py",
        "--root",
        str(tmp_path),
        "--model",
        "bd",
        "--yes",
        "--epochs",
        "1",
        "--patch",
        "64",
        "--overlap",
        "32",
        "--width",
        "8",
        "--border-weight",
        "5,3",
    )
    assert tuned.returncode == 0, tuned.stdout + tuned.stderr
    meta = load_checkpoint(ws.models / "bd_finetuned.pth").meta
    assert meta["config"]["border_weight"] == [5.0, 3.0] and meta["config"]["boundary_target"] == 1
    assert meta["boundary_target"] == 1 and meta["classes"] == 3


def test_finetuning_cannot_change_the_boundary_target():
    from paulow.finetuning import finetune_config

    meta = {
        "arch": "paulow_attention_unet",
        "arch_args": {"width": 8, "depth": 4},
        "classes": 3,
        "boundary_target": 2,
        "config": {"boundary_target": 2, "classes": 3},
    }
    assert finetune_config(meta, {"boundary_target": 2}, "cpu").boundary_target == 2
    with pytest.raises(UsageError, match="--boundary-target 3: fine-tuning keeps the parent's target"):
        finetune_config(meta, {"boundary_target": 3}, "cpu")
    with pytest.raises(UsageError, match="--no-boundary-target True: fine-tuning keeps the parent's target"):
        finetune_config(meta, {"no_boundary_target": True}, "cpu")
    plain = {"arch": "paulow_attention_unet", "arch_args": {"width": 8}, "classes": 1, "config": {}}
    # a binary parent stays binary, even one saved before the automatic target (no key in its config)
    assert finetune_config(plain, {}, "cpu").boundary_target is None
    assert finetune_config(plain, {"no_boundary_target": True}, "cpu").boundary_target is None
    with pytest.raises(UsageError, match="--boundary-target 2"):
        finetune_config(plain, {"boundary_target": 2}, "cpu")
    assert finetune_config(plain, {"border_weight": "default"}, "cpu").border_weight == [10.0, 5.0]
