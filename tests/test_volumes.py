"""NIfTI and DICOM series in and out: geometry kept, slice order from positions, bad series and
masks on another grid refused in one line."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from _volumes import affine, write_nii, write_series

from paulow import io
from paulow.errors import ShapeMismatchError, UnreadableImageError
from paulow.volumes import check_mask_geometry, read_volume, volume_stem, write_nifti


def test_nifti_round_trip_keeps_values_spacing_and_affine(tmp_path):
    volume = np.arange(4 * 5 * 3, dtype=np.int16).reshape(4, 5, 3)  # (i, j, k)
    path = write_nii(tmp_path / "case1.nii.gz", volume, affine())
    stack = io.read_image(path)
    assert stack.data.shape == (3, 1, 5, 4)  # (pages k, C, rows j, columns i)
    assert stack.data[2, 0, 4, 1] == volume[1, 4, 2]
    assert stack.geometry.spacing == pytest.approx((0.8, 0.7, 2.5))
    assert stack.pixel_size == pytest.approx(0.8) and stack.unit == "mm"
    out = write_nifti(tmp_path / "out.nii.gz", stack.data[:, 0], stack.geometry)
    back = nib.load(str(out))
    np.testing.assert_array_equal(np.asarray(back.dataobj), volume)
    np.testing.assert_allclose(back.affine, affine())
    assert nib.aff2axcodes(back.affine) == nib.aff2axcodes(affine())
    assert back.header.get_zooms() == pytest.approx((0.8, 0.7, 2.5))


def test_nifti_listed_paired_and_named(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    write_nii(images / "case1.nii.gz", np.zeros((4, 4, 2), np.float32), affine())
    write_nii(images / "case2.nii", np.zeros((4, 4, 2), np.float32), affine())
    write_nii(masks / "case1_mask.nii.gz", np.zeros((4, 4, 2), np.uint8), affine())
    write_nii(masks / "case2_mask.nii", np.zeros((4, 4, 2), np.uint8), affine())
    listed = io.list_images(images)
    assert [p.name for p in listed] == ["case1.nii.gz", "case2.nii"]
    assert io.list_other_files(images) == []
    pairs = io.pair_images_masks(listed, io.list_images(masks))
    assert [(i.name, m.name) for i, m in pairs] == [
        ("case1.nii.gz", "case1_mask.nii.gz"),
        ("case2.nii", "case2_mask.nii"),
    ]
    assert volume_stem(images / "case1.nii.gz") == "case1"
    (tmp_path / "x_mask.nii.gz").touch()
    assert io.unique_path(tmp_path / "x_mask.nii.gz").name == "x_mask_2.nii.gz"


def test_nifti_label_mask_reads_as_integer_pages(tmp_path):
    labels = np.zeros((6, 5, 2), np.float32)
    labels[1:3, 1:3, 1] = 2.0
    path = write_nii(tmp_path / "m.nii.gz", labels, affine())
    mask = io.read_mask(path)
    assert mask.shape == (2, 5, 6) and mask.dtype.kind in "iu"
    assert mask[1, 1, 1] == 2 and int(mask.sum()) == 8


def test_mask_with_anotheraffine_refused_in_one_line(tmp_path):
    image = write_nii(tmp_path / "case1.nii.gz", np.zeros((4, 4, 2), np.float32), affine())
    shifted = write_nii(
        tmp_path / "case1_mask.nii.gz", np.zeros((4, 4, 2), np.uint8), affine(origin=(12.0, -20.0, 5.0))
    )
    with pytest.raises(ShapeMismatchError) as info:
        check_mask_geometry(image, shifted)
    message = str(info.value)
    assert "\n" not in message
    assert message == (
        f"mask '{shifted}' has another affine (position/orientation/spacing) than its image "
        "'case1.nii.gz' (differs by up to 2 mm) - save the mask on the image's grid (same "
        "shape and affine, e.g. from the same viewer session) and train again"
    )
    wrong_shape = write_nii(tmp_path / "other.nii.gz", np.zeros((4, 4, 3), np.uint8), affine())
    with pytest.raises(
        ShapeMismatchError, match=r"is \(4, 4, 3\) voxels but its image 'case1.nii.gz' is \(4, 4, 2\)"
    ):
        check_mask_geometry(image, wrong_shape)
    check_mask_geometry(image, image)  # the same grid passes


def test_dicom_series_sorted_by_position_not_name(tmp_path):
    volume = (np.arange(4)[:, None, None] * 100 + np.arange(6 * 5).reshape(6, 5) - 1000).astype(np.int16)
    names = ["z.dcm", "a.dcm", "m.dcm", "b.dcm"]  # name order: a, b, m, z = slices 1, 3, 2, 0
    write_series(tmp_path / "ct1", volume, names=names)
    assert io.list_images(tmp_path) == [tmp_path / "ct1"]
    stack = io.read_image(tmp_path / "ct1")
    assert stack.data.shape == (4, 1, 6, 5) and stack.data.dtype == np.int16
    np.testing.assert_array_equal(stack.data[:, 0], volume)  # HU: rescale intercept applied
    assert stack.geometry.spacing == pytest.approx((0.6, 0.5, 2.0))  # columns, rows, slices
    assert stack.pixel_size == pytest.approx(0.6)
    # LPS (-30, -40, 100) is RAS (30, 40, 100); i runs to patient left, i.e. -x in RAS
    np.testing.assert_allclose(stack.geometry.affine[:3, 3], [30.0, 40.0, 100.0])
    assert nib.aff2axcodes(stack.geometry.affine) == ("L", "P", "S")
    out = write_nifti(tmp_path / "ct1_mask.nii.gz", (stack.data[:, 0] > 0).astype(np.uint8), stack.geometry)
    back = nib.load(str(out))
    np.testing.assert_array_equal(np.asarray(back.dataobj), (volume > 0).transpose(2, 1, 0))
    check_mask_geometry(tmp_path / "ct1", out)


def test_dicom_series_with_missing_slice_refused(tmp_path):
    write_series(tmp_path / "gap", np.zeros((5, 4, 4), np.int16), skip={2})
    with pytest.raises(UnreadableImageError) as info:
        read_volume(tmp_path / "gap")
    assert str(info.value) == (
        f"cannot read '{tmp_path / 'gap'}': slices 'slice001.dcm' and 'slice003.dcm' "
        "are 4 mm apart where the others are 2 mm (a missing or misplaced slice). "
        "Export the complete series again."
    )


def test_dicom_series_with_mixed_sizes_refused(tmp_path):
    write_series(tmp_path / "mixed", np.zeros((2, 4, 4), np.int16))
    write_series(tmp_path / "other", np.zeros((1, 5, 4), np.int16), names=["odd.dcm"])
    (tmp_path / "other" / "odd.dcm").rename(tmp_path / "mixed" / "odd.dcm")
    with pytest.raises(UnreadableImageError, match="holds 2 series"):
        io.read_image(tmp_path / "mixed")


def test_napari_reader_opens_volumes_with_their_spacing(tmp_path):
    from paulow.napari.reader import get_reader

    write_nii(tmp_path / "vol.nii.gz", np.zeros((4, 5, 3), np.float32), affine())
    write_nii(tmp_path / "vol_labels.nii.gz", np.ones((4, 5, 3), np.uint16), affine())
    write_series(tmp_path / "ct1", np.zeros((2, 6, 5), np.int16))
    assert get_reader(str(tmp_path / "x.tif")) is None
    ((data, meta, kind),) = get_reader(str(tmp_path / "vol.nii.gz"))(str(tmp_path / "vol.nii.gz"))
    assert data.shape == (3, 5, 4) and kind == "image" and meta["scale"] == pytest.approx((2.5, 0.7, 0.8))
    ((_, meta, kind),) = get_reader(str(tmp_path / "vol_labels.nii.gz"))(str(tmp_path / "vol_labels.nii.gz"))
    assert kind == "labels" and meta["name"] == "vol_labels"
    ((data, meta, _),) = get_reader(str(tmp_path / "ct1"))(str(tmp_path / "ct1"))
    assert data.shape == (2, 6, 5) and meta["scale"] == pytest.approx((2.0, 0.5, 0.6))


def test_evaluate_finds_nifti_predictions_in_an_output_folder(tmp_path):
    from paulow.evaluate import files_of

    for name in ("vol_mask.nii.gz", "vol_labels.nii.gz"):
        write_nii(tmp_path / name, np.zeros((4, 4, 2), np.uint8), affine())
    assert [p.name for p in files_of(tmp_path, predictions=True)] == ["vol_mask.nii.gz"]


def test_dicom_slice_with_another_orientation_refused(tmp_path):
    import pydicom

    paths = write_series(tmp_path / "tilted", np.zeros((3, 4, 4), np.int16))
    ds = pydicom.dcmread(paths[1])
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, 1]
    ds.save_as(paths[1])
    with pytest.raises(UnreadableImageError) as info:
        io.read_image(tmp_path / "tilted")
    assert str(info.value) == (
        f"cannot read '{tmp_path / 'tilted'}': slice 'slice001.dcm' differs from "
        "'slice000.dcm' in size, pixel spacing or orientation. Keep only the slices of "
        "one series in the folder."
    )


def test_training_folders_with_nifti_pairs_load_and_refuse_another_grid(tmp_path):
    from paulow.pair_loading import load_pairs

    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    volume = np.zeros((8, 6, 3), np.int16)
    volume[2:5, 1:4, 1] = 100
    write_nii(images / "case1.nii.gz", volume, affine())
    write_nii(masks / "case1_mask.nii.gz", (volume > 0).astype(np.uint8), affine())
    slices = load_pairs(images, masks)
    assert [(s.page, s.image.shape, int(s.mask.sum())) for s in slices] == [
        (0, (1, 6, 8), 0),
        (1, (1, 6, 8), 9),
        (2, (1, 6, 8), 0),
    ]
    write_nii(masks / "case1_mask.nii.gz", (volume > 0).astype(np.uint8), affine(spacing=(0.8, 0.7, 3.0)))
    with pytest.raises(ShapeMismatchError, match="case1_mask.nii.gz' has another affine"):
        load_pairs(images, masks)


def test_loose_dicom_slices_are_named_with_the_fix(tmp_path):
    from paulow.errors import EmptyFolderError
    from paulow.pair_loading import load_images

    write_series(tmp_path, np.zeros((4, 4, 4), np.int16))
    with pytest.raises(EmptyFolderError) as info:
        load_images(tmp_path)
    assert str(info.value) == (
        f"no images in '{tmp_path}': 4 DICOM slice(s) (slice000.dcm, slice001.dcm, "
        "slice002.dcm, ...) lie loose in the folder - put each series' .dcm files in a "
        "sub-folder of their own (e.g. series1/)"
    )
