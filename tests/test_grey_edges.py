"""Binary masks with grey edges (JPEG, anti-aliased brushes) are binarised at half their maximum;
0/v masks and instance labels are kept as they are."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from paulow import io
from paulow.grey_edges import clean_binary_mask, is_grey_edged
from paulow.pair_loading import load_pairs
from paulow.palette import read_class_mask
from paulow.synthetic import nuclei_image


def _square_with_ring(ring_value: int) -> np.ndarray:
    """A 6 x 6 square of 255 inside a one-pixel ring of `ring_value`, on a 10 x 10 background."""
    mask = np.zeros((10, 10), np.uint8)
    mask[1:9, 1:9] = ring_value
    mask[2:8, 2:8] = 255
    return mask


@pytest.mark.parametrize("ring, kept", [(100, 36), (200, 64), (127, 36), (128, 64)])
def test_a_soft_edge_is_cut_at_half_the_maximum(ring, kept) -> None:
    mask = _square_with_ring(ring)
    assert is_grey_edged(mask)
    cleaned = clean_binary_mask(mask[None], "m.png")
    assert cleaned.dtype == np.uint8 and set(np.unique(cleaned)) == {0, 1}
    assert int(cleaned.sum()) == kept  # 6 x 6 square, or with its 28-pixel ring (128 * 2 > 255)


def test_instance_labels_are_not_grey_edges() -> None:
    labels = np.zeros((12, 12), np.uint16)
    labels[1:7, 1:7] = 2  # 36 px, the most common value
    labels[7:11, 7:11] = 1  # 16 px below it, 4 of them inside (not touching another value)
    assert not is_grey_edged(labels)
    assert np.array_equal(clean_binary_mask(labels[None], "labels.tif")[0], labels)
    labels[7:11, 7:11] = 3  # a label above the most common one: labels, whatever their shape
    assert not is_grey_edged(labels)


def test_two_value_masks_are_unchanged() -> None:
    mask = _square_with_ring(0)[None]
    assert not is_grey_edged(mask)
    assert clean_binary_mask(mask, "m.jpg") is mask


def test_jpeg_mask_reads_as_the_mask_it_was_saved_from(tmp_path, caplog) -> None:
    _, truth = nuclei_image((96, 96), seed=3)
    Image.fromarray(truth * 255).save(tmp_path / "mask1.jpg", quality=75)
    raw = io.read_mask(tmp_path / "mask1.jpg")
    assert np.unique(raw).size > 2 and np.count_nonzero(raw) > truth.sum()  # the halo the fix removes
    with caplog.at_level(logging.WARNING, logger="paulow"):
        read = read_class_mask(tmp_path / "mask1.jpg", 1)
    assert np.array_equal(read[0], truth)
    assert "mask 'mask1.jpg' is a JPEG" in caplog.text and "save masks as PNG or TIFF" in caplog.text


def test_training_pairs_with_a_jpeg_mask_are_binary_without_labels(tmp_path) -> None:
    image, truth = nuclei_image((64, 64), seed=5)
    (tmp_path / "im").mkdir()
    (tmp_path / "ma").mkdir()
    io.write_tiff(tmp_path / "im" / "image1.tif", image)
    Image.fromarray(truth * 255).save(tmp_path / "ma" / "mask1.jpg", quality=80)
    (page,) = load_pairs(tmp_path / "im", tmp_path / "ma")
    assert page.labels is None and np.array_equal(page.mask, truth)
