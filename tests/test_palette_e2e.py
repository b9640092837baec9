"""Colour masks end to end (issue 11): train --classes 3 on RGB PNG masks with a palette.txt beside them,
the palette and its names in the model file, fine-tuning on colour masks with the model's palette, and
use_model's label TIFF coloured by it."""

from __future__ import annotations

import numpy as np
import tifffile
from _workflow import TINY_TRAIN
from PIL import Image

from paulow import io
from paulow.checkpoint import load_checkpoint
from paulow.cli import main
from paulow.synthetic import classes_image
from paulow.workspace import Workspace

PALETTE = [[0, 0, 0], [255, 0, 0], [0, 255, 0]]


def write_colour_set(images, masks, seeds) -> None:
    for i, seed in enumerate(seeds, 1):
        image, classes = classes_image((64, 64), classes=3, seed=seed)
        tifffile.imwrite(images / f"image{i}.tif", image)
        Image.fromarray(np.asarray(PALETTE, np.uint8)[classes]).save(masks / f"mask{i}.png")


def test_train_finetune_and_use_on_colour_masks(tmp_path, capsys):
    ws = Workspace(tmp_path)
    ws.setup()
    write_colour_set(ws.train_images, ws.train_masks, range(4))
    (ws.train_masks / "palette.txt").write_text("0 0 0 background\n255 0 0 disc\n0 255 0 square\n")
    assert (
        main(
            [
                "train",
                "--root",
                str(tmp_path),
                "--name",
                "rgb",
                "--classes",
                "3",
                "--epochs",
                "1",
                "--depth",
                "2",
                *TINY_TRAIN,
            ]
        )
        == 0
    ), capsys.readouterr().err
    meta = load_checkpoint(ws.models / "rgb.pth").meta
    assert meta["palette"] == PALETTE and meta["config"]["palette"] == PALETTE
    assert meta["class_names"] == ["background", "disc", "square"]
    assert (ws.train_masks / "palette.txt").is_file()  # only the images and masks read are cleared

    write_colour_set(ws.finetune_images, ws.finetune_masks, range(10, 12))  # no palette.txt: the model's
    assert (
        main(
            [
                "finetune",
                "--root",
                str(tmp_path),
                "--model",
                "rgb",
                "--yes",
                "--epochs",
                "1",
                "--time-limit",
                "0",
            ]
        )
        == 0
    ), capsys.readouterr().err
    tuned = load_checkpoint(ws.models / "rgb_finetuned.pth").meta
    assert tuned["palette"] == PALETTE and tuned["class_names"] == ["background", "disc", "square"]

    image, _ = classes_image((64, 64), classes=3, seed=50)
    tifffile.imwrite(ws.use_inputs / "new.tif", image)
    assert main(["predict", "--root", str(tmp_path), "--model", "rgb", "--yes"]) == 0
    with tifffile.TiffFile(ws.use_outputs / "new_mask.tif") as tif:
        lut = np.asarray(tif.imagej_metadata["LUTs"]).reshape(3, 256)
    np.testing.assert_array_equal(lut, io.class_lut(3, PALETTE))


def test_colour_masks_without_a_palette_stop_training_with_one_line(tmp_path, capsys):
    ws = Workspace(tmp_path)
    ws.setup()
    write_colour_set(ws.train_images, ws.train_masks, range(2))
    assert main(["train", "--root", str(tmp_path), "--name", "bad", "--classes", "3", *TINY_TRAIN]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: mask 'mask1.png' is a colour image (3 distinct colours: (0, 0, 0), ")
    assert err[-1].endswith(
        f"or put a palette.txt in '{ws.train_masks}' (one 'R G B name' line per class, "
        "background first) or pass --palette FILE"
    )
    assert sorted(p.name for p in ws.train_masks.iterdir()) == ["mask1.png", "mask2.png"]  # inputs kept
