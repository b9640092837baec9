"""Fine-tuning's honest score: validation chooses epoch, threshold and smallest object size; the
reported Dice comes from held-out images that chose nothing, with their count and a warning when
they are few."""

from __future__ import annotations

from dataclasses import replace

import pytest
from _workflow import nuclei_slices

from paulow.config import TrainConfig
from paulow.errors import UsageError
from paulow.finetuning import finetune_network, score_note, split_for_finetuning
from paulow.training.evaluation import dice_on_slices, predict_slices
from paulow.training.network import build_network
from paulow.training.tuning import tune_on_probabilities

CFG = TrainConfig(
    width=4,
    depth=2,
    patch=32,
    overlap=16,
    batch_size=4,
    per_epoch=8,
    epochs=1,
    patience=100,
    device="cpu",
    augment=False,
    time_limit=None,
    panel_every=1000,
)


@pytest.mark.parametrize(
    "images, holdout, counts",
    [
        (2, 0.25, (1, 1, 0)),  # too few to hold out: one to tune, one to validate
        (3, 0.25, (1, 1, 1)),  # round(0.75) -> 1 held out, then 1 of the 2 left validates
        (4, 0.25, (2, 1, 1)),
        (8, 0.25, (4, 2, 2)),  # round(2.0) held out; round(1.5) of the 6 left validate
        (12, 0.25, (7, 2, 3)),  # round(3.0) held out; round(2.25) of the 9 left validate
        (3, 0.5, (1, 1, 1)),  # round(1.5) -> 2 would leave one image: 1 held out, 2 left
    ],
)
def test_split_counts(images, holdout, counts):
    tune, val, held = split_for_finetuning(nuclei_slices(images, 8), holdout, 0, "here")
    assert (len(tune), len(val), len(held)) == counts
    keys = [{s.key for s in part} for part in (tune, val, held)]
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])


def test_one_image_is_refused():
    with pytest.raises(UsageError, match="fine-tuning needs at least two images .*: add images to here"):
        split_for_finetuning(nuclei_slices(1, 8), 0.25, 0, "here")


def test_score_notes():
    assert score_note(0) == (
        "on the validation images (too few images to hold any out): optimistic, as they "
        "chose the epoch, threshold and smallest object size"
    )
    assert score_note(2) == "on 2 held-out image(s) that chose nothing; fewer than 3: treat it as optimistic"
    assert score_note(3) == "on 3 held-out image(s) that chose nothing"


def test_validation_chooses_and_the_held_out_images_are_scored():
    tune, val, held = split_for_finetuning(nuclei_slices(6, 32), 0.5, 0, "here")  # 1, 2 and 3 images
    parent, said = build_network(CFG, 1, "cpu", 0), []
    done = finetune_network(parent, tune, val, CFG, "cpu", echo=said.append, held=held)
    scores = done.scores
    assert (scores["held_out_images"], scores["validation_images"]) == (3, 2)
    assert scores["scored_on"] == "held_out" and scores["optimistic"] is False
    probs = predict_slices(done.network, val, CFG, "cpu")
    assert done.cfg.threshold == tune_on_probabilities(probs, [s.mask for s in val], False)[0]
    assert scores["finetuned_dice"] == pytest.approx(
        dice_on_slices(done.network, held, done.cfg, "cpu", min_size=scores["min_object_px"])
    )
    assert done.held_out == sorted(f"{s.source.name}#0" for s in held)
    assert done.result.val_files == sorted(f"{s.source.name}#0" for s in val)  # the epoch's choosers
    assert said[-1].endswith(f"(tuned on 2 validation image(s)), {score_note(3)}")


def test_without_held_out_images_the_score_says_it_is_optimistic():
    tune, val, held = split_for_finetuning(nuclei_slices(2, 32), 0.25, 0, "here")
    said = []
    done = finetune_network(
        build_network(CFG, 1, "cpu", 0),
        tune,
        val,
        replace(CFG, tune_threshold=False),
        "cpu",
        echo=said.append,
        held=held,
    )
    assert done.scores["scored_on"] == "validation" and done.scores["optimistic"] is True
    assert done.scores["held_out_images"] == 0 and done.held_out == []
    assert said[0].endswith(f"), {score_note(0)}") and said[-1].endswith(score_note(0))
