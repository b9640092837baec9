"""Volumes end to end: a NIfTI CT-like volume through train -> segment -> evaluate (API, with a HU
window and 2.5-D context), and a NIfTI volume and a DICOM series through use_model.py --instances."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np
import pytest
from _volumes import affine, write_nii, write_series
from _workflow import files, run_script

import paulow
import paulow.volumes
from paulow.synthetic import ellipsoid_volume

TINY = {
    "width": 4,
    "depth": 2,
    "patch": 32,
    "overlap": 16,
    "epochs": 2,
    "per_epoch": 8,
    "batch_size": 4,
    "folds": 1,
    "test_fraction": 0.0,
    "panel_every": 1000,
    "boundary_target": 0,
}


def _ct(seed: int = 0, shape=(6, 48, 48)) -> tuple[np.ndarray, np.ndarray]:
    """(Z, H, W) int16 HU volume (objects ~ +80 HU on -100 HU) and its labels."""
    image, labels = ellipsoid_volume(shape, n=3, seed=seed, radii=(6.0, 9.0), z_radius=2.5)
    return (image.astype(np.int16) - 120).astype(np.int16), labels


@pytest.mark.slow
def test_nifti_and_dicom_volumes_train_segment_and_evaluate(tmp_path, capsys):
    from paulow.api import SegmentOptions, load_model, segment_file
    from paulow.cli import main

    (hu, labels), (hu2, labels2) = _ct(0), _ct(1)
    truth = tmp_path / "truth"
    truth.mkdir()
    image = write_nii(tmp_path / "case1.nii.gz", hu.transpose(2, 1, 0), affine())
    mask = write_nii(truth / "case1_mask.nii.gz", (labels > 0).astype(np.uint8).transpose(2, 1, 0), affine())
    write_series(tmp_path / "series1", hu2, intercept=-1024)
    series_grid = paulow.volumes.geometry_of_file(tmp_path / "series1")
    series_mask = paulow.volumes.write_nifti(
        truth / "series1_mask.nii.gz", (labels2 > 0).astype(np.uint8), series_grid
    )
    model = paulow.train(
        [image, tmp_path / "series1"],
        [mask, series_mask],
        time_limit=0,
        window="ct-soft-tissue",
        context=1,
        **TINY,
    )
    assert model.meta["normalisation"] == {"method": "window", "low": -160.0, "high": 240.0}
    assert model.meta["context"] == 1 and model.in_channels == 3  # sections z-1, z, z+1
    saved = paulow.load_model(model.save(tmp_path / "ct.pth"))
    assert saved.meta["normalisation"] == model.meta["normalisation"]
    preds = saved.predict_stack(image)
    assert len(preds) == 6 and preds[0].mask.shape == (48, 48)
    with pytest.raises(paulow.errors.ModelError, match="trained with --context 1"):
        saved.predict(hu[0])
    # the command's writer puts each mask on its input's grid
    out = tmp_path / "out"
    loaded = load_model(tmp_path / "ct.pth")
    for source in (image, tmp_path / "series1"):
        segment_file(loaded, source, out, SegmentOptions())
    written = nib.load(str(out / "case1_mask.nii.gz"))
    np.testing.assert_allclose(written.affine, affine())
    predicted = np.asarray(written.dataobj).transpose(2, 1, 0) > 0
    np.testing.assert_array_equal(predicted, np.stack([p.mask for p in preds]) > 0)
    from_series = nib.load(str(out / "series1_mask.nii.gz"))
    np.testing.assert_allclose(from_series.affine, series_grid.affine)
    # paulow evaluate pairs the NIfTI predictions with the NIfTI truths: pooled Dice by hand
    predicted2 = np.asarray(from_series.dataobj).transpose(2, 1, 0) > 0
    pred_all = np.concatenate([predicted, predicted2])
    truth_all = np.concatenate([labels, labels2]) > 0
    dice = 2 * np.sum(pred_all & truth_all) / (pred_all.sum() + truth_all.sum())
    assert (
        main(["evaluate", "--pred", str(out), "--truth", str(truth), "--out", str(tmp_path / "scores")]) == 0
    )
    saved_scores = json.loads((tmp_path / "scores" / "metrics.json").read_text())[str(out)]
    assert saved_scores["pooled"]["dice"] == pytest.approx(dice)


@pytest.mark.slow
def test_use_model_writes_nifti_outputs_and_3d_objects_for_nifti_and_dicom(workspace_with_model):
    ws = workspace_with_model
    image, _ = ellipsoid_volume((5, 48, 48), n=3, seed=2, radii=(6.0, 8.0), z_radius=2.0)
    write_nii(ws.use_inputs / "vol.nii.gz", image.transpose(2, 1, 0).astype(np.uint8), affine())
    write_series(ws.use_inputs / "series1", image.astype(np.int16), intercept=0)
    done = run_script("use_model.py", "--root", str(ws.root), "--model", "t", "--yes", "--instances")
    assert done.returncode == 0, done.stdout + done.stderr
    out = set(files(ws.use_outputs))
    assert {
        "vol_mask.nii.gz",
        "vol_labels.nii.gz",
        "series1_mask.nii.gz",
        "series1_labels.nii.gz",
        "objects.csv",
        "summary.csv",
    } <= out
    nifti = nib.load(str(ws.use_outputs / "vol_labels.nii.gz"))
    np.testing.assert_allclose(nifti.affine, affine())
    assert nifti.shape == (48, 48, 5)
    dicom = nib.load(str(ws.use_outputs / "series1_mask.nii.gz"))
    assert dicom.header.get_zooms() == pytest.approx((0.6, 0.5, 2.0)) and dicom.shape == (48, 48, 5)
    with open(ws.use_outputs / "objects.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    vol_rows = [r for r in rows if r["file"] == "vol.nii.gz"]
    assert len(vol_rows) == int(np.asarray(nifti.dataobj).max())  # one row per 3-D object
    assert all(r["volume_unit"] == "mm^3" for r in rows)
    first = vol_rows[0]
    assert float(first["volume"]) == pytest.approx(int(first["voxels"]) * 0.8 * 0.7 * 2.5)
    # the NIfTI file was cleared after its outputs were verified; the DICOM folder is kept
    assert files(ws.use_inputs) == ["series1"]
