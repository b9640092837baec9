"""Sparse labels (the napari correction loop's strokes): unlabelled pixels take no part in the losses,
the patch sampling, the scores or the boundary target; dense labels give today's results."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import paulow
import paulow.api
from paulow.boundaries import BACKGROUND, BOUNDARY, INTERIOR, labelled_for_boundaries
from paulow.errors import ShapeMismatchError
from paulow.loss_components import LOSS_NAMES
from paulow.losses import build_loss, loss_from_probabilities
from paulow.patches import PatchDataset
from paulow.scoring import page_counts, score_probabilities
from paulow.slices import Slice
from paulow.synthetic import nuclei_image

S = 1e-6  # the losses' smooth term
LN3 = math.log(3.0)  # sigmoid(ln 3) = 0.75, sigmoid(-ln 3) = 0.25

# 4 x 4 by hand: columns 0-1 predicted at p = 0.75, columns 2-3 at p = 0.25; the object is the
# top-left 2 x 2 square; rows 0-1 are labelled (4 object pixels, 4 background pixels), rows 2-3 not.
LOGITS = torch.tensor([[LN3, LN3, -LN3, -LN3]] * 4)[None, None]
TARGET = torch.zeros(1, 1, 4, 4)
TARGET[0, 0, :2, :2] = 1
ROWS_01 = torch.zeros(1, 4, 4)
ROWS_01[0, :2] = 1


def _loss(name: str, valid: torch.Tensor | None, logits=LOGITS, target=TARGET) -> float:
    return float(build_loss(name)(logits, target, None, valid))


def test_losses_on_the_labelled_pixels_by_hand():
    # every labelled pixel is right at p = 0.75: BCE -ln 0.75 each
    assert _loss("bce", ROWS_01) == pytest.approx(-math.log(0.75), abs=1e-6)
    # dense: rows 2-3 add 4 background pixels at p = 0.75 (-ln 0.25) and 4 at p = 0.25 (-ln 0.75)
    assert _loss("bce", None) == pytest.approx((12 * -math.log(0.75) + 4 * -math.log(0.25)) / 16, abs=1e-6)
    # TP = 4 x 0.75, FP = 4 x 0.25, FN = 4 x 0.25 on the labelled pixels
    tversky = (3 + S) / (3 + 0.7 * 1 + 0.3 * 1 + S)
    assert _loss("tversky", ROWS_01) == pytest.approx(1 - tversky, abs=1e-6)
    assert _loss("focal_tversky", ROWS_01) == pytest.approx((1 - tversky) ** 0.75, abs=1e-6)
    assert _loss("dice", ROWS_01) == pytest.approx(1 - (6 + S) / (6 + 1 + 1 + S), abs=1e-6)
    # dense: FP gains rows 2-3 (4 x 0.75 + 4 x 0.25 = 4), so Tversky is 3 / 6.8
    assert _loss("tversky", None) == pytest.approx(1 - (3 + S) / (3 + 0.7 * 5 + 0.3 + S), abs=1e-6)
    focal = [0.25, 0.25]  # p_true 0.75 everywhere labelled: (1 - 0.75)^2 (-ln 0.75)
    assert _loss("focal", ROWS_01) == pytest.approx(focal[0] ** 2 * -math.log(0.75), abs=1e-6)


def test_the_dynamic_regime_is_the_foreground_share_of_the_labelled_pixels():
    loss = build_loss("dynamic")
    # rows 0-1: half the labelled pixels predicted as foreground (>= 6.25 %): Tversky + Focal Tversky
    tversky = 1 - (3 + S) / (4 + S)
    assert float(loss(LOGITS, TARGET, None, ROWS_01)) == pytest.approx(tversky + tversky**0.75, abs=1e-6)
    assert loss.last_regimes.tolist() == [2]
    # columns 2-3 labelled only: none predicted as foreground there, so "no foreground": BCE alone,
    # although half of the whole patch is predicted as foreground
    right = torch.zeros(1, 4, 4)
    right[0, :, 2:] = 1
    assert float(loss(LOGITS, TARGET, None, right)) == pytest.approx(-math.log(0.75), abs=1e-6)
    assert loss.last_regimes.tolist() == [0]
    loss(LOGITS, TARGET)
    assert loss.last_regimes.tolist() == [2]  # dense: 8 of 16 pixels


def test_multiclass_cross_entropy_on_the_labelled_pixels_by_hand():
    logits = torch.cat([torch.zeros_like(LOGITS), LOGITS], dim=1)  # softmax P(class 1) = 0.75 / 0.25
    target = torch.cat([1 - TARGET, TARGET], dim=1)
    assert _loss("ce", ROWS_01, logits, target) == pytest.approx(-math.log(0.75), abs=1e-6)


@pytest.mark.parametrize("classes", [1, 3])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_an_all_true_mask_gives_the_dense_loss_and_unlabelled_pixels_change_nothing(name, classes):
    gen = torch.Generator().manual_seed(7)
    logits = torch.randn(3, classes, 8, 8, generator=gen) * 3
    if classes == 1:
        target = (torch.rand(3, 1, 8, 8, generator=gen) > 0.6).float()
    else:
        target = torch.nn.functional.one_hot(torch.randint(0, classes, (3, 8, 8), generator=gen), classes)
        target = target.permute(0, 3, 1, 2).float()
    weight = 1 + torch.rand(3, 8, 8, generator=gen)
    loss = build_loss(name)
    for w in (None, weight):
        dense = float(loss(logits, target, w))
        assert float(loss(logits, target, w, torch.ones(3, 8, 8, dtype=torch.bool))) == pytest.approx(
            dense, abs=1e-7
        )
    valid = torch.rand(3, 8, 8, generator=gen) > 0.5
    other = torch.where(valid[:, None], target, target.flip(1) if classes > 1 else 1 - target)
    noise = torch.where(valid[:, None], logits, torch.randn(3, classes, 8, 8, generator=gen) * 5)
    value = float(loss(logits, target, None, valid))
    assert float(loss(noise.requires_grad_(), other, None, valid)) == pytest.approx(value, abs=1e-6)
    loss(noise, other, None, valid).backward()
    assert torch.all(noise.grad[~valid[:, None].expand_as(noise)] == 0)  # no gradient where unlabelled


def test_validation_loss_counts_the_labelled_pixels():
    probs = [torch.sigmoid(LOGITS[0]).numpy()]
    target = [TARGET[0].numpy()]
    value = loss_from_probabilities(build_loss("bce"), probs, target, [ROWS_01[0].numpy() > 0])
    assert value == pytest.approx(-math.log(0.75), abs=1e-5)


def test_scores_count_the_labelled_pixels_only():
    prob = torch.sigmoid(LOGITS[0]).numpy()  # predicted: columns 0-1
    truth = TARGET[0, 0].numpy()
    rows = ROWS_01[0].numpy() > 0
    assert page_counts(prob, truth, 0.5, 0, rows).tolist() == [[4, 0, 0]]
    assert page_counts(prob, truth).tolist() == [[4, 4, 0]]  # dense: rows 2-3 are false positives
    assert score_probabilities([prob], [truth], valid=[rows])["dice"] == 1.0
    assert score_probabilities([prob], [truth], valid=[None])["dice"] == pytest.approx(8 / 12)
    classes = np.concatenate([1 - prob, prob])  # K = 2 argmax: the same counts per class
    per_class = page_counts(classes, truth.astype(np.uint8), valid=rows)
    assert per_class.tolist() == [[4, 0, 0], [4, 0, 0]]


def test_patches_without_a_labelled_pixel_are_never_drawn():
    image, mask = nuclei_image(size=(64, 64), seed=3)
    labelled = np.zeros((64, 64), bool)
    labelled[40:44, 5:20] = True  # one stroke
    stroke = Slice(
        image[None].astype(np.float32), (mask > 0).astype(np.uint8), Path("a"), 0, labelled=labelled
    )
    data = PatchDataset([stroke], patch=16, overlap=8, random_fraction=1.0, seed=1)
    assert data.grid and all(labelled[y : y + 16, x : x + 16].any() for _, y, x in data.grid)
    assert len(data.grid) < 7 * 7  # the full grid of 16 px patches every 8 px has 49
    for epoch in range(3):
        data.reshuffle(epoch)
        assert all(labelled[y : y + 16, x : x + 16].any() for _, y, x in data.positions)
    image_t, target, plane = data[0]
    _, y, x = data.positions[0]
    assert target.shape == (1, *plane.shape) and plane.dtype == torch.float32
    assert data.planes([plane]) == (None, plane)
    dense = PatchDataset([Slice(stroke.image, stroke.mask, Path("a"), 0)], 16, 8, 1.0, seed=1)
    assert len(dense[0]) == 2 and dense.planes([]) == (None, None)


def test_boundary_targets_leave_object_pixels_next_to_unlabelled_ones_unlabelled():
    target = np.zeros((7, 7), np.uint8)
    target[1:6, 1:6] = BOUNDARY
    target[2:5, 2:5] = INTERIOR
    labelled = np.ones((7, 7), bool)
    labelled[:, 6] = False  # the right column was never painted
    kept = labelled_for_boundaries(target, labelled, width=1)
    expected = labelled.copy()
    expected[1:6, 5] = False  # object pixels beside the unpainted column: interior or boundary?
    assert np.array_equal(kept, expected)
    assert np.all(kept[target == BACKGROUND] == labelled[target == BACKGROUND])


def test_make_slices_keeps_the_labelled_pixels_and_drops_unpainted_pages():
    image, mask = nuclei_image(size=(32, 32), seed=4)
    painted = np.zeros((32, 32), bool)
    painted[:4] = True
    slices = paulow.api.make_slices(
        [image, image], [mask, mask], labelled=[painted, np.zeros((32, 32), bool)]
    )
    assert len(slices) == 1 and np.array_equal(slices[0].labelled, painted)
    assert paulow.api.make_slices(image, mask)[0].labelled is None  # dense
    with pytest.raises(ShapeMismatchError, match="labelled pixels of mask 1 are"):
        paulow.api.make_slices(image, mask, labelled=[painted[:8]])
    with pytest.raises(ShapeMismatchError, match="no labelled pixel"):
        paulow.api.make_slices(image, mask, labelled=[np.zeros((32, 32), bool)])


def _strokes(mask: np.ndarray) -> np.ndarray:
    """A few strokes: four rows across the image and a column (about 20 % of the pixels)."""
    painted = np.zeros(mask.shape, bool)
    painted[[10, 11, 30, 31], :] = True
    painted[:, 20:22] = True
    return painted


def test_a_sparse_correction_finetunes_and_ignores_the_unlabelled_mask():
    pairs = [nuclei_image(size=(48, 48), seed=40 + i) for i in range(3)]
    fast = {"patch": 32, "overlap": 16, "per_epoch": 8, "batch_size": 4, "verbose": False, "time_limit": 0}
    images, masks = [p[0] for p in pairs], [p[1] for p in pairs]
    parent = paulow.train(
        images[:2], masks[:2], width=8, epochs=1, folds=1, test_fraction=0.0, boundary_target=0, **fast
    )
    painted = [_strokes(m) for m in masks]

    def finetune(truths):
        rows: list[dict] = []
        torch.manual_seed(0)  # dropout: the two fits draw alike
        child = paulow.finetune(
            parent, images, truths, labelled=painted, epochs=1, on_epoch=rows.append, **fast
        )
        return child.meta["metrics"]["finetune"], [row["train_loss"] for row in rows]

    scores, losses = finetune(masks)
    assert 0 <= scores["finetuned_dice"] <= 1 and losses
    assert scores["min_object_px"] == int(parent.meta.get("min_object_px") or 0)  # strokes tune no size
    # the masks under the unpainted pixels become noise: the fit sees the same loss, epoch by epoch,
    # and the held-out scores are the same
    rng = np.random.default_rng(0)
    noisy = [np.where(p, m, rng.integers(0, 2, m.shape) * 255) for p, m in zip(painted, masks)]
    assert finetune(noisy) == (scores, losses)
