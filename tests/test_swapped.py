"""A masks folder that holds images is one error before training; instance labels still pass."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from paulow.pair_loading import load_pairs
from paulow.swapped import MasksLookLikeImagesError, check_masks_not_images, image_like
from paulow.synthetic import nuclei_image


def _write_pairs(images_dir, masks_dir, n=4, size=(96, 96)):
    images_dir.mkdir()
    masks_dir.mkdir()
    for i in range(n):
        image, mask = nuclei_image(size, seed=i)
        tifffile.imwrite(images_dir / f"img{i}.tif", image)
        tifffile.imwrite(masks_dir / f"img{i}.tif", (mask > 0).astype(np.uint8) * 255)


def test_swapped_folders_are_one_error_naming_the_files(tmp_path):
    _write_pairs(tmp_path / "images", tmp_path / "masks")
    with pytest.raises(MasksLookLikeImagesError) as info:
        load_pairs(tmp_path / "masks", tmp_path / "images")  # the two folders swapped
    message = str(info.value)
    assert message.startswith(f"4 of 4 mask(s) in '{tmp_path / 'images'}' look like images, not masks")
    assert all(f"'img{i}.tif':" in message for i in range(4)) and "100% of the pixels non-zero" in message
    assert "not swapped" in message and "\n" not in message
    assert len(load_pairs(tmp_path / "images", tmp_path / "masks")) == 4  # the right way round trains


def test_raw_images_with_a_black_background_are_caught_by_their_correlation():
    image, _ = nuclei_image((96, 96), seed=3)
    copy = np.where(image > np.percentile(image, 50), image, 0)[None]  # half the pixels zeroed
    why = image_like(copy, image[None, None])
    assert why is not None and why.endswith("following the image's intensities (r = 1.00)")
    assert image_like(copy) is None  # without the image, half-empty masks are not judged


def _voronoi_labels(size: int, n: int, seed: int) -> np.ndarray:
    """Dense instance labels 1..n tiling the whole image (cells touching, no background)."""
    rng = np.random.default_rng(seed)
    seeds = np.zeros((size, size), np.int32)
    points = rng.choice(size * size, n, replace=False)
    seeds.flat[points] = np.arange(1, n + 1)
    _, index = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
    return seeds[index[0], index[1]]


def test_instance_labels_with_75_objects_pass(tmp_path):
    labels = _voronoi_labels(128, 75, seed=0).astype(np.uint16)
    assert np.unique(labels).size == 75 and labels.all()  # every pixel non-zero, 75 values
    image = (labels % 7 * 30 + 20).astype(np.uint8)
    assert image_like(labels[None], image[None, None]) is None
    sparse = labels * (ndimage.binary_erosion(labels > 0, iterations=1))  # objects with background between
    assert image_like(sparse[None], image[None, None]) is None
    (tmp_path / "i").mkdir()
    (tmp_path / "m").mkdir()
    tifffile.imwrite(tmp_path / "i" / "a.tif", image)
    tifffile.imwrite(tmp_path / "m" / "a.tif", labels)
    (slice_,) = load_pairs(tmp_path / "i", tmp_path / "m")
    assert slice_.mask.min() == 1 and slice_.labels.max() == 75


def test_one_image_among_masks_is_a_warning(caplog):
    image, mask = nuclei_image((64, 64), seed=1)
    pairs = [("a.tif", image[None], image[None, None])] + [
        (f"{i}.tif", mask[None], image[None, None]) for i in range(3)
    ]
    check_masks_not_images(pairs, "'masks'")
    assert "1 mask(s) in 'masks' look like images ('a.tif':" in caplog.text


def test_api_refuses_images_given_as_masks():
    from paulow.api import make_slices

    images = [nuclei_image((64, 64), seed=i)[0] for i in range(2)]
    with pytest.raises(MasksLookLikeImagesError, match=r"^2 of 2 mask\(s\) in the masks given"):
        make_slices(images, images)


def test_jpeg_images_as_masks_are_not_binarised_into_passing(tmp_path):
    from PIL import Image

    (tmp_path / "i").mkdir()
    (tmp_path / "m").mkdir()
    for i in range(2):
        image, mask = nuclei_image((96, 96), seed=i)
        tifffile.imwrite(tmp_path / "i" / f"a{i}.tif", (mask > 0).astype(np.uint8) * 255)
        Image.fromarray(image).save(tmp_path / "m" / f"a{i}.jpg", quality=90)  # raw photos as masks
    with pytest.raises(MasksLookLikeImagesError, match=r"^2 of 2 mask\(s\) in .* \('a0.jpg': \d+ values"):
        load_pairs(tmp_path / "i", tmp_path / "m")
