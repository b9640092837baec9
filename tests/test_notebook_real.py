"""`paulow.evaluate(pred, truth)` on a real NIH3T3 image (../shared/data) with a boundary model's
prediction and the dataset's 0/255 truth: the call the README shows, which used to raise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA

from paulow.api import Model, evaluate
from paulow.io import read_image, read_mask

NIH = SHARED_DATA / "nih3t3_nuclei"
pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(not NIH.is_dir(), reason=f"{NIH} is absent (CI has it)"),
]


def _bright_is_object_boundary_model() -> Model:
    """A 1x1 convolution posing as a boundary model: P(background) falls as the image brightens."""
    net = torch.nn.Conv2d(1, 3, 1)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([-8.0, 8.0, 0.0]).view(3, 1, 1, 1))
        net.bias.copy_(torch.tensor([4.0, -4.0, 0.0]))
    meta = {
        "in_channels": 1,
        "classes": 3,
        "activation": "softmax",
        "boundary_target": 2,
        "threshold": 0.5,
        "patch": 128,
        "min_object_px": 0,
        "normalisation": {"mode": "percentile", "low": 1.0, "high": 99.8},
    }
    return Model([net.eval()], meta)


def test_evaluate_a_boundary_prediction_of_a_real_nih3t3_image_against_its_0_255_truth():
    image = read_image(NIH / "images" / "dna-0.png").data[0, 0]
    truth = read_mask(NIH / "masks" / "0.png")[0]
    assert image.shape == truth.shape == (1024, 1344) and set(np.unique(truth)) == {0, 255}
    (pred,) = _bright_is_object_boundary_model().predict([image], verbose=False)
    assert pred.boundary and pred.probabilities.shape == (3, 1024, 1344)
    scores = evaluate(pred, truth)
    found, real = pred.mask != 0, truth != 0
    assert scores["dice"] == pytest.approx(2 * np.count_nonzero(found & real) / (found.sum() + real.sum()))
    assert scores["object_n_pred"] == pred.labels().max() and scores["object_n_true"] > 10
    assert 0.0 <= scores["class_mean_dice"] <= 1.0 and "class_dice_boundary" in scores
