"""Malformed resume states (wrong types, missing keys, weights that do not fit the network) are one
error line naming the field, never a crash mid-training and never silently accepted."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch
from _workflow import nuclei_slices
from test_resume import CFG, Stop

from paulow import resume as resume_file
from paulow.resume_check import ResumeStateError, check_against_config
from paulow.training.cross_validation import cross_validate
from paulow.training.state import ProgressSaver


@pytest.fixture(scope="module")
def state() -> dict:
    """Fold 1 finished, fold 2 after epoch 1 (2 epochs a fold: states after epoch 1, fold 1, then
    fold 2's epoch 1)."""
    saved: list[dict] = []

    def write(state: dict) -> None:
        saved.append(state)
        if len(saved) == 3:
            raise Stop

    with pytest.raises(Stop):
        cross_validate(
            nuclei_slices(),
            replace(CFG, epochs=2),
            "cpu",
            echo=lambda _: None,
            progress=ProgressSaver(write, every=0),
        )
    assert len(saved[-1]["folds"]) == 1 and saved[-1]["current"]["epoch"] == 1
    return saved[-1]


def _save(tmp_path, state: dict, payload: dict | None = None) -> object:
    path = tmp_path / resume_file.RESUME_FILE
    resume_file.save_state(path, "m", {"width": 4}, {"a.tif": "0" * 64}, state)
    if payload:
        data = torch.load(path, weights_only=True)
        torch.save({**data, **payload}, path)
    return path


def _first_conv(weights: dict) -> str:
    return next(k for k, v in weights.items() if v.ndim == 4)


def _edit(state: dict, how: str) -> dict:
    state = copy.deepcopy(state)
    current, fold = state["current"], state["folds"][0]
    key = _first_conv(current["model"])
    if how == "epoch_text":
        current["epoch"] = "3"
    elif how == "no_history":
        del fold["history"]
    elif how == "foreign_field":
        fold["x"] = 1
    elif how == "folds_dict":
        state["folds"] = {"0": fold}
    elif how == "seconds_nan":
        state["seconds"] = float("nan")
    elif how == "weights_nan":
        current["model"][key] = torch.full_like(current["model"][key], float("nan"))
    elif how == "weights_list":
        current["best_state"] = [1, 2]
    return state


STRUCTURE = {
    "epoch_text": "'state.current.epoch': is not a whole number >= 0",
    "no_history": "'state.folds[0].history': is missing",
    "foreign_field": "'state.folds[0].x': is not a field of a resume state",
    "folds_dict": "'state.folds': is not a list",
    "seconds_nan": "'state.seconds': is not a finite number >= 0",
    "weights_nan": "holds NaN or infinite values",
    "weights_list": "'state.current.best_state': is not a dictionary of named tensors",
}


@pytest.mark.parametrize("how", sorted(STRUCTURE))
def test_malformed_structure_is_one_line_when_read(state, tmp_path, how):
    path = _save(tmp_path, _edit(state, how))
    with pytest.raises(ResumeStateError) as info:
        resume_file.load_state(path)
    message = str(info.value)
    assert message.startswith(f"resume file '{path}': field ") and "\n" not in message
    assert STRUCTURE[how] in message and message.endswith(
        "start a new run without --resume (or delete that resume_state.pth)"
    )


@pytest.mark.parametrize(
    "payload, words",
    [
        ({"state": [1]}, "'state': is not a dictionary"),
        ({"name": 5}, "'name': is not a model name"),
        ({"inputs": {"a.tif": "zz"}}, "'inputs': is not a dictionary of file"),
        ({"config": "x"}, "'config': is not a dictionary"),
    ],
)
def test_malformed_top_level_is_one_line(state, tmp_path, payload, words):
    with pytest.raises(ResumeStateError, match="field ") as info:
        resume_file.load_state(_save(tmp_path, state, payload))
    assert words in str(info.value)


def test_flipped_weights_do_not_fit_the_network(state):
    key = _first_conv(state["current"]["model"])
    for where, tensor, words in (
        ("model", state["current"]["model"][key].flatten(), "the network needs torch.float32"),
        ("model", state["current"]["model"][key].double(), "is torch.float64"),
        ("best_state", state["current"]["best_state"][key][:1], "the network needs"),
    ):
        bad = copy.deepcopy(state)
        bad["current"][where][key] = tensor
        with pytest.raises(ResumeStateError) as info:
            cross_validate(nuclei_slices(), CFG, "cpu", echo=lambda _: None, resume=bad)
        assert f"'state.current.{where}['{key}']'" in str(info.value) and words in str(info.value)


def test_optimiser_moments_must_fit_their_parameter(state):
    bad = copy.deepcopy(state)
    moments = bad["current"]["optimizer"]["state"]
    index = next(iter(moments))
    moments[index]["exp_avg"] = torch.zeros(7, 7)
    with pytest.raises(ResumeStateError, match=rf"optimizer.state\[{index}\].exp_avg': has shape \(7, 7\)"):
        check_against_config(bad, CFG, in_channels=1)


def test_missing_and_extra_tensors_are_refused(state):
    bad = copy.deepcopy(state)
    key = _first_conv(bad["folds"][0]["state_dict"])
    del bad["folds"][0]["state_dict"][key]
    with pytest.raises(ResumeStateError, match=f"has no tensor '{key}'"):
        check_against_config(bad, CFG, in_channels=1)
    bad = copy.deepcopy(state)
    bad["folds"][0]["state_dict"]["extra.weight"] = torch.zeros(1)
    with pytest.raises(ResumeStateError, match="has tensors the network lacks"):
        check_against_config(bad, CFG, in_channels=1)


def test_a_good_state_passes_both_checks(state, tmp_path):
    payload = resume_file.load_state(_save(tmp_path, state))
    check_against_config(payload["state"], CFG, in_channels=1)  # raises nothing
    assert payload["state"]["current"]["epoch"] == 1
