"""The `paulow` command: help, config files, evaluate, summary and check-overfit."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
import tifffile

from paulow.cli import main
from paulow.errors import UsageError


def test_help_is_instant_and_imports_no_torch():
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", "import sys, paulow.cli; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "False"
    help_run = subprocess.run(
        [sys.executable, "-m", "paulow", "train", "--help"], capture_output=True, text=True
    )
    assert help_run.returncode == 0 and "--time-limit" in help_run.stdout
    assert time.perf_counter() - start < 30  # generous: two interpreter starts on a busy machine


def test_config_file_supplies_options_and_unknown_keys_are_refused(tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"root: {tmp_path}\n")
    assert main(["setup", "--config", str(cfg)]) == 0
    assert (tmp_path / "Use_Model" / "saved_models").is_dir()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"root": str(tmp_path), "epochz": 3}))
    assert main(["setup", "--config", str(bad)]) == 2
    assert "unknown option(s): epochz" in capsys.readouterr().err


def _mask(path, array):
    tifffile.imwrite(path, array.astype(np.uint8))


def test_evaluate_scores_folders_and_compares(tmp_path, capsys):
    truth, good, bad = (tmp_path / n for n in ("truth", "good", "bad"))
    for d in (truth, good, bad):
        d.mkdir()
    t = np.zeros((10, 10), np.uint8)
    t[2:6, 2:6] = 255  # 16 pixels
    p = np.zeros_like(t)
    p[2:6, 2:4] = 255  # 8 of them: dice = 2*8 / (8 + 16) = 2/3
    _mask(truth / "img1.tif", t)
    _mask(good / "img1_mask.tif", t)
    _mask(bad / "img1_mask.tif", p)
    code = main(
        [
            "evaluate",
            "--pred",
            str(good),
            str(bad),
            "--truth",
            str(truth),
            "--compare",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 0
    result = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert result[str(good)]["pooled"]["dice"] == 1.0
    assert result[str(bad)]["pooled"]["dice"] == pytest.approx(2 / 3)
    assert result[str(bad)]["pooled"]["recall"] == 0.5
    assert (tmp_path / "out" / "pooled.csv").is_file()
    assert "0.667" in capsys.readouterr().out


def test_evaluate_tolerance_sets_the_distance_of_tolerant_f1(tmp_path):
    truth, pred = tmp_path / "truth", tmp_path / "pred"
    truth.mkdir(), pred.mkdir()
    t = np.zeros((10, 10), np.uint8)
    t[2:6, 2:6] = 255
    p = np.zeros_like(t)
    p[2:6, 2:4] = 255  # columns 2-3 of the truth's 2-5
    _mask(truth / "a.tif", t)
    _mask(pred / "a_mask.tif", p)
    f1 = {}
    for tol in (1, 2):
        out = tmp_path / f"out{tol}"
        assert (
            main(
                [
                    "evaluate",
                    "--pred",
                    str(pred),
                    "--truth",
                    str(truth),
                    "--tolerance",
                    str(tol),
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        f1[tol] = json.loads((out / "metrics.json").read_text())[str(pred)]["pooled"]["tolerant_f1"]
    # 1 px: every predicted pixel is near the truth (precision 1), truth columns 2-4 are found (12/16)
    assert f1[1] == pytest.approx(2 * 0.75 / 1.75)
    assert f1[2] == 1.0  # 2 px: column 5 is found too


def test_summary_of_the_published_network(capsys):
    assert main(["summary", "paulow_attention_unet", "--width", "64"]) == 0
    out = capsys.readouterr().out
    assert "conv1.conv1" in out and "att1" in out
    params = int(out.split("parameters: ")[1].split()[0].replace(",", ""))
    from paulow.models import build_model

    assert params == sum(p.numel() for p in build_model("paulow_attention_unet", width=64).parameters())
    gflop_per_patch = float(out.split("(")[-1].split(" GFLOP per 128x128")[0])
    assert 15 < gflop_per_patch < 25  # the published network: about 20 GFLOP per 128x128 patch


def test_check_overfit_passes_on_learnable_data(tmp_path, capsys):
    from paulow.synthetic import write_dataset

    write_dataset(tmp_path / "i", tmp_path / "m", n=2, size=(48, 48), seed=0)
    code = main(
        [
            "check-overfit",
            "--images",
            str(tmp_path / "i"),
            "--masks",
            str(tmp_path / "m"),
            "--width",
            "8",
            "--patch",
            "48",
            "--overlap",
            "0",
            "--batch-size",
            "2",
            "--steps",
            "40",
            "--lr",
            "0.01",
            "--loss",
            "bce",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "PASS" in out


def test_unknown_architecture_is_a_usage_error():
    from paulow.models import build_model

    with pytest.raises(UsageError, match="unknown model 'vit'"):
        build_model("vit")


def test_check_overfit_verdict_says_what_passed():
    from paulow.commands.tools import overfit_verdict

    ok, text = overfit_verdict({"first_loss": 1.48, "last_loss": 0.49, "batch_dice": 0.95})
    assert ok and "Dice on the batch 0.950 > 0.9" in text and "loss fell" not in text
    ok, text = overfit_verdict({"first_loss": 2.0, "last_loss": 0.1, "batch_dice": 0.5})
    assert ok and "5% of its start" in text and "Dice" not in text
    ok, text = overfit_verdict({"first_loss": 1.48, "last_loss": 0.49, "batch_dice": 0.5})
    assert not ok and text.startswith("FAIL")


def test_evaluate_truth_folder_may_hold_more_masks_than_predictions(tmp_path, capsys):
    truth, pred = tmp_path / "truth", tmp_path / "pred"
    truth.mkdir(), pred.mkdir()
    square = np.zeros((8, 8), np.uint8)
    square[2:6, 2:6] = 255
    for i in (1, 2, 3):
        _mask(truth / f"mask{i}.tif", square)
    half = square.copy()
    half[2:6, 4:6] = 0  # 8 of 16 pixels: Dice 2*8 / (8 + 16) = 2/3
    _mask(pred / "image2_mask.tif", half)
    assert main(["evaluate", "--pred", str(pred), "--truth", str(truth), "--out", str(tmp_path / "out")]) == 0
    scores = json.loads((tmp_path / "out" / "metrics.json").read_text())
    (result,) = scores.values()
    assert [row["file"] for row in result["per_image"]] == ["mask2.tif"]
    assert result["pooled"]["dice"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "option, value",
    [
        ("--threshold", "nan"),
        ("--threshold", "1.5"),
        ("--tile", "0"),
        ("--overlap", "1"),
        ("--batch-size", "0"),
        ("--tile", "abc"),
    ],
)
def test_bad_inference_options_are_refused_before_any_work(tmp_path, capsys, option, value):
    with pytest.raises(SystemExit) as stop:
        main(["predict", "--root", str(tmp_path), "--yes", option, value])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and f"'{value}'" in err
    assert not (tmp_path / "Use_Model").exists()  # nothing was created or read


def test_training_threshold_must_be_a_probability(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--root", str(tmp_path), "--yes", "--threshold", "nan"])
    assert "between 0 and 1" in capsys.readouterr().err


def test_norm_and_dropout_options_reach_the_network_config(tmp_path):
    from paulow.cli import build_parser
    from paulow.commands.common import config_from_args

    args = build_parser(tmp_path).parse_args(["train", "--norm", "layer", "--dropout", "0.1", "--width", "8"])
    cfg = config_from_args(args, "cpu")
    assert cfg.arch_extra == {"norm": "layer", "dropout": 0.1}
    assert cfg.arch_args(1) == {
        "in_channels": 1,
        "classes": 1,
        "width": 8,
        "depth": 4,
        "norm": "layer",
        "dropout": 0.1,
    }
    plain = config_from_args(build_parser(tmp_path).parse_args(["train"]), "cpu")
    assert plain.arch_extra == {}


def test_vgg16_unet_options_reach_the_network(tmp_path):
    import torch

    from paulow.cli import build_parser
    from paulow.commands.common import config_from_args
    from paulow.errors import UsageError
    from paulow.training.network import build_network

    features = [
        m
        for m in build_network(
            config_from_args(
                build_parser(tmp_path).parse_args(["train", "--arch", "vgg16_unet", "--width", "64"]), "cpu"
            ),
            3,
            "cpu",
            0,
        ).encoders.modules()
        if isinstance(m, torch.nn.Conv2d)
    ]
    state = {}
    for i, conv in enumerate(features):  # layer numbers only need to rise, as torchvision's do
        state[f"features.{2 * i}.weight"], state[f"features.{2 * i}.bias"] = (
            torch.ones_like(conv.weight),
            conv.bias,
        )
    torch.save(state, tmp_path / "vgg.pth")
    args = build_parser(tmp_path).parse_args(
        [
            "train",
            "--arch",
            "vgg16_unet",
            "--width",
            "64",
            "--batch-norm",
            "--encoder-weights",
            str(tmp_path / "vgg.pth"),
        ]
    )
    cfg = config_from_args(args, "cpu")
    assert (cfg.depth, cfg.arch_extra, cfg.encoder_weights) == (
        5,
        {"batch_norm": True},
        str(tmp_path / "vgg.pth"),
    )
    cfg = replace(cfg, arch_extra={})
    net = build_network(cfg, 3, "cpu", 0)
    assert torch.all(net.encoders[0][0].weight == 1)
    cfg = replace(cfg, arch="unet")
    with pytest.raises(UsageError, match="--encoder-weights is for --arch vgg16_unet"):
        build_network(cfg, 3, "cpu", 0)
