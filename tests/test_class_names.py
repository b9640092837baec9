"""Class names (--class-names) and the per-class Dice summary of multi-class training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from paulow.cli import build_parser
from paulow.commands.common import config_from_args
from paulow.config import TrainConfig
from paulow.errors import UsageError
from paulow.slices import Slice
from paulow.training.results import FoldResult
from paulow.training.tuning import score_test


def test_class_names_from_the_command_line_reach_the_config():
    args = build_parser(Path(".")).parse_args(
        ["train", "--classes", "3", "--class-names", "background, membrane,mito"]
    )
    cfg = config_from_args(args, "cpu")
    assert cfg.names() == ["background", "membrane", "mito"]
    assert TrainConfig(classes=2).names() == ["class 0", "class 1"]


def test_a_name_count_that_does_not_match_classes_is_a_usage_error():
    args = build_parser(Path(".")).parse_args(["train", "--classes", "3", "--class-names", "a,b"])
    with pytest.raises(UsageError, match="2 name"):
        config_from_args(args, "cpu")


class Fixed(torch.nn.Module):
    """Logits that predict class = the input pixel value (0, 1 or 2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([(x == c).float() * 10 for c in range(3)], dim=1)


def test_per_class_dice_line_by_hand():
    image = np.zeros((1, 32, 32), np.float32)
    image[0, :8] = 1.0  # predicted class 1: rows 0-7
    image[0, 8:16] = 2.0  # predicted class 2: rows 8-15
    mask = np.zeros((32, 32), np.uint8)
    mask[:8] = 1  # class 1 exactly right: Dice 1
    mask[8:12] = 2  # class 2: tp 4 rows, fp 4 rows -> Dice 8 / 12
    cfg = TrainConfig(classes=3, class_names=["bg", "membrane", "mito"], patch=32)
    model = Fixed()
    model.paulow_activation = "softmax"
    lines: list[str] = []
    result = FoldResult(
        fold=0, state_dict={}, val_dice=0.0, best_epoch=1, history=[], train_files=[], val_files=[]
    )
    page = Slice(image, mask, Path("a.tif"), 0)
    score_test(model, result, [page], cfg, "cpu", lines.append)
    assert result.test_dice == pytest.approx((1 + 8 / 12) / 2)
    # background: truth rows 12-31 (20), predicted rows 16-31 (16): Dice 2 x 16 / 36
    assert lines[1] == (
        f"fold 1 test: per-class Dice bg {32 / 36:.4f}, membrane 1.0000, mito {8 / 12:.4f}; mean over "
        f"foreground classes {(1 + 8 / 12) / 2:.4f}"
    )


def test_auto_class_weights_are_inverse_frequencies_by_hand():
    from paulow.training.network import loss_options

    mask = np.zeros((2, 4), np.uint8)
    mask[1, 2:] = 1  # class 0: 6 pixels, class 1: 2, class 2: none
    slices = [Slice(np.zeros((1, 2, 4), np.float32), mask, Path("a.tif"), 0)]
    cfg = TrainConfig(classes=3, loss_args={"class_weights": "auto", "alpha": 0.6})
    assert loss_options(cfg, slices) == {"class_weights": pytest.approx([0.5, 1.5, 0.0]), "alpha": 0.6}
    assert loss_options(TrainConfig(classes=1, loss_args={"class_weights": "auto"}), slices) == {}


def test_class_names_from_classes_txt_beside_the_masks(tmp_path):
    from paulow.api import names_from_file

    assert names_from_file(tmp_path, 3) == []
    (tmp_path / "classes.txt").write_text("background\n membrane \n\nmito\n", encoding="utf-8")
    assert names_from_file(tmp_path, 3) == ["background", "membrane", "mito"]
    with pytest.raises(UsageError) as err:
        names_from_file(tmp_path, 4)
    assert str(err.value) == (
        f"'{tmp_path / 'classes.txt'}' names 3 class(es) (background, membrane, mito) "
        "for --classes 4: one name per line, background (class 0) first"
    )


def test_a_finetuned_model_does_not_inherit_the_parents_per_class_test_dice():
    from types import SimpleNamespace

    from paulow.finetuning import Finetuned, finetuned_meta

    parent = {
        "classes": 3,
        "class_names": ["bg", "a", "b"],
        "metrics": {"test_dice": 0.8, "best_fold": 1, "test_dice_per_class": {"bg": 0.9, "a": 0.8, "b": 0.8}},
    }
    result = SimpleNamespace(train_files=[], val_files=[], stopped="epochs", best_epoch=1)
    done = Finetuned(None, result, {"finetuned_dice": 0.7}, TrainConfig(classes=3))
    meta = finetuned_meta(parent, "m_finetuned", done, {"name": "m.pth"}, [])
    assert meta["metrics"]["test_dice"] == 0.7 and "test_dice_per_class" not in meta["metrics"]
    assert meta["class_names"] == ["bg", "a", "b"] and meta["activation"] == "softmax"


def test_class_weights_option_reaches_the_loss_settings():
    parse = build_parser(Path(".")).parse_args
    cfg = config_from_args(parse(["train", "--classes", "3", "--class-weights", "auto"]), "cpu")
    assert cfg.loss_args["class_weights"] == "auto"
    cfg = config_from_args(parse(["train", "--classes", "3", "--class-weights", "1, 2,4"]), "cpu")
    assert cfg.loss_args["class_weights"] == [1.0, 2.0, 4.0]
    with pytest.raises(UsageError, match="--classes K"):
        config_from_args(parse(["train", "--class-weights", "auto"]), "cpu")
    with pytest.raises(SystemExit):
        parse(["train", "--classes", "3", "--class-weights", "heavy"])


def test_step_timing_runs_with_auto_class_weights():
    from paulow.training.planning import time_steps

    cfg = TrainConfig(
        classes=3, width=4, depth=2, patch=32, batch_size=2, loss_args={"class_weights": "auto"}
    )
    assert time_steps(cfg, 1, "cpu", steps=1) > 0
    args = build_parser(Path(".")).parse_args(["train", "--classes", "3", "--class-weights", "1,2"])
    with pytest.raises(UsageError, match="gives 2 number"):
        config_from_args(args, "cpu")
