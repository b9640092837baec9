"""Colour (RGB) masks for K >= 2 classes (issue 11): the palette file, the mapping through it, the
error for colour masks without one, and palette.txt / --palette / the model's palette in the commands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from paulow import io
from paulow.errors import ShapeMismatchError, UsageError
from paulow.pair_loading import load_pairs
from paulow.palette import (
    Palette,
    find_palette,
    from_colours,
    palette_names,
    read_class_mask,
    read_palette,
    to_classes,
)

PALETTE_TEXT = """# background first
0 0 0 background
255,0,0, nucleus   # red
#00FF00 cell body
"""
COLOURS = ((0, 0, 0), (255, 0, 0), (0, 255, 0))


def rgb_mask(classes: np.ndarray, colours=COLOURS) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) uint8 colours."""
    return np.asarray(colours, dtype=np.uint8)[classes]


def write_png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)
    return path


def test_a_palette_file_by_hand(tmp_path):
    path = tmp_path / "palette.txt"
    path.write_text(PALETTE_TEXT, encoding="utf-8")
    palette = read_palette(path, 3)
    assert palette.colours == COLOURS
    assert palette.names == ("background", "nucleus", "cell body")
    assert palette.as_list() == [[0, 0, 0], [255, 0, 0], [0, 255, 0]]
    path.write_text("0 0 0\n\n255 0 0\n", encoding="utf-8")
    assert read_palette(path, 2) == Palette(((0, 0, 0), (255, 0, 0)), (), f"the palette '{path}'")


@pytest.mark.parametrize(
    "text, message",
    [
        ("0 0 0\n255 0\n", "line 2: '255 0' is not a colour: write 'R G B [name]'"),
        ("0 0 0\n256 0 0\n", "line 2: '256 0 0' is not a colour"),
        ("0 0 0\nred 255 0 0\n", "line 2: 'red 255 0 0' is not a colour"),
        (
            "0 0 0 bg\n#000000 again\n",
            "line 2: colour (0, 0, 0) is listed twice (lines 1 and 2): give each class its own colour",
        ),
        (
            "0 0 0 bg\n255 0 0\n",
            "class 1 ((255, 0, 0)) has no name but other classes do: name every class or none",
        ),
    ],
)
def test_a_bad_palette_line_names_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "palette.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UsageError) as err:
        read_palette(path, 2)
    assert str(err.value).startswith(f"'{path}'") and message in str(err.value)


def test_a_palette_with_another_count_than_the_classes_is_an_error(tmp_path):
    path = tmp_path / "palette.txt"
    path.write_text(PALETTE_TEXT, encoding="utf-8")
    with pytest.raises(UsageError) as err:
        read_palette(path, 4)
    assert str(err.value) == (
        f"the palette '{path}' lists 3 colour(s) for 4 classes: one colour per class, background "
        "(class 0) first (or change --classes)"
    )


def test_a_colour_mask_maps_to_exact_class_indices():
    classes = np.array([[0, 1, 2, 2], [1, 1, 0, 2]])
    rgba = np.concatenate([rgb_mask(classes), np.full((2, 4, 1), 255, np.uint8)], axis=-1)
    rgba[0, 0] = (9, 9, 9, 0)  # fully transparent: background whatever its colour
    palette = from_colours(COLOURS, 3)
    mask = np.moveaxis(rgba, -1, 0)[None]  # (pages, C, H, W)
    np.testing.assert_array_equal(to_classes(mask, palette, "m.png", alpha=True), classes[None])
    reversed_order = to_classes(mask[:, :3, :, 1:], from_colours(COLOURS[::-1], 3), "m.png")
    np.testing.assert_array_equal(reversed_order, 2 - classes[None, :, 1:])


