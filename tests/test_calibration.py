"""Masks, labels and probabilities keep their input's hyperstack axes and calibration (ImageJ and
OME-TIFF); metadata that cannot be written is dropped with one warning and the mask still written."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from paulow import io
from paulow.api import Model, SegmentOptions, segment_file
from paulow.calibration import MetadataWarning


def _model() -> Model:
    """A 1x1 convolution: foreground where the normalised image is bright (no training needed)."""
    net = torch.nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        net.weight.fill_(20.0)
        net.bias.fill_(-10.0)
    meta = {
        "in_channels": 1,
        "classes": 1,
        "threshold": 0.5,
        "patch": 32,
        "min_size": 0,
        "normalisation": {"mode": "percentile", "low": 1.0, "high": 99.0},
    }
    return Model([net.eval()], meta)


def _tzyx() -> np.ndarray:
    data = np.zeros((2, 3, 32, 32), np.uint16)
    data[:, :, 8:20, 8:20] = 1000
    return data


def _segment(tmp_path, name: str, **opts) -> list:
    out = tmp_path / "out"
    result = segment_file(_model(), tmp_path / name, out, SegmentOptions(**opts))
    assert result.error is None
    return result.written


def test_imagej_tzyx_hyperstack_keeps_axes_spacing_interval_and_units(tmp_path):
    tifffile.imwrite(
        tmp_path / "movie.tif",
        _tzyx(),
        imagej=True,
        resolution=(4.0, 4.0),
        metadata={"axes": "TZYX", "spacing": 2.0, "finterval": 0.5, "unit": "micron"},
    )
    written = _segment(tmp_path, "movie.tif", save_prob=True, instances=True)
    assert [p.name for p in written] == ["movie_mask.tif", "movie_prob.tif", "movie_labels.tif"]
    for path in written:
        with tifffile.TiffFile(path) as tif:
            assert tif.series[0].axes == "TZYX" and tif.series[0].shape == (2, 3, 32, 32), path.name
            meta = tif.imagej_metadata
            assert (meta["spacing"], meta["finterval"], meta["unit"]) == (2.0, 0.5, "micron"), path.name
            assert tif.pages.first.resolution == (4.0, 4.0)
    mask = tifffile.imread(written[0])
    assert mask[1, 2, 10, 10] == 255 and mask[1, 2, 2, 2] == 0
    with tifffile.TiffFile(written[2]) as tif:  # labels carry a distinct-colour LUT
        lut = np.asarray(tif.imagej_metadata["LUTs"]).reshape(3, 256)
        assert lut.shape == (3, 256) and (lut[:, 0] == 0).all()
        assert len({tuple(c) for c in lut.T}) == 256


def test_time_series_stays_a_time_series(tmp_path):
    tifffile.imwrite(
        tmp_path / "t.tif",
        _tzyx()[:, 0],
        imagej=True,
        metadata={"axes": "TYX", "finterval": 3.0, "tunit": "min"},
    )
    (mask,) = _segment(tmp_path, "t.tif")
    with tifffile.TiffFile(mask) as tif:
        assert tif.series[0].axes == "TYX"
        assert (tif.imagej_metadata["finterval"], tif.imagej_metadata["tunit"]) == (3.0, "min")


def test_ome_tiff_in_gives_ome_metadata_out(tmp_path):
    tifffile.imwrite(
        tmp_path / "cells.ome.tif",
        _tzyx(),
        ome=True,
        metadata={
            "axes": "TZYX",
            "PhysicalSizeX": 0.25,
            "PhysicalSizeY": 0.25,
            "PhysicalSizeZ": 2.0,
            "TimeIncrement": 0.5,
            "TimeIncrementUnit": "s",
        },
    )
    (mask,) = _segment(tmp_path, "cells.ome.tif")
    with tifffile.TiffFile(mask) as tif:
        assert tif.is_ome and tif.series[0].axes == "TZYX"
        pixels = tif.ome_metadata
    for attribute in (
        'PhysicalSizeX="0.25"',
        'PhysicalSizeZ="2.0"',
        'TimeIncrement="0.5"',
        'PhysicalSizeXUnit="µm"',
    ):
        assert attribute in pixels
    back = io.read_image(mask)
    assert back.resolution == (4.0, 4.0) and back.calibration.spacing == 2.0


def test_angstrom_unit_is_written_as_nanometres_with_a_warning(tmp_path):
    tifffile.imwrite(
        tmp_path / "em.ome.tif",
        _tzyx()[0],
        ome=True,
        metadata={
            "axes": "ZYX",
            "PhysicalSizeX": 8.0,
            "PhysicalSizeXUnit": "Å",
            "PhysicalSizeY": 8.0,
            "PhysicalSizeYUnit": "Å",
            "PhysicalSizeZ": 40.0,
            "PhysicalSizeZUnit": "Å",
        },
    )
    stack = io.read_image(tmp_path / "em.ome.tif")
    stack.calibration = None  # as an ImageJ input would be: the description must stay ASCII
    with pytest.warns(MetadataWarning, match=r"'em_mask.tif': unit Å converted to nm"):
        io.write_mask(
            tmp_path / "em_mask.tif",
            np.zeros((3, 32, 32), np.uint8),
            resolution=stack.resolution,
            unit=stack.unit,
        )
    back = io.read_image(tmp_path / "em_mask.tif")
    assert back.unit == "nm" and back.resolution == pytest.approx((1.25, 1.25))  # 0.8 nm pixels


@pytest.mark.parametrize("size", [float("nan"), float("inf"), 5e-324])
def test_unusable_physical_sizes_are_dropped_and_the_mask_written(tmp_path, size):
    tifffile.imwrite(
        tmp_path / "bad.ome.tif",
        _tzyx()[0],
        ome=True,
        metadata={"axes": "ZYX", "PhysicalSizeX": size, "PhysicalSizeY": size, "PhysicalSizeZ": size},
    )
    with pytest.warns(MetadataWarning, match="'bad.ome_mask.tif': .*not a usable number"):
        (mask,) = _segment(tmp_path, "bad.ome.tif", instances=False)
    back = io.read_image(mask)
    assert back.data.shape == (3, 1, 32, 32) and back.resolution is None


def test_non_ascii_unit_in_an_imagej_description_is_dropped(tmp_path):
    with pytest.warns(MetadataWarning, match=r"'u.tif': unit 'µs' cannot be written in an ImageJ TIFF"):
        io.write_mask(tmp_path / "u.tif", np.zeros((8, 8), np.uint8), resolution=(2.0, 2.0), unit="µs")
    assert io.read_image(tmp_path / "u.tif").unit is None


def test_geojson_option_writes_one_qupath_detection_per_object_and_page(tmp_path):
    import json

    from shapely.geometry import shape

    tifffile.imwrite(tmp_path / "movie.tif", _tzyx(), imagej=True, metadata={"axes": "TZYX"})
    written = _segment(tmp_path, "movie.tif", instances=True, geojson=True)
    assert [p.name for p in written] == ["movie_mask.tif", "movie_labels.tif", "movie_objects.geojson"]
    labels = tifffile.imread(written[1]).reshape(6, 32, 32)
    features = json.loads(written[2].read_text(encoding="utf-8"))["features"]
    assert [f["geometry"]["plane"]["z"] for f in features] == list(range(6))  # one object per page
    for page, feature in enumerate(features):
        assert shape(feature["geometry"]).area == np.count_nonzero(labels[page]) == 144
        assert feature["properties"]["classification"]["name"] == "foreground"
        assert feature["properties"]["measurements"]["area_px"] == 144


def test_predict_command_in_process_keeps_a_tzyx_hyperstack(tmp_path):
    """The whole command (workspace, run record, clearing) on a TZYX hyperstack with calibration."""
    from paulow.checkpoint import save_checkpoint
    from paulow.cli import main
    from paulow.models import build_model
    from paulow.workspace import Workspace

    ws = Workspace(tmp_path)
    ws.setup()
    args = {"in_channels": 1, "classes": 1, "width": 4, "depth": 2}
    save_checkpoint(
        ws.models / "tiny.pth",
        [build_model("unet", **args).state_dict()],
        {
            "arch": "unet",
            "arch_args": args,
            "in_channels": 1,
            "classes": 1,
            "threshold": 0.5,
            "patch": 32,
            "normalisation": {"mode": "percentile", "low": 1.0, "high": 99.0},
        },
    )
    tifffile.imwrite(
        ws.use_inputs / "movie.tif",
        _tzyx(),
        imagej=True,
        resolution=(4.0, 4.0),
        metadata={"axes": "TZYX", "spacing": 2.0, "finterval": 0.5, "unit": "micron"},
    )
    assert (
        main(
            [
                "predict",
                "--root",
                str(tmp_path),
                "--model",
                "tiny",
                "--yes",
                "--save-prob",
                "--instances",
                "--geojson",
            ]
        )
        == 0
    )
    for name in ("movie_mask.tif", "movie_prob.tif", "movie_labels.tif"):
        with tifffile.TiffFile(ws.use_outputs / name) as tif:
            assert tif.series[0].axes == "TZYX" and tif.series[0].shape == (2, 3, 32, 32), name
            meta = tif.imagej_metadata
            assert (meta["spacing"], meta["finterval"], meta["unit"]) == (2.0, 0.5, "micron"), name
            assert tif.pages.first.resolution == (4.0, 4.0), name
    assert (ws.use_outputs / "movie_objects.geojson").is_file() and not (ws.use_inputs / "movie.tif").exists()
