"""The drop-folder layout, the run lock, and clearing only the files a run read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from paulow.errors import UsageError
from paulow.workspace import Workspace, clear_inputs, fingerprints

REPO = Path(__file__).resolve().parents[1]
SEVEN = [
    "Train_Model/TRAINING_IMAGES",
    "Train_Model/TRAINING_MASKS",
    "Use_Model/INPUT_IMAGES",
    "Use_Model/OUTPUT_MASKS",
    "Use_Model/saved_models",
    "Finetune_Model/INPUT_IMAGES",
    "Finetune_Model/INPUT_MASKS",
]


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_setup_creates_the_seven_folders_and_is_idempotent(tmp_path):
    ws = Workspace(tmp_path)
    created = ws.setup()
    assert [str(p.relative_to(tmp_path)) for p in created] == SEVEN
    before = _tree(tmp_path)
    assert ws.setup() == []
    assert _tree(tmp_path) == before


def test_directory_setup_script_from_another_directory(tmp_path):
    root = tmp_path / "ws"
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, str(REPO / "directory_setup.py"), "--root", str(root)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
    assert all((root / folder).is_dir() for folder in SEVEN)
    assert done.stdout.count("exists ") == 7  # the second run created nothing
    assert _tree(root) == sorted(SEVEN + ["Train_Model", "Use_Model", "Finetune_Model"])


def test_clear_inputs_removes_only_the_listed_unchanged_files(tmp_path):
    read = [tmp_path / "a.tif", tmp_path / "b.tif", tmp_path / "edited.tif"]
    later = tmp_path / "added_meanwhile.tif"
    for p in [*read, later, tmp_path / ".gitkeep"]:
        p.write_bytes(b"x")
    seen = fingerprints([*read, tmp_path / ".gitkeep"])
    seen[tmp_path / "gone.tif"] = seen[read[0]]
    (tmp_path / "edited.tif").write_bytes(b"y")  # same size, new content
    done = clear_inputs(seen)
    assert done.removed == read[:2] and done.changed == [read[2]]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gitkeep", "added_meanwhile.tif", "edited.tif"]


def test_require_names_the_setup_command(tmp_path):
    ws = Workspace(tmp_path)
    with pytest.raises(UsageError, match="directory_setup.py"):
        ws.require(ws.train_images)
