"""Model files: self-describing, safe to load, atomic; original PAULow state dicts load too."""

from __future__ import annotations

import logging

import pytest
import torch

from paulow.checkpoint import describe, load_checkpoint, save_checkpoint, sha256_file
from paulow.errors import ModelError
from paulow.models import build_model

ARGS = {"in_channels": 1, "classes": 1, "width": 8, "depth": 3}


def _meta(**extra):
    return {
        "arch": "paulow_attention_unet",
        "arch_args": ARGS,
        "in_channels": 1,
        "classes": 1,
        "normalisation": {"method": "percentile", "low": 1.0, "high": 99.8},
        "patch": 64,
        "threshold": 0.5,
        "metrics": {"test_dice": 0.875},
        **extra,
    }


def test_round_trip_rebuilds_the_network_from_metadata_alone(tmp_path):
    torch.manual_seed(0)
    model = build_model("paulow_attention_unet", **ARGS).eval()
    path = save_checkpoint(tmp_path / "m.pth", [model.state_dict()], _meta())
    raw = torch.load(path, weights_only=True)  # plain types only: loads without pickled code
    assert raw["meta"]["arch_args"] == ARGS and raw["meta"]["format_version"] == 1
    loaded = load_checkpoint(path)
    x = torch.rand(1, 1, 40, 24)
    with torch.inference_mode():
        torch.testing.assert_close(loaded.models[0](x), model(x))
    assert loaded.in_channels == 1 and not loaded.legacy
    assert [p.name for p in tmp_path.iterdir()] == ["m.pth"]  # no temporary file left


def test_ensemble_files_hold_every_member(tmp_path):
    members = [build_model("unet", **ARGS).state_dict() for _ in range(3)]
    path = save_checkpoint(tmp_path / "e.pth", members, {**_meta(), "arch": "unet"})
    assert len(load_checkpoint(path).models) == 3
    assert describe(path)["members"] == 3 and describe(path)["test_dice"] == 0.875


def test_bare_original_state_dict_loads_with_a_warning(tmp_path, caplog):
    original = build_model("paulow_original", in_channels=3, classes=1, width=8)
    torch.save(original.state_dict(), tmp_path / "old.pth")
    with caplog.at_level(logging.WARNING, logger="paulow"):
        loaded = load_checkpoint(tmp_path / "old.pth")
    assert loaded.legacy and loaded.in_channels == 3
    assert loaded.meta["arch_args"]["width"] == 8
    assert "no metadata" in caplog.text
    assert describe(tmp_path / "old.pth")["network"] == "original PAULow (bare state dict)"


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"x": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(ModelError, match="cannot load model file .*evil.pth"):
        load_checkpoint(tmp_path / "evil.pth")


def test_missing_and_corrupt_files_give_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_checkpoint(tmp_path / "nope.pth")
    (tmp_path / "bad.pth").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="corrupt"):
        load_checkpoint(tmp_path / "bad.pth")


def test_sha256_of_a_known_file(tmp_path):
    (tmp_path / "a").write_bytes(b"abc")
    assert sha256_file(tmp_path / "a") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
