"""Pairing images with masks by name, the natural-order fallback, and the failure message."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from paulow import io
from paulow.errors import PairingError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def paths(folder: str, *names: str) -> list[Path]:
    return [Path(folder) / name for name in names]


def names(pairs: list[tuple[Path, Path]]) -> list[tuple[str, str]]:
    return [(image.name, mask.name) for image, mask in pairs]


@pytest.mark.parametrize(
    "name,key",
    [
        ("image12.tif", "12"),
        ("Mask12.tif", "12"),
        ("dna-3.png", "3"),
        ("3.png", "3"),
        ("cellA.tif", "cella"),
        ("cellA_mask.tif", "cella"),
        ("img_01.tif", "1"),
        ("01_labels.tif", "1"),
        ("Image_012.ome.tif", "12"),
        ("sample10.tif", "sample10"),
        ("imagej.tif", "imagej"),
        ("raw 0.tif", "0"),
        ("stack_gt.tif", "stack"),
        ("12mask.png", "12"),
        ("exp1_img_007.tif", "exp17"),
        ("masks.tif", ""),
        ("new1_truth.tif", "new1"),
        ("new1_mask.tif", "new1"),
        ("a_ground_truth.png", "a"),
    ],
)
def test_pairing_key(name, key):
    assert io.pairing_key(name) == key


def test_pairs_numbers_across_words_and_case():
    images = paths("im", "image10.tif", "image2.tif", "image12.tif")
    masks = paths("ma", "Mask12.tif", "Mask2.tif", "Mask10.tif")
    assert names(io.pair_images_masks(images, masks)) == [
        ("image2.tif", "Mask2.tif"),
        ("image10.tif", "Mask10.tif"),
        ("image12.tif", "Mask12.tif"),
    ]


def test_pairs_nih3t3_style_names():
    images = paths("im", "dna-3.png", "dna-26.png", "dna-0.png")
    masks = paths("ma", "0.png", "26.png", "3.png")
    assert names(io.pair_images_masks(images, masks)) == [
        ("dna-0.png", "0.png"),
        ("dna-3.png", "3.png"),
        ("dna-26.png", "26.png"),
    ]


def test_pairs_suffix_words_and_leading_zeros():
    images = paths("im", "cellA.tif", "cellB.tif", "img_01.tif")
    masks = paths("ma", "cellB_mask.tif", "cellA_mask.tif", "01_labels.png")
    assert names(io.pair_images_masks(images, masks)) == [
        ("cellA.tif", "cellA_mask.tif"),
        ("cellB.tif", "cellB_mask.tif"),
        ("img_01.tif", "01_labels.png"),
    ]


def test_ambiguous_key_falls_back_to_identical_stems():
    images = paths("im", "image3.tif", "img3.tif")
    masks = paths("ma", "img3.png", "image3.png")
    assert names(io.pair_images_masks(images, masks)) == [
        ("image3.tif", "image3.png"),
        ("img3.tif", "img3.png"),
    ]


def test_ambiguous_key_without_identical_stems_is_an_error():
    images = paths("im", "image3.tif", "dna-3.tif")
    masks = paths("ma", "3.tif")
    with pytest.raises(PairingError) as caught:
        io.pair_images_masks(images, masks)
    message = str(caught.value)
    assert message.startswith(
        "2 images have no mask: dna-3.tif, image3.tif; 1 mask has no image: "
        "3.tif; these share a number or name, so which goes with which is "
        "unclear: image3.tif, dna-3.tif, 3.tif - "
    )


def test_natural_order_fallback_when_no_name_pairs():
    images = paths("im", "x2.tif", "x10.tif", "x1.tif")
    masks = paths("ma", "y10.tif", "y1.tif", "y2.tif")
    with pytest.warns(io.PairingWarning, match="natural sort order .*x1.tif <-> y1.tif"):
        pairs = io.pair_images_masks(images, masks)
    assert names(pairs) == [("x1.tif", "y1.tif"), ("x2.tif", "y2.tif"), ("x10.tif", "y10.tif")]


def test_no_fallback_when_counts_differ():
    with pytest.raises(PairingError, match="2 images have no mask: a.tif, b.tif; 1 mask has no image: z.tif"):
        io.pair_images_masks(paths("im", "b.tif", "a.tif"), paths("ma", "z.tif"))


def test_failure_lists_every_unmatched_file_in_one_line():
    images = paths("im", "c.tif", "image1.tif", "a.tif", "b.tif")
    masks = paths("ma", "mask1.tif", "x.tif")
    with pytest.raises(PairingError) as caught:
        io.pair_images_masks(images, masks)
    assert str(caught.value) == (
        "3 images have no mask: a.tif, b.tif, c.tif; 1 mask has no image: x.tif - give each "
        "image a mask with the same number or name (e.g. image12.tif <-> mask12.tif)"
    )


def test_partial_match_never_falls_back_to_order():
    # two of three pair by name: the third must not be paired by position
    images = paths("im", "image1.tif", "image2.tif", "other.tif")
    masks = paths("ma", "mask1.tif", "mask2.tif", "different.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(
            PairingError, match="1 image has no mask: other.tif; 1 mask has no image: different.tif"
        ):
            io.pair_images_masks(images, masks)


def test_missing_masks_only():
    with pytest.raises(PairingError) as caught:
        io.pair_images_masks(paths("im", "image1.tif", "image2.tif"), [])
    assert str(caught.value).startswith("2 images have no mask: image1.tif, image2.tif - ")


def test_empty_inputs_and_duplicates():
    assert io.pair_images_masks([], []) == []
    image, mask = Path("im/image1.tif"), Path("ma/mask1.tif")
    assert io.pair_images_masks([image, image], [mask]) == [(image, mask)]


def test_listed_folders_pair_without_hidden_files(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for name in ["image1.tif", "image2.tif", ".DS_Store", "._image1.tif", "Thumbs.db"]:
        (tmp_path / "images" / name).write_bytes(b"x")
    for name in ["Mask2.tif", "Mask1.tif", "._Mask1.tif", ".DS_Store"]:
        (tmp_path / "masks" / name).write_bytes(b"x")
    pairs = io.pair_images_masks(io.list_images(tmp_path / "images"), io.list_images(tmp_path / "masks"))
    assert names(pairs) == [("image1.tif", "Mask1.tif"), ("image2.tif", "Mask2.tif")]


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is absent")
@pytest.mark.parametrize("folder,count", [("nih3t3_nuclei", 18), ("paulow_filaments", 14)])
def test_shared_datasets_pair_by_number(folder, count):
    root = SHARED / folder
    pairs = io.pair_images_masks(io.list_images(root / "images"), io.list_images(root / "masks"))
    assert len(pairs) == count
    for image, mask in pairs:
        number = re.sub("^mask", "", mask.stem.lower())
        assert io.pairing_key(image) == io.pairing_key(mask) == number
