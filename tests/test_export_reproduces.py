"""The bioimage.io package against `use_model.py` on real NIH3T3 images, run by bioimageio.core as a
consumer would (declared tile, pre- and post-processing, the post-processing attachment).

The network's output depends on the tile it sees (GroupNorm), so the package carries the toolkit's
tiling (overlapping tiles blended with Gaussian weights, `paulow.package_blend`): a whole image given
to bioimageio.core at once gives the toolkit's probabilities and masks."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

NIH3T3 = Path(__file__).resolve().parents[2] / "shared" / "data" / "nih3t3_nuclei"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.shared_data,
    pytest.mark.skipif(not NIH3T3.is_dir(), reason=f"{NIH3T3} is absent (CI has it)"),
]


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return 2.0 * int((a & b).sum()) / (int(a.sum()) + int(b.sum()))


def _consumer(package: Path, folder: Path):
    """The package's `paulow_postprocess.py` (imported from the unpacked zip, not from PAULow) and
    its `postprocess.json`."""
    import importlib.util

    with zipfile.ZipFile(package) as archive:
        archive.extractall(folder)
    spec = importlib.util.spec_from_file_location(
        "paulow_postprocess_under_test", folder / "paulow_postprocess.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, json.loads((folder / "postprocess.json").read_text())


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A quick model (one 384 x 384 piece of dna-0, two epochs, width 4, seed 0) and its package,
    with dna-0 as the example image."""
    import torch

    import paulow
    from paulow.io import read_image, read_mask

    torch.manual_seed(0)
    raw = read_image(NIH3T3 / "images" / "dna-0.png").data[0]
    truth = read_mask(NIH3T3 / "masks" / "0.png")[0]
    crop = (slice(256, 640), slice(256, 640))
    model = paulow.train(
        [raw[:, crop[0], crop[1]]],
        [truth[crop]],
        time_limit=0,
        epochs=2,
        width=4,
        patch=64,
        overlap=32,
        folds=1,
        test_fraction=0.0,
        per_epoch=0,
        batch_size=8,
        seed=0,
    )
    example = raw[:, :512, :512]
    folder = tmp_path_factory.mktemp("export_nih3t3")
    package = model.export("bioimageio", folder, name="nih3t3", example=example)[0]
    return model, package, example, folder


def test_on_one_tile_the_package_equals_the_toolkit(exported):
    from paulow.bioimageio_package import package_tile, predict_package
    from paulow.io import read_image

    model, package, example, folder = exported
    tile = package_tile(model.meta)
    assert tile == 256
    image = read_image(NIH3T3 / "images" / "dna-1.png").data[0][:, 384 : 384 + tile, 512 : 512 + tile]
    expected = model.predict(image)
    assert 0.03 < expected.mask.mean() < 0.7, expected.mask.mean()  # a non-trivial mask
    out = predict_package(package, image)
    assert np.abs(out["probabilities"] - expected.probabilities).max() < 1e-3
    consumer, params = _consumer(package, folder / "unpacked")
    assert params["threshold"] == pytest.approx(model.threshold)
    assert _dice(consumer.mask_from_probabilities(out["probabilities"], params), expected.mask) > 0.999
    assert _dice(out["foreground"][0], expected.mask) > 0.99  # binarize: the mask before the size filter
    test_input = np.load(folder / "unpacked" / "test_input.npy")
    assert test_input.shape == (1, 1, tile, tile)  # real pixels of the example, not noise
    windows = [example[0, y : y + tile, x : x + tile] for y in range(0, 257, 64) for x in range(0, 257, 64)]
    assert any(np.array_equal(w.astype(np.float32), test_input[0, 0]) for w in windows)


def test_on_a_whole_image_the_package_matches_the_toolkit(exported):
    from paulow.bioimageio_package import predict_package
    from paulow.io import read_image

    model, package, _, folder = exported
    whole = read_image(NIH3T3 / "images" / "dna-1.png").data[0]  # 1024 x 1344, not seen in training
    expected = model.predict(whole)
    assert 0.03 < expected.mask.mean() < 0.7, expected.mask.mean()
    consumer, params = _consumer(package, folder / "unpacked_whole")
    out = predict_package(package, whole)
    assert out["probabilities"].shape == expected.probabilities.shape
    # 0.0015 measured on a 6-minute model (docs/export.md): bioimageio.core normalises by itself
    assert np.abs(out["probabilities"] - expected.probabilities).max() < 5e-3
    assert _dice(consumer.mask_from_probabilities(out["probabilities"], params), expected.mask) >= 0.98
