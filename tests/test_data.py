"""Normalisation, validation of training folders, image-level splits, patches and augmentation."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest
import tifffile

from paulow.augmentation import Augment
from paulow.errors import EmptyFolderError, PairingError, ShapeMismatchError, UnreadableImageError
from paulow.normalisation import normalise
from paulow.pair_loading import load_pairs
from paulow.patches import PatchDataset, grid_starts
from paulow.slices import Slice
from paulow.splits import kfold, split_test


def _write(folder: Path, name: str, array: np.ndarray, **kw) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if array.ndim == 3 and "photometric" not in kw:
        kw["photometric"] = "minisblack"  # a stack of pages, not planar RGB
    tifffile.imwrite(folder / name, array, **kw)
    return folder / name


def _snapshot(*folders: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for f in folders for p in sorted(f.iterdir())}


# ---------------------------------------------------------------- normalisation
def test_normalise_maps_percentiles_to_0_and_1():
    image = np.arange(1001, dtype=np.uint16).reshape(1, 7, 143)[:, :, :143]
    out = normalise(image, 0.0, 100.0)
    assert out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == 1.0
    assert out[0, 0, 1] == pytest.approx(1 / 1000)


def test_normalise_uses_the_1st_and_99_8th_percentile_per_channel():
    ramp = np.linspace(0, 1000, 1001)
    image = np.stack([ramp, ramp * 2 + 5]).reshape(2, 1, 1001)
    out = normalise(image)
    lo, hi = 10.0, 998.0  # np.percentile of 0..1000 at 1 and 99.8
    assert out[0, 0, 500] == pytest.approx((500 - lo) / (hi - lo), rel=1e-6)
    assert out[1, 0, 500] == pytest.approx((1005 - (2 * lo + 5)) / (2 * (hi - lo)), rel=1e-6)


def test_constant_image_gives_zeros_and_nan_pixels_become_finite():
    assert not np.any(normalise(np.full((1, 4, 4), 7, np.uint8)))
    image = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    image[0, 0, 0] = np.nan
    image[0, 1, 1] = np.inf
    assert np.isfinite(normalise(image)).all()


def test_model_sees_identical_values_from_uint16_and_float32_tiffs(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(100, 60000, (3, 40, 50)).astype(np.uint16)
    masks = (data > 30000).astype(np.uint8) * 255
    for name, dtype in (("u16", np.uint16), ("f32", np.float32)):
        _write(tmp_path / name / "img", "image1.tif", data.astype(dtype), compression="zlib")
        _write(tmp_path / name / "msk", "mask1.tif", masks)
    a = load_pairs(tmp_path / "u16" / "img", tmp_path / "u16" / "msk")
    b = load_pairs(tmp_path / "f32" / "img", tmp_path / "f32" / "msk")
    assert len(a) == len(b) == 3
    for sa, sb in zip(a, b):
        np.testing.assert_array_equal(sa.image, sb.image)
        assert sa.image.max() > 0.99  # the 16-bit range is kept, not clipped at 255


# ---------------------------------------------------------------- validation
@pytest.fixture
def folders(tmp_path):
    return tmp_path / "images", tmp_path / "masks"


def test_empty_folder_is_one_clear_message(folders):
    folders[0].mkdir()
    folders[1].mkdir()
    with pytest.raises(EmptyFolderError, match=r"no images in '.*images'"):
        load_pairs(*folders)


def test_unmatched_files_are_all_listed_and_nothing_changes(folders):
    img, msk = folders
    for i in (1, 2, 3):
        _write(img, f"image{i}.tif", np.zeros((8, 8), np.uint8))
    _write(msk, "mask1.tif", np.zeros((8, 8), np.uint8))
    _write(msk, "mask9.tif", np.zeros((8, 8), np.uint8))
    before = _snapshot(img, msk)
    with pytest.raises(PairingError) as err:
        load_pairs(img, msk)
    message = str(err.value)
    assert "image2.tif" in message and "image3.tif" in message and "mask9.tif" in message
    assert "\n" not in message
    assert _snapshot(img, msk) == before


def test_size_mismatch_names_both_sizes(folders):
    img, msk = folders
    _write(img, "image1.tif", np.zeros((10, 12), np.uint8))
    _write(msk, "mask1.tif", np.zeros((10, 11), np.uint8))
    with pytest.raises(ShapeMismatchError, match=r"'image1.tif' is 10x12 .* 'mask1.tif' is 10x11"):
        load_pairs(img, msk)


def test_stack_page_count_mismatch(folders):
    img, msk = folders
    _write(img, "image1.tif", np.zeros((3, 8, 8), np.uint8))
    _write(msk, "mask1.tif", np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(ShapeMismatchError, match=r"has 3 page\(s\) but its mask 'mask1.tif' has 2"):
        load_pairs(img, msk)


def test_mixed_channel_counts_are_refused(folders):
    img, msk = folders
    _write(img, "image1.tif", np.zeros((8, 8), np.uint8))
    _write(img, "image2.tif", np.zeros((8, 8, 3), np.uint8), photometric="rgb")
    for i in (1, 2):
        _write(msk, f"mask{i}.tif", np.zeros((8, 8), np.uint8))
    with pytest.raises(
        ShapeMismatchError,
        match=r"mixed channel counts \(1 channel\(s\): image1.tif; "
        r"3 channel\(s\): image2.tif\)",
    ):
        load_pairs(img, msk)


def test_corrupt_file_is_named(folders):
    img, msk = folders
    _write(img, "image1.tif", np.zeros((8, 8), np.uint8))
    (img / "image2.tif").write_bytes(b"II*\x00garbage")
    for i in (1, 2):
        _write(msk, f"mask{i}.tif", np.zeros((8, 8), np.uint8))
    with pytest.raises(UnreadableImageError, match="image2.tif"):
        load_pairs(img, msk)


def test_label_masks_warn_then_any_nonzero_is_foreground(folders, caplog):
    img, msk = folders
    _write(img, "image1.tif", np.arange(16, dtype=np.uint8).reshape(4, 4))
    labels = np.array([[0, 1, 1, 0], [0, 0, 2, 2], [3, 0, 0, 0], [0, 0, 0, 700]], np.uint16)
    _write(msk, "mask1.tif", labels)
    with caplog.at_level(logging.WARNING, logger="paulow"):
        (s,) = load_pairs(img, msk)
    assert "more than two values" in caplog.text
    np.testing.assert_array_equal(s.mask, (labels > 0).astype(np.uint8))


def test_all_background_masks_warn(folders, caplog):
    img, msk = folders
    _write(img, "image1.tif", np.ones((4, 4), np.uint8))
    _write(msk, "mask1.tif", np.zeros((4, 4), np.uint8))
    with caplog.at_level(logging.WARNING, logger="paulow"):
        (s,) = load_pairs(img, msk)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            "every mask is empty (all background): the model can only learn to predict background "
            "— check TRAINING_MASKS",
        )
    ]
    assert s.mask.dtype == np.uint8 and s.mask.shape == (4, 4) and not s.mask.any()  # loaded, not refused


def test_class_masks_are_kept_as_indices_and_checked(folders):
    img, msk = folders
    _write(img, "image1.tif", np.ones((4, 4), np.uint8))
    _write(msk, "mask1.tif", np.array([[0, 1, 2, 2]] * 4, np.uint8))
    (s,) = load_pairs(img, msk, classes=3)
    assert s.mask.tolist() == [[0, 1, 2, 2]] * 4
    with pytest.raises(ShapeMismatchError) as err:
        load_pairs(img, msk, classes=2)
    assert str(err.value) == (
        "mask 'mask1.tif' has values 0, 1, 2 but --classes 2 allows 0..1 — use "
        "--classes 3 if the mask has that many classes (0 = background), or fix "
        "the mask to hold 0..1"
    )


def test_binary_255_masks_for_a_multiclass_task_are_named_with_the_fix(folders):
    img, msk = folders
    for i in (1, 2):
        _write(img, f"image{i}.tif", np.ones((4, 4), np.uint8))
        _write(msk, f"mask{i}.tif", np.array([[0, 255, 0, 0]] * 4, np.uint8))
    with pytest.raises(ShapeMismatchError) as err:
        load_pairs(img, msk, classes=3)
    message = str(err.value)
    assert message.startswith(
        "mask 'mask1.tif' has values 0, 255 but --classes 3 allows 0..2 (and 1 more mask(s): mask2.tif)"
    )
    assert "binary 0/255 mask: use --classes 1" in message and "\n" not in message


# ---------------------------------------------------------------- splits
def _slices(files: int, pages: int) -> list[Slice]:
    return [
        Slice(np.zeros((1, 4, 4), np.float32), np.zeros((4, 4), np.uint8), Path(f"f{f}.tif"), p)
        for f in range(files)
        for p in range(pages)
    ]


def test_splits_never_put_a_page_on_two_sides():
    slices = _slices(4, 5)
    rest, test = split_test(slices, 0.1, seed=3)
    assert len(test) == 2 and len(rest) == 18
    assert not {s.key for s in rest} & {s.key for s in test}
    folds = kfold(rest, 5, seed=3)
    assert len(folds) == 5
    seen = []
    for train, val in folds:
        assert not {s.key for s in train} & {s.key for s in val}
        assert len(train) + len(val) == 18
        seen += [s.key for s in val]
    assert sorted(seen) == sorted(s.key for s in rest)  # each page validated exactly once


def test_one_fold_is_one_split_and_tiny_sets_still_train():
    ((train, val),) = kfold(_slices(10, 1), 1, seed=0)
    assert (len(train), len(val)) == (8, 2)
    rest, test = split_test(_slices(2, 1), 0.1, seed=0)
    assert (len(rest), len(test)) == (2, 0)


# ---------------------------------------------------------------- patches
def test_grid_starts_cover_the_image_flush_to_the_end():
    assert grid_starts(256, 128, 64) == [0, 64, 128]
    assert grid_starts(250, 128, 64) == [0, 64, 122]
    assert grid_starts(100, 128, 64) == [0]


def test_all_grid_patches_are_kept_including_background():
    mask = np.zeros((256, 256), np.uint8)
    mask[:10, :10] = 1
    s = Slice(np.zeros((1, 256, 256), np.float32), mask, Path("a.tif"), 0)
    data = PatchDataset([s], patch=128, overlap=64, random_fraction=0.5, augment=None)
    assert len(data.grid) == 9 and len(data) == 9 + 4  # round(0.5 * 9) random crops
    empty = sum(float(data[i][1].sum()) == 0 for i in range(9))
    assert empty == 8  # only the first grid patch touches the object
    image, target = data[0]
    assert tuple(image.shape) == (1, 128, 128) and tuple(target.shape) == (1, 128, 128)


def test_small_slices_are_padded_to_a_patch():
    s = Slice(np.ones((1, 20, 30), np.float32), np.ones((20, 30), np.uint8), Path("a.tif"), 0)
    image, target = PatchDataset([s], patch=32, overlap=0, random_fraction=0)[0]
    assert tuple(image.shape) == (1, 32, 32)
    assert float(target.sum()) == 20 * 30  # padding is background


def test_augmentation_moves_image_and_mask_together():
    rng = np.random.default_rng(0)
    image = rng.random((1, 16, 16)).astype(np.float32)
    mask = (image[0] > 0.5).astype(np.uint8)
    aug = Augment(intensity=False)
    for seed in range(8):
        out_img, out_mask = aug(image, mask, np.random.default_rng(seed))
        np.testing.assert_array_equal(out_img[0] > 0.5, out_mask.astype(bool))
