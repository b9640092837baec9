"""Reading and writing every supported format, bit depth and layout; errors; atomic writes."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image

from paulow import io
from paulow.errors import EmptyFolderError, UnreadableImageError


def ramp(shape: tuple[int, ...], dtype, step: float = 1) -> np.ndarray:
    """Distinct, known values: 0, step, 2*step, ... in `dtype`."""
    return (np.arange(np.prod(shape)) * step).reshape(shape).astype(dtype)


def tif(tmp_path: Path, name: str, array: np.ndarray, **options) -> Path:
    path = tmp_path / name
    tifffile.imwrite(path, array, **options)
    return path


# --- TIFF: dtypes, colour, compression, metadata axes -------------------------------------------


@pytest.mark.parametrize(
    "dtype,step", [(np.uint8, 3), (np.uint16, 1000), (np.int16, -700), (np.float32, 0.25)]
)
def test_single_page_tiff_keeps_values_and_dtype(tmp_path, dtype, step):
    array = ramp((5, 7), dtype, step)
    stack = io.read_image(tif(tmp_path, "a.tif", array))
    assert stack.data.shape == (1, 1, 5, 7)
    assert stack.data.dtype == dtype
    assert np.array_equal(stack.data[0, 0], array)
    assert stack.axes == "YX"
    assert stack.resolution is None and stack.unit is None and stack.pixel_size is None


@pytest.mark.parametrize("samples", [3, 4])
def test_rgb_and_rgba_tiff_become_channels(tmp_path, samples):
    array = ramp((5, 7, samples), np.uint8)
    stack = io.read_image(tif(tmp_path, "rgb.tif", array, photometric="rgb"))
    assert stack.data.shape == (1, samples, 5, 7)
    assert stack.axes == "YXS"
    for channel in range(samples):
        assert np.array_equal(stack.data[0, channel], array[..., channel])


@pytest.mark.parametrize(
    "compression,code", [("lzw", 5), ("zlib", 8), ("deflate", 32946), ("packbits", 32773)]
)
def test_compressed_uint16_stack_keeps_pages(tmp_path, compression, code):
    array = ramp((4, 5, 7), np.uint16, 401)
    path = tif(tmp_path, "s.tif", array, photometric="minisblack", compression=compression)
    with tifffile.TiffFile(path) as handle:
        assert handle.pages.first.compression == code
    stack = io.read_image(path)
    assert stack.data.shape == (4, 1, 5, 7)
    assert stack.data.dtype == np.uint16
    assert np.array_equal(stack.data[:, 0], array)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # tifffile's old default, on purpose
def test_plain_rgb_written_without_photometric_is_read_as_channels(tmp_path):
    # tifffile stores a (3, H, W) uint8 array as planar RGB; the file says so, so 3 channels
    stack = io.read_image(tif(tmp_path, "planar.tif", ramp((3, 5, 7), np.uint8)))
    assert stack.data.shape == (1, 3, 5, 7)
    assert stack.axes == "SYX"


def test_imagej_hyperstack_flattens_t_and_z_keeps_channels(tmp_path):
    array = ramp((2, 3, 2, 5, 7), np.uint16)  # T, Z, C, Y, X
    path = tif(
        tmp_path, "h.tif", array, imagej=True, metadata={"axes": "TZCYX", "unit": "um"}, resolution=(2.0, 4.0)
    )
    stack = io.read_image(path)
    assert stack.axes == "TZCYX"
    assert stack.data.shape == (6, 2, 5, 7)
    for t in range(2):
        for z in range(3):
            assert np.array_equal(stack.data[t * 3 + z], array[t, z])
    assert stack.resolution == (2.0, 4.0)
    assert stack.unit == "micron"
    assert stack.pixel_size == 0.5


def test_imagej_rgb_stack(tmp_path):
    array = ramp((2, 5, 7, 3), np.uint8)
    stack = io.read_image(
        tif(tmp_path, "zrgb.tif", array, imagej=True, photometric="rgb", metadata={"axes": "ZYXS"})
    )
    assert stack.data.shape == (2, 3, 5, 7)
    assert np.array_equal(stack.data[1, 2], array[1, ..., 2])


def test_ome_tiff_axes_and_physical_size(tmp_path):
    array = ramp((3, 2, 5, 7), np.uint16)  # Z, C, Y, X
    path = tif(
        tmp_path,
        "o.ome.tif",
        array,
        ome=True,
        metadata={"axes": "ZCYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.25},
    )
    stack = io.read_image(path)
    assert stack.axes == "ZCYX"
    assert stack.data.shape == (3, 2, 5, 7)
    assert np.array_equal(stack.data[2, 1], array[2, 1])
    assert stack.resolution == (2.0, 4.0)
    assert stack.unit == "micron"


def test_tiff_resolution_unit_tag(tmp_path):
    path = tif(
        tmp_path, "cm.tif", ramp((5, 7), np.uint8), resolution=(10.0, 20.0), resolutionunit="CENTIMETER"
    )
    stack = io.read_image(path)
    assert stack.resolution == (10.0, 20.0)
    assert stack.unit == "cm"
    assert stack.pixel_size == pytest.approx(0.1)


def test_bool_tiff_reads_as_uint8(tmp_path):
    array = np.array([[True, False], [False, True]])
    stack = io.read_image(tif(tmp_path, "b.tif", array))
    assert stack.data.dtype == np.uint8
    assert stack.data[0, 0].tolist() == [[1, 0], [0, 1]]


def test_series_of_equal_shape_are_pages_and_others_warned(tmp_path):
    path = tmp_path / "multi.tif"
    with tifffile.TiffWriter(path) as writer:
        writer.write(ramp((5, 7), np.uint8), metadata=None)
        writer.write(ramp((5, 7), np.uint8, 2), metadata=None)
    stack = io.read_image(path)
    assert stack.data.shape == (2, 1, 5, 7)
    assert np.array_equal(stack.data[1, 0], ramp((5, 7), np.uint8, 2))

    odd = tmp_path / "odd.tif"
    with tifffile.TiffWriter(odd) as writer:
        writer.write(ramp((5, 7), np.uint8), metadata=None)
        writer.write(ramp((2, 3), np.uint8), metadata=None)
    with pytest.warns(UserWarning, match=r"ignored 1 page\(s\) of another size"):
        assert io.read_image(odd).data.shape == (1, 1, 5, 7)


# --- PNG, JPEG, BMP ------------------------------------------------------------------------------


def test_png_8_and_16_bit_grey(tmp_path):
    grey8, grey16 = ramp((5, 7), np.uint8, 7), ramp((5, 7), np.uint16, 1800)
    Image.fromarray(grey8).save(tmp_path / "g8.png")
    cv2.imwrite(str(tmp_path / "g16.png"), grey16)
    for name, array in (("g8.png", grey8), ("g16.png", grey16)):
        stack = io.read_image(tmp_path / name)
        assert stack.data.shape == (1, 1, 5, 7)
        assert stack.data.dtype == array.dtype
        assert np.array_equal(stack.data[0, 0], array)
        assert stack.axes == "YX"


def test_png_rgb_8_and_16_bit_in_rgb_order(tmp_path):
    rgb8 = ramp((5, 7, 3), np.uint8)
    rgb16 = ramp((5, 7, 3), np.uint16, 600)
    Image.fromarray(rgb8).save(tmp_path / "c8.png")
    cv2.imwrite(str(tmp_path / "c16.png"), rgb16[..., ::-1])  # OpenCV writes BGR
    for name, array in (("c8.png", rgb8), ("c16.png", rgb16)):
        stack = io.read_image(tmp_path / name)
        assert stack.data.dtype == array.dtype
        assert np.array_equal(stack.data[0], np.moveaxis(array, -1, 0))


def test_png_rgba_keeps_alpha(tmp_path):
    rgba = ramp((5, 7, 4), np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert np.array_equal(io.read_image(tmp_path / "a.png").data[0], np.moveaxis(rgba, -1, 0))


def test_jpeg_values_are_close_and_rgb_ordered(tmp_path):
    smooth = np.tile(np.linspace(20, 220, 32), (32, 1)).astype(np.uint8)
    Image.fromarray(smooth).save(tmp_path / "g.jpg", quality=95)
    grey = io.read_image(tmp_path / "g.jpg").data
    assert grey.shape == (1, 1, 32, 32)
    assert np.abs(grey[0, 0].astype(int) - smooth).max() <= 4

    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 200
    Image.fromarray(red).save(tmp_path / "red.jpeg", quality=95)
    colour = io.read_image(tmp_path / "red.jpeg").data
    assert colour.shape == (1, 3, 16, 16)
    assert abs(int(colour[0, 0].mean()) - 200) <= 4
    assert colour[0, 2].mean() <= 4


def test_bmp_grey_and_rgb(tmp_path):
    rgb = ramp((5, 7, 3), np.uint8, 2)
    Image.fromarray(rgb).save(tmp_path / "c.bmp")
    Image.fromarray(rgb[..., 1]).save(tmp_path / "g.bmp")
    assert np.array_equal(io.read_image(tmp_path / "c.bmp").data[0], np.moveaxis(rgb, -1, 0))
    assert np.array_equal(io.read_image(tmp_path / "g.bmp").data[0, 0], rgb[..., 1])


def test_upper_case_extensions(tmp_path):
    array = ramp((5, 7), np.uint8)
    tif(tmp_path, "UP.TIF", array)
    Image.fromarray(array).save(tmp_path / "UP2.PNG", format="PNG")
    assert [p.name for p in io.list_images(tmp_path)] == ["UP.TIF", "UP2.PNG"]
    for name in ("UP.TIF", "UP2.PNG"):
        assert np.array_equal(io.read_image(tmp_path / name).data[0, 0], array)


# --- masks ---------------------------------------------------------------------------------------


def test_read_mask_grey_keeps_raw_values(tmp_path):
    labels = np.array([[0, 1, 2], [300, 0, 7]], np.uint16)
    mask = io.read_mask(tif(tmp_path, "l.tif", labels))
    assert mask.shape == (1, 2, 3)
    assert mask.dtype == np.uint16
    assert np.array_equal(mask[0], labels)


def test_read_mask_rgb_equal_channels_takes_one(tmp_path):
    grey = np.array([[0, 255], [255, 0]], np.uint8)
    Image.fromarray(np.dstack([grey] * 3)).save(tmp_path / "m.png")
    assert io.read_mask(tmp_path / "m.png").tolist() == [[[0, 255], [255, 0]]]


def test_read_mask_rgb_different_channels_any_nonzero(tmp_path):
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0, 0] = 255  # red object
    rgb[1, 2, 2] = 90  # blue object
    Image.fromarray(rgb).save(tmp_path / "m.png")
    mask = io.read_mask(tmp_path / "m.png")
    assert mask.dtype == np.uint8
    assert mask.tolist() == [[[1, 0, 0], [0, 0, 1]]]


def test_read_mask_ignores_constant_alpha(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[0, 1, :3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "m.png")
    assert io.read_mask(tmp_path / "m.png").tolist() == [[[0, 255], [0, 0]]]


def test_read_mask_palette_png_gives_indices(tmp_path):
    image = Image.fromarray(np.array([[0, 1], [2, 1]], np.uint8), "P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    image.save(tmp_path / "p.png")
    assert io.read_mask(tmp_path / "p.png").tolist() == [[[0, 1], [2, 1]]]


def test_read_mask_float_integral_keeps_values_else_positive(tmp_path):
    integral = np.array([[0.0, 1.0], [2.0, np.nan]], np.float32)
    mask = io.read_mask(tif(tmp_path, "i.tif", integral))
    assert mask.dtype == np.uint8
    assert mask.tolist() == [[[0, 1], [2, 0]]]
    soft = np.array([[0.0, 0.2], [-0.5, 0.9]], np.float32)
    assert io.read_mask(tif(tmp_path, "f.tif", soft)).tolist() == [[[0, 1], [0, 1]]]


def test_read_mask_stack(tmp_path):
    pages = ramp((3, 4, 5), np.uint8) % 2
    mask = io.read_mask(tif(tmp_path, "s.tif", pages, photometric="minisblack"))
    assert mask.shape == (3, 4, 5)
    assert np.array_equal(mask, pages)


# --- errors --------------------------------------------------------------------------------------


def assert_unreadable(path: Path) -> str:
    with pytest.raises(UnreadableImageError) as caught:
        io.read_image(path)
    message = str(caught.value)
    assert path.name in message and "\n" not in message
    return message


def test_corrupt_tiff_names_the_file(tmp_path):
    path = tmp_path / "junk.tif"
    path.write_bytes(b"this is not an image at all" * 10)
    message = assert_unreadable(path)
    assert message.endswith("Re-export it as TIFF or PNG, or remove it from the folder.")


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.99])
def test_truncated_compressed_stack_is_unreadable(tmp_path, keep):
    path = tif(
        tmp_path, "full.tif", ramp((3, 64, 64), np.uint8) % 251, photometric="minisblack", compression="zlib"
    )
    data = path.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[: int(len(data) * keep)])
    assert_unreadable(cut)
    assert logging.getLogger("tifffile").propagate  # logging state restored


@pytest.mark.parametrize("name", ["t.png", "t.jpg"])
def test_truncated_png_and_jpeg_are_unreadable(tmp_path, name):
    noise = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
    full = tmp_path / ("full" + Path(name).suffix)
    Image.fromarray(noise).save(full)
    path = tmp_path / name
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    assert_unreadable(path)


def test_empty_and_missing_and_unsupported_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    assert_unreadable(tmp_path / "empty.png")
    assert "file not found" in assert_unreadable(tmp_path / "missing.tif")
    (tmp_path / "movie.gif").write_bytes(b"GIF89a")
    assert "unsupported file type '.gif'" in assert_unreadable(tmp_path / "movie.gif")
    with pytest.raises(UnreadableImageError, match="bad.tif"):
        (tmp_path / "bad.tif").write_bytes(b"")
        io.read_mask(tmp_path / "bad.tif")


# --- listing -------------------------------------------------------------------------------------


def test_list_images_natural_order_without_hidden_files(tmp_path):
    for name in [
        "img10.tif",
        "img2.tif",
        "Img1.png",
        ".DS_Store",
        "._img3.tif",
        ".hidden.tif",
        "Thumbs.db",
        "notes.txt",
        "img3.JPG",
    ]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "img4.tif").write_bytes(b"x")
    (tmp_path / "sub.tif").mkdir()
    assert [p.name for p in io.list_images(tmp_path)] == ["Img1.png", "img2.tif", "img3.JPG", "img10.tif"]
    assert [p.name for p in io.list_other_files(tmp_path)] == ["notes.txt"]


def test_list_images_empty_and_missing_folder(tmp_path):
    assert io.list_images(tmp_path) == []
    with pytest.raises(EmptyFolderError, match="nope"):
        io.list_images(tmp_path / "nope")


def test_natural_sort_key():
    names = ["img10.tif", "img2.tif", "IMG1.tif", "img1b.tif", "a.tif"]
    assert sorted(names, key=io.natural_sort_key) == [
        "a.tif",
        "IMG1.tif",
        "img1b.tif",
        "img2.tif",
        "img10.tif",
    ]


# --- writing -------------------------------------------------------------------------------------


def test_write_mask_copies_resolution_and_unit(tmp_path):
    mask = io.binary_to_uint8(np.eye(4, dtype=np.uint8))
    path = io.write_mask(tmp_path / "m.tif", mask, resolution=(2.0, 4.0), unit="micron")
    assert path == tmp_path / "m.tif"
    stack = io.read_image(path)
    assert stack.axes == "YX"
    assert stack.resolution == (2.0, 4.0)
    assert stack.unit == "micron"
    assert stack.pixel_size == 0.5
    with tifffile.TiffFile(path) as handle:
        assert handle.is_imagej
        assert handle.imagej_metadata["unit"] == "micron"
    assert np.array_equal(io.read_mask(path)[0], mask)


def test_write_mask_stack_keeps_page_order(tmp_path):
    pages = np.stack([np.full((4, 5), value, np.uint16) for value in (3, 1, 2)])
    path = io.write_mask(tmp_path / "s.tif", pages)
    with tifffile.TiffFile(path) as handle:
        assert handle.is_imagej
        assert handle.series[0].axes == "ZYX"
        assert handle.imagej_metadata["slices"] == 3
    mask = io.read_mask(path)
    assert mask.dtype == np.uint16
    assert [int(page[0, 0]) for page in mask] == [3, 1, 2]


def test_write_mask_single_page_stack_is_an_image(tmp_path):
    path = io.write_mask(tmp_path / "one.tif", np.ones((1, 3, 3), np.uint8))
    assert io.read_image(path).axes == "YX"


@pytest.mark.parametrize(
    "mask", [np.ones((3, 3), bool), np.ones((3, 3), np.int32), np.ones((2, 2, 3, 3), np.uint8)]
)
def test_write_mask_rejects_other_dtypes_and_shapes(tmp_path, mask):
    with pytest.raises(ValueError):
        io.write_mask(tmp_path / "m.tif", mask)
    assert list(tmp_path.iterdir()) == []


def test_binary_to_uint8():
    converted = io.binary_to_uint8(np.array([[0, 1], [2, 0]]))
    assert converted.dtype == np.uint8
    assert converted.tolist() == [[0, 255], [255, 0]]


def test_write_tiff_int16_and_float32_round_trip(tmp_path):
    signed = ramp((2, 3, 4), np.int16, -5)
    stack = io.read_image(io.write_tiff(tmp_path / "s.tif", signed))
    assert stack.data.dtype == np.int16 and stack.data.shape == (2, 1, 3, 4)
    assert np.array_equal(stack.data[:, 0], signed)
    probabilities = ramp((3, 4), np.float32, 0.05)
    stack = io.read_image(io.write_tiff(tmp_path / "p.tif", probabilities, compression="zlib"))
    assert np.array_equal(stack.data[0, 0], probabilities)


def test_write_tiff_rgb_axes(tmp_path):
    rgb = ramp((5, 7, 3), np.uint8)
    stack = io.read_image(io.write_tiff(tmp_path / "rgb.tif", rgb, axes="YXS"))
    assert stack.data.shape == (1, 3, 5, 7)
    assert np.array_equal(stack.data[0, 2], rgb[..., 2])


@pytest.mark.parametrize(
    "image",
    [
        ramp((4, 5), np.uint8),
        ramp((4, 5), np.uint16, 3000),
        ramp((4, 5, 3), np.uint8),
        ramp((4, 5, 4), np.uint8),
    ],
)
def test_write_png_round_trip(tmp_path, image):
    stack = io.read_image(io.write_png(tmp_path / "o.png", image))
    expected = image[None] if image.ndim == 2 else np.moveaxis(image, -1, 0)
    assert stack.data.dtype == image.dtype
    assert np.array_equal(stack.data[0], expected)


def test_write_png_rejects_float(tmp_path):
    with pytest.raises(ValueError, match="write_png"):
        io.write_png(tmp_path / "o.png", np.zeros((3, 3), np.float32))


def test_atomic_write_replaces_on_success(tmp_path):
    final = tmp_path / "out.txt"
    final.write_text("old")
    with io.atomic_write_path(final) as temporary:
        assert temporary.parent == tmp_path
        assert temporary.name.startswith(".") and temporary.suffix == ".txt"
        assert final.read_text() == "old"  # untouched until the block ends
        temporary.write_text("new")
    assert final.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_write_removes_temporary_on_error(tmp_path):
    final = tmp_path / "out.txt"
    final.write_text("old")
    with pytest.raises(RuntimeError):
        with io.atomic_write_path(final) as temporary:
            temporary.write_text("half")
            raise RuntimeError("disk full")
    assert final.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_write_creates_the_folder(tmp_path):
    mask = np.array([[0, 1], [1, 0]], np.uint8)
    path = io.write_mask(tmp_path / "new" / "m.tif", mask)
    assert path == tmp_path / "new" / "m.tif"
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["m.tif"]  # no temporary file left
    np.testing.assert_array_equal(io.read_mask(path), mask[None])


def test_unique_path(tmp_path):
    assert io.unique_path(tmp_path / "m.tif") == tmp_path / "m.tif"
    (tmp_path / "m.tif").write_bytes(b"")
    assert io.unique_path(tmp_path / "m.tif") == tmp_path / "m_2.tif"
    (tmp_path / "m_2.tif").write_bytes(b"")
    assert io.unique_path(tmp_path / "m.tif") == tmp_path / "m_3.tif"
    (tmp_path / "x.ome.tif").write_bytes(b"")
    assert io.unique_path(tmp_path / "x.ome.tif") == tmp_path / "x_2.ome.tif"


# --- summaries -----------------------------------------------------------------------------------


def test_image_info_and_nonfinite(tmp_path):
    array = np.array([[1.5, np.nan], [-2.0, np.inf]], np.float32)
    stack = io.ImageStack(array[None, None], tmp_path / "a.tif", "YX", (4.0, 4.0), "micron")
    assert io.image_info(stack) == {
        "shape": (1, 1, 2, 2),
        "dtype": "float32",
        "min": -2.0,
        "max": 1.5,
        "axes": "YX",
        "pixel_size": 0.25,
        "unit": "micron",
    }
    assert io.count_nonfinite(array) == 2
    assert io.count_nonfinite(np.ones(3, np.uint8)) == 0
    empty = io.ImageStack(np.full((1, 1, 1, 1), np.nan, np.float32), tmp_path / "e.tif", "YX")
    assert io.image_info(empty)["min"] is None


def test_image_info_integer(tmp_path):
    stack = io.read_image(tif(tmp_path, "u.tif", ramp((2, 3), np.uint16, 100)))
    info = io.image_info(stack)
    assert (info["min"], info["max"], info["dtype"]) == (0, 500, "uint16")
    assert isinstance(info["max"], int)


def test_vendor_microscope_files_are_named_with_the_fix(tmp_path):
    from paulow.errors import EmptyFolderError
    from paulow.pair_loading import load_images

    (tmp_path / "cells.czi").write_bytes(b"x")
    (tmp_path / "b.ND2").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(EmptyFolderError) as err:
        load_images(tmp_path)
    message = str(err.value)
    assert "b.ND2, cells.czi" in message and "OME-TIFF" in message and "notes.txt" not in message


def test_label_tiff_carries_an_imagej_lut(tmp_path):
    import tifffile

    from paulow.io import class_lut, write_label_tiff

    labels = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    path = write_label_tiff(
        tmp_path / "labels.tif", np.stack([labels, labels]), 3, resolution=(2.0, 2.0), unit="um"
    )
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
        lut = np.asarray(tif.imagej_metadata["LUTs"]).reshape(3, 256)  # one channel: one LUT
        data = tif.asarray()
    np.testing.assert_array_equal(lut, class_lut(3))
    colours = {tuple(lut[:, i]) for i in range(3)}
    assert len(colours) == 3 and tuple(lut[:, 0]) == (0, 0, 0)  # distinct, background black
    np.testing.assert_array_equal(data, np.stack([labels, labels]))
    np.testing.assert_array_equal(io.read_mask(path), np.stack([labels, labels]))
