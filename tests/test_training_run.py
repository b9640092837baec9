"""The train command's run through `paulow.api` (naming, report folders, the shared settings path)."""

from __future__ import annotations

import re

import pytest

from paulow.api import (
    TrainConfig,
    TrainingInputs,
    TrainingRequest,
    folder_config,
    name_training_run,
    run_files,
)
from paulow.errors import UsageError
from paulow.workspace import Workspace


def _inputs() -> TrainingInputs:
    return TrainingInputs(TrainConfig(), [], "cpu", True)


def test_a_new_run_asks_for_its_name_with_a_dated_default_and_names_stopped_runs(tmp_path):
    ws = Workspace(tmp_path)
    (ws.models / "old_report").mkdir(parents=True)
    (ws.models / "old_report" / "resume_state.pth").write_bytes(b"x")
    asked, said = [], []

    def ask(default: str) -> str:
        asked.append(default)
        return "fresh"

    name = name_training_run(ws, TrainingRequest({}), _inputs(), ask, said.append)
    assert name == "fresh" and len(asked) == 1 and re.fullmatch(r"model_\d{8}_\d{4}", asked[0])
    assert said == ["note: stopped run(s) old can be continued with --resume NAME; starting a new run"]
    with pytest.raises(UsageError, match="a stopped run named 'old' can be continued with --resume old"):
        name_training_run(ws, TrainingRequest({}), _inputs(), lambda _: "old", said.append)
    assert (ws.models / "old_report" / "resume_state.pth").is_file()  # refused: nothing discarded
    said.clear()
    assert (
        name_training_run(ws, TrainingRequest({}, overwrite=True), _inputs(), lambda _: "old", said.append)
        == "old"
    )
    assert said[-1] == "--overwrite: discarded the stopped run 'old'"
    assert not (ws.models / "old_report" / "resume_state.pth").exists()


def test_a_new_runs_report_folder_never_reuses_one_unless_overwriting(tmp_path):
    ws = Workspace(tmp_path)
    (ws.models / "m_report").mkdir(parents=True)
    files = run_files(ws, _inputs(), "m", overwrite=False)
    assert files.report_dir == ws.models / "m_report_2"
    assert files.state == ws.models / "m_report_2" / "resume_state.pth"
    assert run_files(ws, _inputs(), "m", overwrite=True).report_dir == ws.models / "m_report"


def test_folder_settings_are_the_presets_with_the_given_options_and_the_names_beside_the_masks(tmp_path):
    cfg = folder_config(tmp_path, {"epochs": 3, "width": 8}, None, "cpu", None)
    assert (cfg.epochs, cfg.width, cfg.palette, cfg.class_names) == (3, 8, None, [])
    (tmp_path / "classes.txt").write_text("bg\nnucleus\nmembrane\n", encoding="utf-8")
    cfg = folder_config(tmp_path, {"classes": 3}, None, "cpu", None)
    assert cfg.class_names == ["bg", "nucleus", "membrane"]
