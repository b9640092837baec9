"""Fine-tuning honours its options (issue 14 items 12-13): what it cannot change is refused, what it
can is honoured and recorded, and its before/after Dice are what `paulow evaluate --model` gives."""

from __future__ import annotations

import json
import shutil

import pytest
from _workflow import files, run_script

from paulow.checkpoint import load_checkpoint, save_checkpoint
from paulow.errors import UsageError
from paulow.finetuning import finetune_config
from paulow.synthetic import write_dataset

TUNE = [
    "--yes",
    "--model",
    "t",
    "--patch",
    "64",
    "--overlap",
    "32",
    "--batch-size",
    "8",
    "--per-epoch",
    "0",
    "--time-limit",
    "0",
    "--patience",
    "100",
    "--seed",
    "0",
]
PARENT = {
    "arch": "paulow_attention_unet",
    "arch_args": {"in_channels": 1, "classes": 1, "width": 8, "depth": 3},
    "in_channels": 1,
    "classes": 1,
    "threshold": 0.35,
    "config": {"width": 8, "depth": 3, "lr": 2e-3, "threshold": 0.5, "rotate": True, "schedule": "cosine"},
}


def test_honoured_options_reach_the_config():
    cfg = finetune_config(
        PARENT,
        {
            "threshold": 0.3,
            "no_rotate": True,
            "schedule": "step",
            "gamma": 0.5,
            "lr": 1e-4,
            "epochs": 3,
            "batch_size": 2,
            "time_limit": 0,
            "patience": 7,
            "weight_decay": 0.0,
            "no_augment": True,
        },
        "cpu",
    )
    assert (cfg.threshold, cfg.tune_threshold, cfg.rotate, cfg.augment) == (0.3, False, False, False)
    assert (cfg.schedule, cfg.gamma, cfg.lr, cfg.epochs, cfg.batch_size) == ("step", 0.5, 1e-4, 3, 2)
    assert (cfg.time_limit, cfg.patience, cfg.weight_decay) == (None, 7, 0.0)
    assert (cfg.width, cfg.depth, cfg.folds) == (8, 3, 1)


def test_without_threshold_the_parents_is_the_start_and_is_retuned():
    cfg = finetune_config(PARENT, {}, "cpu")
    assert (cfg.threshold, cfg.tune_threshold) == (0.35, True)
    assert cfg.lr == pytest.approx(2e-4) and cfg.rotate


@pytest.mark.parametrize(
    "option, value, says",
    [
        ("width", 64, "width 64: fine-tuning cannot change the network"),
        ("depth", 4, "depth 4: fine-tuning cannot change the network"),
        ("arch", "unet", "arch unet: fine-tuning cannot change the network"),
        ("norm", "batch", "norm batch: fine-tuning cannot change the network"),
        ("classes", 3, "classes 3: fine-tuning cannot change the network"),
        (
            "encoder_weights",
            "vgg.pth",
            "encoder-weights vgg.pth: fine-tuning starts from the parent's weights",
        ),
        ("preset", "gpu", "preset gpu: fine-tuning starts from the parent's settings"),
        ("folds", 5, "folds 5: fine-tuning uses one split"),
        ("ensemble", True, "ensemble True: fine-tuning adapts one network"),
    ],
)
def test_options_that_would_change_the_network_are_refused(option, value, says):
    with pytest.raises(UsageError, match=says):
        finetune_config(PARENT, {option: value}, "cpu")


def test_the_parents_own_network_values_and_unknown_names():
    cfg = finetune_config(
        PARENT,
        {"width": 8, "depth": 3, "arch": "paulow_attention_unet", "classes": 1, "ensemble": False},
        "cpu",
    )
    assert (cfg.width, cfg.depth) == (8, 3)
    with pytest.raises(UsageError, match="unknown fine-tuning option.*thresold"):
        finetune_config(PARENT, {"thresold": 0.3}, "cpu")
    with pytest.raises(UsageError, match="threshold 1.5"):
        finetune_config(PARENT, {"threshold": 1.5}, "cpu")


def _new_images(ws, n=4, seed=21):
    write_dataset(ws.finetune_images, ws.finetune_masks, kind="nuclei", n=n, size=(64, 64), seed=seed)


def test_a_network_option_is_refused_before_any_work(workspace_with_model):
    ws = workspace_with_model
    _new_images(ws)
    done = run_script("finetune_model.py", "--root", str(ws.root), *TUNE, "--width", "64")
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --width 64: fine-tuning cannot change the network")
    assert "width 8" in lines[0] and "train_model.py" in lines[0]
    assert "fine-tuning '" not in done.stdout and len(files(ws.finetune_images)) == 4
    assert files(ws.models) == ["t.pth"]


