"""Outputs of a K >= 2 model (issue 11): per-class probabilities, coloured overlay with a legend,
objects.csv / summary.csv with a class column and counts per class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from paulow.api import FileResult, SegmentOptions, class_names
from paulow.io import ImageStack, class_lut, read_image
from paulow.postprocess import class_overlay, label_instances
from paulow.segment_outputs import write_extras

NAMES = ["background", "disc", "square"]


def class_map() -> np.ndarray:
    mask = np.zeros((20, 24), np.uint8)
    mask[2:6, 2:6] = 1  # two objects of class 1 (disc)
    mask[10:14, 2:6] = 1
    mask[4:12, 12:20] = 2  # one object of class 2 (square), 64 pixels
    return mask


def probabilities(mask: np.ndarray, pages: int = 1) -> list[np.ndarray]:
    prob = np.full((3,) + mask.shape, 0.1, np.float32)
    for c in range(3):
        prob[c][mask == c] = 0.8
    return [prob.copy() for _ in range(pages)]


def stack(mask: np.ndarray, pages: int = 1) -> ImageStack:
    data = np.repeat((mask * 80 + 10).astype(np.uint8)[None, None], pages, axis=0)
    return ImageStack(data=data, path=Path("cells.tif"), axes="YX")


def test_class_names_from_the_model_or_numbered():
    assert class_names({"class_names": NAMES}, 3) == NAMES
    assert class_names({}, 3) == ["class 0", "class 1", "class 2"]
    assert class_names({"class_names": ["a", "b"]}, 3) == ["class 0", "class 1", "class 2"]
    assert class_names({}, 1) == ["foreground"]


def test_overlay_colours_each_class_and_has_a_legend():
    mask = class_map()
    grey = np.zeros(mask.shape, np.uint8)
    rgb = class_overlay(grey, mask, NAMES)
    lut = class_lut(3)
    assert rgb.shape[0] == 4 + 14 * 2 and rgb.shape[1] > 24  # legend (2 rows of 14) to the right
    assert not rgb[20:, :24].any()  # below the small image: black
    assert tuple(rgb[2, 2]) == tuple(lut[:, 1])  # outline of a disc: class 1 colour
    assert tuple(rgb[4, 12]) == tuple(lut[:, 2])  # outline of the square: class 2 colour
    assert tuple(rgb[8, 16]) == tuple(np.round(0.35 * lut[:, 2]).astype(np.uint8))  # tinted inside
    assert tuple(rgb[0, 0]) == (0, 0, 0)  # background untouched
    legend = rgb[:, 24:].reshape(-1, 3)
    for c in (1, 2):
        assert (legend == lut[:, c]).all(axis=1).sum() >= 100  # a 10 x 10 swatch per class


def test_extras_write_probabilities_per_class_overlay_and_class_tables(tmp_path):
    mask = class_map()
    result = FileResult(source=Path("cells.tif"))
    opts = SegmentOptions(save_prob=True, overlay=True, instances=True)
    write_extras(stack(mask), probabilities(mask), [mask], tmp_path, opts, result, {"class_names": NAMES})
    names = sorted(p.name for p in result.written)
    assert names == ["cells_labels.tif", "cells_overlay.png", "cells_prob.tif"]
    with tifffile.TiffFile(tmp_path / "cells_prob.tif") as tif:
        assert tif.imagej_metadata["Labels"] == NAMES and tif.series[0].axes == "CYX"
        np.testing.assert_array_equal(tif.asarray(), probabilities(mask)[0])
    assert [(r["label"], r["class"], r["class_index"], r["area_px"]) for r in result.objects] == [
        (1, "disc", 1, 16),
        (2, "disc", 1, 16),
        (3, "square", 2, 64),
    ]
    (summary,) = result.summary
    assert summary["objects"] == 3 and summary["objects_disc"] == 2 and summary["objects_square"] == 1
    np.testing.assert_array_equal(read_image(tmp_path / "cells_labels.tif").data[0, 0], label_instances(mask))


def test_probabilities_of_a_stack_are_pages_by_classes(tmp_path):
    mask = class_map()
    result = FileResult(source=Path("cells.tif"))
    write_extras(
        stack(mask, 2),
        probabilities(mask, 2),
        [mask, mask],
        tmp_path,
        SegmentOptions(save_prob=True),
        result,
        {},
    )
    with tifffile.TiffFile(result.written[0]) as tif:
        assert tif.series[0].axes == "ZCYX" and tif.asarray().shape == (2, 3, 20, 24)
        assert tif.imagej_metadata["Labels"] == ["class 0", "class 1", "class 2"] * 2