def test_an_rgb_png_through_palette_txt_beside_it(tmp_path):
    classes = np.array([[0, 1, 2], [2, 2, 0]])
    path = write_png(tmp_path / "mask1.png", rgb_mask(classes))
    (tmp_path / "palette.txt").write_text(PALETTE_TEXT, encoding="utf-8")
    palette = find_palette(tmp_path, 3)
    out = read_class_mask(path, 3, palette)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, classes[None])
    assert palette_names(palette, 3) == ["background", "nucleus", "cell body"]
    # a palette PNG is mapped by its colours, not its own indices, once a palette is given
    indexed = Image.fromarray(np.array([[2, 0, 1], [1, 1, 2]], np.uint8), "P")
    indexed.putpalette([0, 255, 0, 0, 0, 0, 255, 0, 0] + [0] * 759)  # index 0 green, 1 black, 2 red
    indexed.save(tmp_path / "mask2.png")
    np.testing.assert_array_equal(
        read_class_mask(tmp_path / "mask2.png", 3, palette), [[[1, 2, 0], [0, 0, 1]]]
    )


def test_an_unknown_colour_is_one_error_naming_the_mask_and_the_colours(tmp_path):
    mask = rgb_mask(np.zeros((4, 5), int))
    mask[0, :3] = (200, 10, 10)  # 3 px of an antialiased red
    mask[3, 4] = (1, 2, 3)  # 1 px
    path = write_png(tmp_path / "mask7.png", mask)
    palette = read_palette(_palette_file(tmp_path), 3)
    with pytest.raises(ShapeMismatchError) as err:
        read_class_mask(path, 3, palette)
    assert str(err.value) == (
        f"mask 'mask7.png' has 2 colour(s) not in the palette '{tmp_path / 'palette.txt'}': (200, 10, 10) 3 px, "
        "(1, 2, 3) 1 px — add a line for each class colour to the palette, or repaint those pixels in a palette "
        "colour (antialiased or blurred edges make in-between colours: paint with a hard brush)"
    )


def _palette_file(folder: Path) -> Path:
    path = folder / "palette.txt"
    path.write_text(PALETTE_TEXT, encoding="utf-8")
    return path


def test_a_colour_mask_without_a_palette_is_an_error_for_several_classes(tmp_path):
    classes = np.array([[0, 1, 2, 1]])
    path = write_png(tmp_path / "masks" / "mask1.png", rgb_mask(classes))
    with pytest.raises(ShapeMismatchError) as err:
        read_class_mask(path, 3)
    assert str(err.value) == (
        "mask 'mask1.png' is a colour image (3 distinct colours: (255, 0, 0), (0, 0, 0), (0, 255, 0)) but a "
        "3-class task needs class indices 0..2 — save index masks (one grey value per class, 0 = background), "
        f"or put a palette.txt in '{tmp_path / 'masks'}' (one 'R G B name' line per class, background first) "
        "or pass --palette FILE"
    )


def test_binary_masks_are_read_as_before_even_beside_a_palette(tmp_path, caplog):
    mask = rgb_mask(np.array([[0, 1, 2, 1]]))
    path = write_png(tmp_path / "mask1.png", mask)
    _palette_file(tmp_path)
    np.testing.assert_array_equal(read_class_mask(path, 1), io.read_mask(path))
    np.testing.assert_array_equal(io.read_mask(path), [[[0, 1, 1, 1]]])  # channels differ: any non-zero
    assert find_palette(tmp_path, 1) is None
    assert "palette.txt' is not used: the masks are read as binary" in caplog.text
    grey = write_png(tmp_path / "mask2.png", np.array([[0, 2, 1]], np.uint8))  # index masks stay indices
    np.testing.assert_array_equal(read_class_mask(grey, 3, find_palette(tmp_path, 3)), [[[0, 2, 1]]])