def test_cli_options_are_honoured_and_recorded(workspace_with_model):
    ws = workspace_with_model
    _new_images(ws)
    done = run_script(
        "finetune_model.py",
        "--root",
        str(ws.root),
        *TUNE,
        "--epochs",
        "1",
        "--threshold",
        "0.3",
        "--no-rotate",
        "--schedule",
        "step",
        "--gamma",
        "0.5",
        "--lr",
        "0.0005",
        "--width",
        "8",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    meta = load_checkpoint(ws.models / "t_finetuned.pth").meta
    assert meta["threshold"] == 0.3 and meta["finetune"]["scores"]["threshold_tuned"] is False
    config = meta["config"]
    assert (
        config["threshold"],
        config["rotate"],
        config["schedule"],
        config["gamma"],
        config["lr"],
        config["epochs"],
    ) == (0.3, False, "step", 0.5, 0.0005, 1)
    report = json.loads((ws.models / "t_finetuned_report" / "config.json").read_text())
    assert (report["threshold"], report["rotate"], report["schedule"]) == (0.3, False, "step")


def test_printed_dice_are_what_evaluate_gives(workspace_with_model, tmp_path):
    """The parent at its own tuned threshold, the child at a threshold re-tuned on the validation
    share; both printed Dice equal `paulow evaluate --model` on the held-out files."""
    from paulow.api import load_model
    from paulow.cli import main
    from paulow.io import read_mask
    from paulow.scoring import sweep_thresholds

    ws = workspace_with_model
    parent = load_checkpoint(ws.models / "t.pth")
    save_checkpoint(
        ws.models / "t.pth", [m.state_dict() for m in parent.models], {**parent.meta, "threshold": 0.2}
    )
    _new_images(ws, n=4, seed=3)
    done = run_script(
        "finetune_model.py",
        "--root",
        str(ws.root),
        *TUNE,
        "--epochs",
        "2",
        "--holdout",
        "0.5",
        "--keep-inputs",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    meta = load_checkpoint(ws.models / "t_finetuned.pth").meta
    scores = meta["finetune"]["scores"]
    held = sorted({key.split("#")[0] for key in meta["finetune"]["held_out"]})  # "image1.tif#0": file#page
    assert len(held) == 2
    images, truth = tmp_path / "images", tmp_path / "truth"
    images.mkdir(), truth.mkdir()
    for name in held:
        shutil.copy(ws.finetune_images / name, images / name)
        mask = name.replace("image", "mask")
        shutil.copy(ws.finetune_masks / mask, truth / mask)
    out = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(ws.models / "t.pth"),
                str(ws.models / "t_finetuned.pth"),
                "--images",
                str(images),
                "--truth",
                str(truth),
                "--out",
                str(out),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    pooled = json.loads((out / "metrics.json").read_text())
    assert pooled["t"]["pooled"]["dice"] == pytest.approx(scores["parent_dice"], abs=1e-6)
    assert pooled["t_finetuned"]["pooled"]["dice"] == pytest.approx(scores["finetuned_dice"], abs=1e-6)
    assert f"held-out Dice of the parent model: {scores['parent_dice']:.4f}" in done.stdout
    assert f"held-out Dice of the fine-tuned model: {scores['finetuned_dice']:.4f}" in done.stdout
    assert scores["parent_threshold"] == 0.2 and scores["threshold_tuned"] is True
    # the child's threshold is the best one on its validation probabilities (not the held-out ones)
    validation = sorted({key.split("#")[0] for key in meta["finetune"]["validation"]})
    assert len(validation) == 1 and not set(validation) & set(held)
    child = load_model(ws.models / "t_finetuned.pth")
    probs = [child.predict(ws.finetune_images / n).probabilities for n in validation]
    truths = [read_mask(ws.finetune_masks / n.replace("image", "mask"))[0] for n in validation]
    assert meta["threshold"] == sweep_thresholds(probs, truths)[0]


def test_several_classes_keep_their_names_and_take_class_weights():
    parent = {
        **PARENT,
        "classes": 3,
        "class_names": ["background", "disc", "square"],
        "arch_args": {**PARENT["arch_args"], "classes": 3},
    }
    cfg = finetune_config(
        parent, {"class_weights": [1.0, 2.0, 4.0], "class_names": ["background", "disc", "square"]}, "cpu"
    )
    assert (cfg.classes, cfg.loss_args["class_weights"]) == (3, [1.0, 2.0, 4.0])
    with pytest.raises(UsageError, match="class-names .* keeps the parent's classes"):
        finetune_config(parent, {"class_names": ["bg", "a", "b"]}, "cpu")
    with pytest.raises(UsageError, match="class-weights gives 2 number"):
        finetune_config(parent, {"class_weights": [1.0, 2.0]}, "cpu")
