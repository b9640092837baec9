"""`use_model.py` on an image too large to hold: the chunked engine underneath, the drop folder's
names, run record and clearing on top, and the same mask as the whole-image path."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from paulow import io
from paulow.api import load_model
from paulow.checkpoint import save_checkpoint
from paulow.cli import main
from paulow.models import build_model
from paulow.synthetic import nuclei_image
from paulow.workspace import Workspace

ARGS = {"in_channels": 1, "classes": 1, "width": 4, "depth": 2}
OPTIONS = ["--model", "tiny", "--yes", "--tile", "32", "--instances"]


def _workspace(root: Path, image: np.ndarray) -> Workspace:
    ws = Workspace(root)
    ws.setup()
    torch.manual_seed(0)
    meta = {
        "arch": "unet",
        "arch_args": ARGS,
        "in_channels": 1,
        "classes": 1,
        "threshold": 0.5,
        "patch": 32,
        "min_size": 0,
        "normalisation": {"method": "percentile", "low": 1.0, "high": 99.8},
    }
    weights = [build_model("unet", **ARGS).eval().state_dict()]
    save_checkpoint(ws.models / "tiny.pth", weights, meta)
    # a random network's probabilities sit near one value: the threshold that makes objects of it
    probs = load_model(ws.models / "tiny.pth").predict(image, tile=32).probabilities
    save_checkpoint(ws.models / "tiny.pth", weights, {**meta, "threshold": float(np.quantile(probs, 0.8))})
    tifffile.imwrite(
        ws.use_inputs / "scan.tif", image, tile=(64, 64), resolution=(2.0, 2.0), resolutionunit="CENTIMETER"
    )
    return ws


@pytest.fixture
def image() -> np.ndarray:
    picture, _ = nuclei_image((200, 180), seed=3)
    return picture


@pytest.fixture
def engine(monkeypatch):
    """Every TIFF counts as too large to hold; chunks of 48 px so objects cross seams."""
    import paulow.chunked_run as chunked_run

    monkeypatch.setattr(chunked_run, "LARGE_IMAGE_BYTES", 1000)
    monkeypatch.setattr(chunked_run, "default_chunk", lambda *a: 48)
    cleared_after: list[list[str]] = []  # the results present when the inputs were cleared
    import paulow.workspace as workspace

    clear = workspace.clear_inputs

    def spy(expected):
        for source in expected:  # Use_Model/INPUT_IMAGES/scan.tif -> Use_Model/OUTPUT_MASKS
            results = source.parent.parent / "OUTPUT_MASKS"
            cleared_after.append(sorted(p.name for p in results.glob("scan_*.tif") if p.stat().st_size))
        return clear(expected)

    import paulow.commands.common as common

    monkeypatch.setattr(common, "clear_inputs", spy)  # where the commands look it up
    return cleared_after


def test_a_large_image_gives_the_whole_image_paths_outputs(tmp_path: Path, image: np.ndarray, engine):
    import paulow.chunked_run as chunked_run

    whole = _workspace(tmp_path / "whole", image)
    with pytest.MonkeyPatch.context() as undo:  # the whole-image path for the reference
        undo.setattr(chunked_run, "LARGE_IMAGE_BYTES", 1 << 40)
        assert main(["predict", "--root", str(whole.root), *OPTIONS]) == 0
    chunked = _workspace(tmp_path / "chunked", image)
    assert main(["predict", "--root", str(chunked.root), *OPTIONS]) == 0
    for ws in (whole, chunked):
        assert sorted(p.name for p in ws.use_outputs.iterdir()) == [
            "objects.csv",
            "runs",
            "scan_labels.tif",
            "scan_mask.tif",
            "summary.csv",
        ]
        assert list(ws.use_inputs.iterdir()) == []  # cleared
    assert engine[-1] == ["scan_labels.tif", "scan_mask.tif"]  # written before the input was cleared
    for ws, tiled in ((whole, False), (chunked, True)):  # the engine writes tiled TIFFs
        with tifffile.TiffFile(ws.use_outputs / "scan_mask.tif") as tif:
            assert tif.pages.first.is_tiled == tiled
    mask = io.read_mask(chunked.use_outputs / "scan_mask.tif")
    expected = io.read_mask(whole.use_outputs / "scan_mask.tif")
    assert np.array_equal(mask, expected) and 0 < np.count_nonzero(mask) < mask.size
    labels = io.read_mask(chunked.use_outputs / "scan_labels.tif")[0]
    reference = io.read_mask(whole.use_outputs / "scan_labels.tif")[0]
    pairs = {(int(a), int(b)) for a, b in zip(labels[labels > 0], reference[reference > 0])}
    assert len(pairs) == labels.max() == reference.max() > 1  # one object for one object
    stack = io.read_image(chunked.use_outputs / "scan_mask.tif")
    assert stack.unit == "cm" and stack.resolution == (2.0, 2.0)  # the input's pixel size
    rows = [list(csv.DictReader(open(ws.use_outputs / "objects.csv"))) for ws in (whole, chunked)]
    assert len(rows[0]) == len(rows[1]) and rows[1][0]["file"] == "scan.tif"
    assert sorted(int(r["area_px"]) for r in rows[0]) == sorted(int(r["area_px"]) for r in rows[1])
    (record,) = (chunked.use_outputs / "runs").iterdir()
    files = json.loads(record.read_text())["files"]
    assert files[0]["outputs"] == ["scan_mask.tif", "scan_labels.tif"] and files[0]["error"] is None
    assert files[0]["chunked"]["chunk"] == 48 and files[0]["chunked"]["chunking"]["grid"] == [5, 4]
    assert files[0]["chunked"]["normalisation"][0]["from"] == "whole page"
    assert not (chunked.use_outputs / ".paulow-chunked" / "scan").exists()  # work folder removed


def test_refused_large_images_are_one_line_each_and_kept(
    tmp_path: Path, image: np.ndarray, engine, capsys, monkeypatch
):
    from paulow import lazy

    ws = _workspace(tmp_path, image)
    tifffile.imwrite(ws.use_inputs / "flat.tif", image, rowsperstrip=200)
    monkeypatch.setattr(lazy, "UNTILED_LIMIT_BYTES", 1000)
    assert main(["predict", "--root", str(ws.root), *OPTIONS, "--overlay"]) == 1
    err = capsys.readouterr().err
    assert "error: scan.tif: too large to hold in memory" in err and "--overlay" in err
    assert "error: flat.tif: an untiled TIFF page of 0.0 GiB cannot be read in pieces - convert" in err
    assert sorted(p.name for p in ws.use_inputs.iterdir()) == ["flat.tif", "scan.tif"]
    assert not list(ws.use_outputs.glob("*.tif"))
