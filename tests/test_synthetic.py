"""Synthetic images: reproducible, exactly binary masks, realistic ranges, written data sets."""

from __future__ import annotations

import numpy as np
import pytest

from paulow import io, synthetic
from paulow.errors import UsageError

GENERATORS = [synthetic.nuclei_image, synthetic.filaments_image]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return 2.0 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


@pytest.mark.parametrize("generate", GENERATORS)
def test_same_seed_same_arrays_other_seed_other_arrays(generate):
    image, mask = generate(size=(48, 64), seed=7)
    again_image, again_mask = generate(size=(48, 64), seed=7)
    other_image, other_mask = generate(size=(48, 64), seed=8)
    assert np.array_equal(image, again_image) and np.array_equal(mask, again_mask)
    assert not np.array_equal(image, other_image)
    assert not np.array_equal(mask, other_mask)


@pytest.mark.parametrize("generate", GENERATORS)
@pytest.mark.parametrize("bit_depth,dtype", [(8, np.uint8), (16, np.uint16)])
def test_shapes_dtypes_and_binary_masks(generate, bit_depth, dtype):
    image, mask = generate(size=(48, 64), seed=1, bit_depth=bit_depth)
    assert image.shape == mask.shape == (48, 64)
    assert image.dtype == dtype
    assert mask.dtype == np.uint8
    assert np.unique(mask).tolist() == [0, 1]


@pytest.mark.parametrize("generate", GENERATORS)
def test_objects_are_brighter_than_background(generate):
    image, mask = generate(seed=2)
    inside, outside = image[mask == 1].mean(), image[mask == 0].mean()
    assert inside > outside + 30


@pytest.mark.parametrize("generate", GENERATORS)
def test_sixteen_bit_uses_a_real_sixteen_bit_range(generate):
    image, mask = generate(seed=3, bit_depth=16)
    background = image[mask == 0]
    assert 200 <= np.percentile(background, 5) <= 450  # a 300 floor
    assert 400 <= np.median(background) <= 900  # plus a 0-600 ramp
    assert image.max() > 1500
    assert np.count_nonzero(image % 257) > image.size // 2  # not an 8-bit image times 257


def test_nuclei_foreground_fraction():
    fractions = [synthetic.nuclei_image(seed=s)[1].mean() for s in range(6)]
    assert all(0.08 <= f <= 0.30 for f in fractions), fractions


def test_filaments_foreground_fraction():
    fractions = [synthetic.filaments_image(seed=s)[1].mean() for s in range(6)]
    assert all(0.03 <= f <= 0.07 for f in fractions), fractions


def test_nuclei_count_and_empty_image():
    image, mask = synthetic.nuclei_image(size=(32, 32), n=0, seed=0)
    assert mask.sum() == 0
    assert image.max() < 100  # background and noise only


def test_simple_threshold_is_not_perfect():
    from skimage.filters import threshold_otsu

    scores = []
    for generate in GENERATORS:
        image, mask = generate(seed=0)
        scores.append(dice(image > threshold_otsu(image), mask))
    assert all(0.5 < s < 0.97 for s in scores), scores


def test_invalid_arguments():
    with pytest.raises(ValueError, match="bit_depth"):
        synthetic.nuclei_image(bit_depth=12)
    with pytest.raises(ValueError, match="seed"):
        synthetic.filaments_image(seed=None)
    with pytest.raises(UsageError, match="unknown synthetic image kind 'cells'"):
        synthetic.make_stack("cells", 2)


@pytest.mark.parametrize("kind", ["nuclei", "filaments"])
def test_make_stack(kind):
    images, masks = synthetic.make_stack(kind, 3, size=(32, 40), seed=4, bit_depth=16)
    assert images.shape == masks.shape == (3, 32, 40)
    assert images.dtype == np.uint16
    assert set(np.unique(masks).tolist()) <= {0, 1}
    assert not np.array_equal(masks[0], masks[1])
    again, _ = synthetic.make_stack(kind, 3, size=(32, 40), seed=4, bit_depth=16)
    assert np.array_equal(images, again)


def test_write_dataset_files_read_back_and_pair(tmp_path):
    pairs = synthetic.write_dataset(tmp_path / "im", tmp_path / "ma", n=3, size=(32, 40), seed=5)
    assert [(i.name, m.name) for i, m in pairs] == [
        ("image1.tif", "mask1.tif"),
        ("image2.tif", "mask2.tif"),
        ("image3.tif", "mask3.tif"),
    ]
    assert io.pair_images_masks(io.list_images(tmp_path / "im"), io.list_images(tmp_path / "ma")) == pairs
    image = io.read_image(pairs[0][0]).data
    mask = io.read_mask(pairs[0][1])
    assert image.shape == (1, 1, 32, 40) and image.dtype == np.uint8
    assert mask.shape == (1, 32, 40)
    assert np.unique(mask).tolist() == [0, 255]
    assert not np.array_equal(image, io.read_image(pairs[1][0]).data)


def test_write_dataset_is_reproducible(tmp_path):
    first = synthetic.write_dataset(tmp_path / "a", tmp_path / "am", n=2, size=(24, 24), seed=9)
    second = synthetic.write_dataset(tmp_path / "b", tmp_path / "bm", n=2, size=(24, 24), seed=9)
    for (image_a, mask_a), (image_b, mask_b) in zip(first, second):
        assert np.array_equal(io.read_image(image_a).data, io.read_image(image_b).data)
        assert np.array_equal(io.read_mask(mask_a), io.read_mask(mask_b))


def test_write_dataset_stacks_sixteen_bit_and_names(tmp_path):
    pairs = synthetic.write_dataset(
        tmp_path / "im",
        tmp_path / "ma",
        kind="filaments",
        n=1,
        size=(32, 32),
        bit_depth=16,
        stack_pages=2,
        image_name="dna-{i}.tif",
        mask_name="{i}.tif",
    )
    image_path, mask_path = pairs[0]
    assert (image_path.name, mask_path.name) == ("dna-1.tif", "1.tif")
    image = io.read_image(image_path)
    assert image.data.shape == (2, 1, 32, 32) and image.data.dtype == np.uint16
    assert io.read_mask(mask_path).shape == (2, 32, 32)


def test_write_dataset_never_overwrites_unless_asked(tmp_path):
    synthetic.write_dataset(tmp_path / "im", tmp_path / "ma", n=1, size=(16, 16))
    before = (tmp_path / "im" / "image1.tif").read_bytes()
    with pytest.raises(UsageError, match="image1.tif' already exists"):
        synthetic.write_dataset(tmp_path / "im", tmp_path / "ma", n=1, size=(16, 16), seed=1)
    assert (tmp_path / "im" / "image1.tif").read_bytes() == before
    synthetic.write_dataset(tmp_path / "im", tmp_path / "ma", n=1, size=(16, 16), seed=1, overwrite=True)
    assert (tmp_path / "im" / "image1.tif").read_bytes() != before
