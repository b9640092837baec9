"""`--format ome-tiff`: a tiled, pyramidal OME-TIFF from the chunked engine, equal to its TIFF output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
import zarr
from test_chunked_files import blob_image, blob_model

from paulow.ome_tiff import input_pixel_size, write_ome_tiff


def test_ome_tiff_pyramid_equals_the_tiff_output(tmp_path: Path):
    source = tmp_path / "scan.tif"
    image = blob_image(300, 280)
    tifffile.imwrite(
        source, image, tile=(64, 64), ome=True, metadata={"PhysicalSizeX": 0.25, "PhysicalSizeY": 0.5}
    )
    model = blob_model()
    options = dict(chunk=96, tile=32, scheduler="sync")
    record = model.predict_file(source, tmp_path / "ome", format="ome-tiff", **options)
    assert [Path(p).name for p in record["outputs"]] == [
        "scan_mask.ome.tif",
        "scan_labels.ome.tif",
        "scan_objects.csv",
    ]
    flat = model.predict_file(source, tmp_path / "tif", format="tiff", **options)
    for role in ("mask", "labels"):
        with tifffile.TiffFile(tmp_path / "ome" / f"scan_{role}.ome.tif") as tif:
            assert tif.is_ome and len(tif.series) == 1
            levels = tif.series[0].levels
            assert [level.shape for level in levels] == [(300, 280), (150, 140), (75, 70)]
            page = tif.pages.first
            assert page.is_tiled and (page.tilelength, page.tilewidth) == (256, 256)
            assert len(page.dataoffsets) == 4  # 2 x 2 tiles of 256 px
            assert page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
            full = levels[0].asarray()
            assert np.array_equal(full, tifffile.imread(Path(flat["outputs"][0 if role == "mask" else 1])))
            for n, level in enumerate(levels[1:], start=1):  # nearest neighbour: IDs never averaged
                assert np.array_equal(level.asarray(), full[:: 2**n, :: 2**n])
            pixels = tif.ome_metadata.split("<Pixels ")[1].split(">")[0]
            assert 'PhysicalSizeX="0.25"' in pixels and 'PhysicalSizeY="0.5"' in pixels
    mask = tifffile.imread(tmp_path / "ome" / "scan_mask.ome.tif")
    assert np.array_equal(mask, model.predict(image, tile=32).mask * 255)
    labels = tifffile.imread(tmp_path / "ome" / "scan_labels.ome.tif")
    assert labels.dtype == np.uint16 and labels.max() == record["objects"][0] > 0


def test_a_stack_keeps_its_pages_at_every_level_and_uint32_labels(tmp_path: Path):
    levels = [
        zarr.array(np.arange(2 * 40 * 300, dtype=np.uint32).reshape(2, 40, 300) + 70000, chunks=(1, 16, 64))
    ]
    levels.append(zarr.array(np.asarray(levels[0][:, ::2, ::2]), chunks=(1, 16, 64)))
    path = write_ome_tiff(tmp_path / "s_labels.ome.tif", levels, 2, dtype=np.uint32)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome and tif.series[0].axes == "ZYX"
        assert [level.shape for level in tif.series[0].levels] == [(2, 40, 300), (2, 20, 150)]
        assert np.array_equal(tif.series[0].levels[1].asarray(), levels[1][:])
        assert np.array_equal(tif.series[0].asarray(), levels[0][:])
    again = write_ome_tiff(tmp_path / "s_labels.ome.tif", levels, 2, dtype=np.uint32)
    assert again.name == "s_labels_2.ome.tif"  # nothing overwritten


def test_pixel_size_of_tiff_and_ome_zarr_inputs(tmp_path: Path):
    tifffile.imwrite(
        tmp_path / "a.tif",
        np.zeros((8, 8), np.uint8),
        imagej=True,
        resolution=(4.0, 2.0),
        metadata={"unit": "um"},
    )
    assert input_pixel_size(tmp_path / "a.tif") == (0.5, 0.25, "micron")
    tifffile.imwrite(tmp_path / "b.tif", np.zeros((8, 8), np.uint8))
    assert input_pixel_size(tmp_path / "b.tif") is None
    group = zarr.open_group(tmp_path / "c.ome.zarr", mode="w", zarr_format=2)
    group.create_array("0", shape=(8, 8), dtype="uint8")
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [
                {"name": "y", "type": "space", "unit": "micrometer"},
                {"name": "x", "type": "space", "unit": "micrometer"},
            ],
            "datasets": [
                {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [0.3, 0.2]}]}
            ],
        }
    ]
    assert input_pixel_size(tmp_path / "c.ome.zarr") == (0.3, 0.2, "micron")
