"""Which fold is selected: the validation-best, never the test-best; the test share is scored once,
by the selected fold's model (the fits and predictions are stand-ins with hand-set scores)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paulow.config import TrainConfig
from paulow.slices import Slice
from paulow.training import cross_validation, metadata, tuning
from paulow.training.results import FoldResult

VAL_DICE = [0.6, 0.9, 0.7]  # fold 2 is the best on validation...


def _square() -> np.ndarray:
    mask = np.zeros((16, 16), np.uint8)
    mask[4:8, 4:8] = 1  # 16 px
    return mask


def _slices() -> list[Slice]:
    return [Slice(np.zeros((1, 16, 16), np.float32), _square(), Path(f"f{i}.tif"), 0) for i in range(6)]


def _marker(model) -> int:
    return round(float(next(iter(model.state_dict().values())).flatten()[0]))


@pytest.fixture
def stand_ins(monkeypatch):
    """Fits that give fold k the validation Dice VAL_DICE[k] and weights marked k; predictions that
    are perfect for fold 1's model, the square's left half for fold 2's, nothing for fold 3's."""
    calls = []

    def fit(model, train, val, cfg, device, deadline, k, *args, **kwargs):
        state = {name: value.clone() for name, value in model.state_dict().items()}
        next(iter(state.values())).fill_(float(k))
        return FoldResult(
            fold=k,
            state_dict=state,
            val_dice=VAL_DICE[k],
            best_epoch=1,
            history=[],
            train_files=[],
            val_files=[],
        )

    def predict(model, slices, cfg, device):
        calls.append((_marker(model), [s.key for s in slices]))
        k = _marker(model)
        out = []
        for s in slices:
            prob = s.mask.astype(np.float32) if k == 0 else np.zeros(s.mask.shape, np.float32)
            if k == 1:
                prob[4:8, 4:6] = 1.0  # 8 of the 16 px
            out.append(prob[None])
        return out

    monkeypatch.setattr(cross_validation, "fit_fold", fit)
    monkeypatch.setattr(cross_validation, "evaluate_fold", lambda *args, **kwargs: None)
    monkeypatch.setattr(tuning, "predict_slices", predict)
    return calls


def test_the_validation_best_fold_is_selected_and_alone_scores_the_test_share(stand_ins):
    cfg = TrainConfig(width=4, depth=2, patch=16, folds=3, test_fraction=0.2, time_limit=None, device="cpu")
    said = []
    result = cross_validation.cross_validate(_slices(), cfg, "cpu", echo=said.append)
    assert result.best_fold == 1  # the old rule (best test Dice) would have taken fold 1 (index 0)
    assert [f.test_dice for f in result.folds] == [None, pytest.approx(2 * 8 / (8 + 16)), None]
    assert len(result.test_keys) == 1  # 6 files, 20 %: one file held out
    assert stand_ins == [(1, result.test_keys)]  # one prediction of the test share, by fold 2's model
    assert (
        "selected fold 2 (best validation Dice 0.9000); test Dice 0.6667 on 1 test slice(s), scored "
        "once by the selected model"
    ) in said


def test_the_model_file_records_only_the_selected_folds_test_score(stand_ins):
    cfg = TrainConfig(width=4, depth=2, patch=16, folds=3, test_fraction=0.2, time_limit=None, device="cpu")
    slices = _slices()
    result = cross_validation.cross_validate(slices, cfg, "cpu", echo=lambda _: None)
    meta = metadata.training_meta(cfg, slices, result, 1, {})
    metrics = meta["metrics"]
    assert meta["largest_object_px"] == 4  # the 4 x 4 squares: the chunked watershed's default halo - 1
    assert metrics["best_fold"] == 2 and metrics["test_dice"] == pytest.approx(2 / 3)
    assert [f["test_dice"] for f in metrics["folds"]] == [None, pytest.approx(2 / 3), None]
    assert [f["val_dice"] for f in metrics["folds"]] == VAL_DICE


def test_select_fold_takes_the_first_of_equal_validation_scores():
    folds = [FoldResult(k, {}, v, 1, [], [], []) for k, v in enumerate([0.5, 0.8, 0.8])]
    assert tuning.select_fold(folds) == 1
