"""`use_model.py` (`paulow predict`) and `Model.predict` make their masks through one path: the mask
the command writes for a real microscopy image is the API's mask, byte for byte, and its labels are
`Prediction.labels()`."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

import paulow
from paulow import cli
from paulow.workspace import Workspace

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nih3t3_nuclei"


def _crop(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    return np.asarray(iio.imread(path))[256:384, 320:448]  # 128 x 128 px with several nuclei


TINY = {  # a tiny binary network: two short epochs, one fold
    "width": 4,
    "depth": 2,
    "patch": 64,
    "overlap": 32,
    "epochs": 2,
    "per_epoch": 8,
    "batch_size": 4,
    "folds": 1,
    "test_fraction": 0.0,
    "panel_every": 1000,
    "boundary_target": 0,
}


@pytest.mark.skipif(
    not DATA.is_dir(), reason=f"real data not here ({DATA}): the shared data folder is absent"
)
def test_use_model_writes_the_masks_model_predict_makes(tmp_path, capsys):
    image, truth = _crop(DATA / "images" / "dna-0.png"), _crop(DATA / "masks" / "0.png")
    assert truth.any() and not truth.all()  # the crop has nuclei and background to learn
    model = paulow.train(image, (truth > 0).astype(np.uint8), time_limit=0, verbose=False, **TINY)
    ws = Workspace(tmp_path / "ws")
    ws.setup()
    source = DATA / "images" / "dna-1.png"
    # two epochs learn little: a threshold at the median of a crop's probabilities gives a mask with
    # objects and background, and a smallest object of 100 px (as training tunes it) drops the specks
    probs = model.predict(np.asarray(_crop(source)), verbose=False).probabilities
    model.threshold = float(np.median(probs))
    model.meta["min_object_px"] = 100
    model.save(ws.models / "tiny.pth")
    shutil.copy(source, ws.use_inputs / source.name)

    args = ["--root", str(ws.root), "--model", "tiny", "--yes", "--tile", "1024", "--instances"]
    code = cli.main(["predict", *args])
    assert code == 0, capsys.readouterr()
    written = tifffile.imread(ws.use_outputs / "dna-1_mask.tif")
    # after the command: the same CPU threads (it chose them), so the same float sums near the threshold
    pred = paulow.load_model(ws.models / "tiny.pth").predict(source, tile=1024, verbose=False)
    expected = pred.mask
    assert written.shape == expected.shape == (1024, 1344) and written.dtype == np.uint8
    assert 0.2 < np.count_nonzero(expected) / expected.size < 0.8
    assert written.tobytes() == np.where(expected != 0, 255, 0).astype(np.uint8).tobytes()
    labels = tifffile.imread(ws.use_outputs / "dna-1_labels.tif")
    assert labels.max() > 10 and np.array_equal(labels.astype(np.int64), pred.labels())  # the same objects
    assert list(ws.use_inputs.iterdir()) == []  # consumed once its mask was verified
