"""`paulow predict --input ... --output ...`: chunked runs from the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
import zarr

from paulow.api import load_model
from paulow.cli import main


def saved_model(folder: Path) -> Path:
    """A real model file of an untrained width-8 attention U-Net (a tiny random network)."""
    from paulow.checkpoint import save_checkpoint
    from paulow.models import build_model
    from paulow.normalisation import NORMALISATION

    args = {"in_channels": 1, "classes": 1, "width": 8, "depth": 2}
    net = build_model("paulow_attention_unet", **args)
    meta = {
        "arch": "paulow_attention_unet",
        "arch_args": args,
        "in_channels": 1,
        "classes": 1,
        "normalisation": dict(NORMALISATION),
        "threshold": 0.5,
        "patch": 32,
        "overlap": 0.5,
        "name": "tiny",
    }
    return save_checkpoint(folder / "Use_Model" / "saved_models" / "tiny.pth", [net.state_dict()], meta)


def ome_zarr_input(path: Path, image: np.ndarray) -> Path:
    """A one-level NGFF 0.4 image (y, x), as other tools write it."""
    group = zarr.open_group(path, mode="w", zarr_format=2)
    group.create_array("0", data=image, chunks=(64, 64))
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
            "datasets": [
                {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0]}]}
            ],
        }
    ]
    return path


def test_predict_input_ome_zarr_needs_no_other_option(tmp_path: Path, capsys):
    model_file = saved_model(tmp_path)
    image = (np.random.default_rng(0).random((100, 90)) * 4000).astype(np.uint16)
    big = ome_zarr_input(tmp_path / "big.ome.zarr", image)
    code = main(["predict", "--root", str(tmp_path), "--input", str(big), "--output", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    got = zarr.open_group(tmp_path / "out" / "big.ome.zarr", mode="r")
    expected = load_model(model_file).predict(image)  # the same tile (256 px on a CPU): one whole-image run
    assert np.array_equal(got["labels/mask/0"][:], expected.mask)
    assert big.exists() and np.array_equal(zarr.open_array(big / "0", mode="r")[:], image)  # input untouched
    assert "big.ome.zarr: wrote big.ome.zarr" in capsys.readouterr().out


def test_predict_a_folder_to_tiff_and_a_bad_file_is_one_line(tmp_path: Path, capsys):
    model_file = saved_model(tmp_path)
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", np.arange(80 * 70, dtype=np.uint16).reshape(80, 70))
    (folder / "b.tif").write_bytes(b"not a tiff")
    code = main(
        [
            "predict",
            "--input",
            str(folder),
            "--output",
            str(tmp_path / "out"),
            "--model",
            str(model_file),
            "--scheduler",
            "sync",
            "--tile",
            "32",
            "--chunk",
            "32",
        ]
    )
    err = [line for line in capsys.readouterr().err.splitlines() if line and "chunk/s" not in line]  # no bars
    assert code == 1 and len(err) == 1
    assert err[0].startswith(f"error: {folder / 'b.tif'}: not a readable TIFF (") and err[0].endswith(
        "- check the file"
    )
    assert tifffile.imread(tmp_path / "out" / "a_mask.tif").shape == (80, 70)
    assert (folder / "a.tif").exists() and (folder / "b.tif").exists()  # inputs are never cleared


def test_halo_reaches_a_boundary_models_run_and_labels_equal_the_whole_image(tmp_path: Path, capsys):
    import json

    import torch

    from paulow.checkpoint import save_checkpoint
    from paulow.models import build_model
    from paulow.normalisation import NORMALISATION

    args = {"in_channels": 1, "classes": 3, "width": 8, "depth": 2}
    meta = {
        "arch": "paulow_attention_unet",
        "arch_args": args,
        "in_channels": 1,
        "classes": 3,
        "activation": "softmax",
        "boundary_target": 2,
        "class_names": ["background", "interior", "boundary"],
        "normalisation": dict(NORMALISATION),
        "threshold": 0.5,
        "patch": 32,
        "overlap": 0.5,
        "largest_object_px": 10,
    }
    torch.manual_seed(0)
    net = build_model("paulow_attention_unet", **args)
    model_file = save_checkpoint(tmp_path / "cells.pth", [net.state_dict()], meta)
    image = (np.random.default_rng(1).random((80, 70)) * 4000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "a.tif", image)
    out = tmp_path / "out"
    common = ["predict", "--model", str(model_file), "--scheduler", "sync", "--tile", "32", "--chunk", "32"]
    code = main([*common, "--input", str(tmp_path / "a.tif"), "--output", str(out), "--halo", "80"])
    assert code == 0, capsys.readouterr().err
    record = json.loads((out / "a.paulow-run.json").read_text())
    assert record["settings"]["halo"] == 80 and record["settings"]["mode"] == "boundary"
    expected = load_model(model_file).predict(image, tile=32).labels()
    assert np.array_equal(tifffile.imread(out / "a_labels.tif"), expected)
    assert record["objects"] == [expected.max()] and expected.max() > 10 and "warnings" not in record
    capsys.readouterr()
    assert (
        main([*common, "--input", str(tmp_path / "a.tif"), "--output", str(tmp_path / "o2"), "--halo", "2"])
        == 0
    )
    (warning,) = json.loads((tmp_path / "o2" / "a.paulow-run.json").read_text())["warnings"]
    assert warning.startswith("a.tif: objects reach the edge of the read region of ")
    assert f"WARNING: {warning}" in capsys.readouterr().err  # on the console too
