"""The bioimage.io package, run blockwise by bioimageio.core on a whole real NIH3T3 image, gives the
mask `use_model.py` gives for the same model (Dice >= 0.98): the declared tile and halo, `binarize`
at the model's threshold and the post-processing attachment reproduce the toolkit."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

NIH3T3 = Path(__file__).resolve().parents[2] / "shared" / "data" / "nih3t3_nuclei"

pytestmark = [pytest.mark.slow, pytest.mark.shared_data,
              pytest.mark.skipif(not NIH3T3.is_dir(), reason=f"{NIH3T3} is absent (CI has it)")]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return 2.0 * int((a & b).sum()) / (int(a.sum()) + int(b.sum()))


def _load(module_path: Path, name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, module_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_package_blockwise_prediction_matches_the_toolkit_on_a_whole_nih3t3_image(tmp_path):
    import torch

    import paulow
    from paulow.bioimageio_package import package_halo, package_tile, predict_blockwise
    from paulow.io import read_image, read_mask

    torch.manual_seed(0)
    raw = read_image(NIH3T3 / "images" / "dna-0.png").data[0]
    truth = read_mask(NIH3T3 / "masks" / "0.png")[0]
    crop = (slice(256, 640), slice(256, 640))  # a quick model: one 384 x 384 piece, two epochs
    model = paulow.train([raw[:, crop[0], crop[1]]], [truth[crop]], time_limit=0, epochs=2, width=4,
                         patch=64, overlap=32, folds=1, test_fraction=0.0, per_epoch=0, batch_size=8, seed=0)
    example = raw[:, :512, :512]  # the training image gives the cover and the test tensors
    package = model.export("bioimageio", tmp_path, name="nih3t3", example=example)[0]

    whole = read_image(NIH3T3 / "images" / "dna-1.png").data[0]  # 1024 x 1344, not seen in training
    expected = model.predict(whole)  # what use_model.py writes for this model
    assert 0.03 < expected.mask.mean() < 0.6, expected.mask.mean()  # a non-trivial mask
    out = predict_blockwise(package, whole)
    assert out["probabilities"].shape == expected.probabilities.shape
    assert _dice(out["foreground"][0], expected.mask) >= 0.98  # binarize at the declared threshold

    with zipfile.ZipFile(package) as archive:
        archive.extractall(tmp_path / "unpacked")
    unpacked = tmp_path / "unpacked"
    params = json.loads((unpacked / "postprocess.json").read_text())
    consumer = _load(unpacked / "paulow_postprocess.py", "paulow_postprocess_under_test")
    mask = consumer.mask_from_probabilities(out["probabilities"], params)
    assert _dice(mask, expected.mask) >= 0.98
    assert params["threshold"] == pytest.approx(model.threshold)

    tile = package_tile(model.meta)
    assert tile == 256 and package_halo(tile, 8) == 64
    test_input = np.load(unpacked / "test_input.npy")
    assert test_input.shape == (1, 1, tile, tile)
    windows = [example[0, y:y + tile, x:x + tile] for y in range(0, 257, 64) for x in range(0, 257, 64)]
    assert any(np.array_equal(w.astype(np.float32), test_input[0, 0]) for w in windows)  # real pixels