def test_load_pairs_reads_colour_masks_through_the_palette(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    classes = np.array([[0, 1], [2, 1]])
    io.write_tiff(images / "image1.tif", np.arange(4, dtype=np.uint8).reshape(2, 2))
    write_png(masks / "mask1.png", rgb_mask(classes))
    (slice_,) = load_pairs(images, masks, 3, palette=read_palette(_palette_file(masks), 3))
    np.testing.assert_array_equal(slice_.mask, classes)
    with pytest.raises(ShapeMismatchError, match="mask 'mask1.png' is a colour image"):
        load_pairs(images, masks, 3)


def test_palette_names_become_class_names_unless_given(tmp_path):
    from paulow.api import folder_config
    from paulow.cli import build_parser
    from paulow.commands.train import request_from_args
    from paulow.workspace import Workspace

    def _config(ws, args, device):  # the settings the train command's run starts from
        request = request_from_args(args)
        return folder_config(ws.train_masks, request.options, request.preset, device, request.palette)

    ws = Workspace(tmp_path)
    ws.setup()
    _palette_file(ws.train_masks)
    parse = build_parser(tmp_path).parse_args
    cfg = _config(ws, parse(["train", "--classes", "3"]), "cpu")
    assert cfg.class_names == ["background", "nucleus", "cell body"]
    assert cfg.palette == [[0, 0, 0], [255, 0, 0], [0, 255, 0]]
    cfg = _config(ws, parse(["train", "--classes", "3", "--class-names", "a,b,c"]), "cpu")
    assert cfg.class_names == ["a", "b", "c"]
    (ws.train_masks / "classes.txt").write_text("x\ny\nz\n", encoding="utf-8")
    assert _config(ws, parse(["train", "--classes", "3"]), "cpu").class_names == ["x", "y", "z"]
    other = tmp_path / "other.txt"
    other.write_text("#000000\n#0000ff\n#ffffff\n", encoding="utf-8")
    cfg = _config(ws, parse(["train", "--classes", "3", "--palette", str(other)]), "cpu")
    assert cfg.palette == [[0, 0, 0], [0, 0, 255], [255, 255, 255]]
    with pytest.raises(UsageError, match="lists 3 colour\\(s\\) for 2 classes"):
        _config(ws, parse(["train", "--classes", "2"]), "cpu")
    with pytest.raises(UsageError, match="these masks are read as binary: add --classes K"):
        _config(ws, parse(["train", "--palette", str(other)]), "cpu")
    assert _config(ws, parse(["train"]), "cpu").palette is None  # binary: palette.txt not used


def test_a_model_palette_is_checked_and_becomes_the_lut():
    with pytest.raises(UsageError, match="class 1 is \\[255, 0\\], not three numbers"):
        from_colours([[0, 0, 0], [255, 0]], 2, "the palette of model 'm.pth'")
    lut = io.class_lut(3, [[10, 20, 30], [255, 0, 0], [0, 255, 0]])
    assert lut[:, 0].tolist() == [10, 20, 30] and lut[:, 2].tolist() == [0, 255, 0] and not lut[:, 3:].any()
    np.testing.assert_array_equal(io.class_lut(3, None), io.class_lut(3))


def test_evaluate_maps_colour_truth_masks_through_the_palette(tmp_path, capsys):
    import json

    from paulow.cli import main

    truth, pred = tmp_path / "truth", tmp_path / "pred"
    classes = np.array([[0, 1, 1], [2, 2, 0]], np.uint8)
    write_png(truth / "img1.png", rgb_mask(classes))
    pred.mkdir()
    io.write_mask(pred / "img1_mask.tif", classes)
    command = [
        "evaluate",
        "--pred",
        str(pred),
        "--truth",
        str(truth),
        "--classes",
        "3",
        "--out",
        str(tmp_path / "o"),
    ]
    assert main(command) == 2
    assert "error: mask 'img1.png' is a colour image (3 distinct colours" in capsys.readouterr().err
    _palette_file(truth)
    assert main(command) == 0
    saved = json.loads((tmp_path / "o" / "metrics.json").read_text())[str(pred)]
    assert saved["pooled"]["mean_dice"] == 1.0 and saved["class_names"] == [
        "background",
        "nucleus",
        "cell body",
    ]
    swapped = tmp_path / "swapped.txt"  # --palette wins over palette.txt: classes 1 and 2 trade colours
    swapped.write_text("0 0 0\n0 255 0\n255 0 0\n", encoding="utf-8")
    assert main([*command, "--palette", str(swapped)]) == 0
    saved = json.loads((tmp_path / "o" / "metrics.json").read_text())[str(pred)]
    assert saved["pooled"]["dice_1"] == 0.0 and saved["pooled"]["dice_0"] == 1.0
