"""The typed model-file record: every forged field is one `model file 'F': field X: ...` line, no
traceback, no hang; the model table lists a forged file as unreadable and the others as before."""

from __future__ import annotations

import sys
import time

import pytest
import torch
from test_hardening import untrained_model

from paulow.checkpoint import describe, load_checkpoint
from paulow.errors import ModelError
from paulow.model_file import ModelMeta, ModelMetaError


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> dict:
    path = untrained_model(
        tmp_path_factory.mktemp("good") / "g.pth",
        class_names=["cell"],
        metrics={"test_dice": 0.8, "best_fold": 2, "test_dice_per_class": {"cell": 0.8}},
    )
    return torch.load(path, weights_only=True)


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"d": value}
    return value


FORGED = {  # field -> (value, words in the message)
    "patch": (10**6, "'patch': 1000000 is not a whole number from 1 to 8192"),
    "normalisation": ({"method": "percentile", "low": -5, "high": 99.8}, "'normalisation'"),
    "normalisation_str": ({"method": "percentile", "low": "a", "high": 99.8}, "percentiles"),
    "class_names": (7, "'class_names': 7 is not null or a list of class names"),
    "boundary_target": (float("nan"), "'boundary_target': nan is not null or a whole number from 1 to 1000"),
    "palette": ([[300, 0, 0]], "'palette'"),
    "palette_str": ([["a", 0, 0]], "'palette'"),
    "palette_huge": ([[0, 0, 0]] * 10**5, "at most 255"),
    "threshold": (1.5, "'threshold': 1.5 is not a finite number from 0 to 1"),
    "min_object_px": (-3, "'min_object_px': -3 is not a whole number from 0"),
    "date": (_nested(10_000), "'date': a dict of 1 item(s) is not an ISO date"),
    "deep": ([_nested(10_000)], "'deep': is nested more than 32 levels deep"),
    "date_text": ("yesterday", "'date': 'yesterday' is not an ISO date"),
    "config": ([1, 2], "'config': a list of 2 item(s) is not a dictionary"),
    "activation": ("relu", "'activation': 'relu' is not one of sigmoid, softmax"),
    "name": (b"x", "'name': b'x' is not null or a text of 1 to 255 characters"),
    "name_deep": ({"a": [b"x"]}, "'name_deep.a': holds a bytes, not a plain JSON value"),
    "extra": (1j, "'extra': holds a complex, not a plain JSON value"),
}


@pytest.mark.parametrize("case", sorted(FORGED))
def test_each_forged_field_is_one_line_naming_file_and_field(good, tmp_path, case):
    value, words = FORGED[case]
    path = tmp_path / "bad.pth"
    field = case.split("_str")[0].split("_huge")[0].split("_text")[0]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)  # torch.save pickles recursively; torch.load does not
    try:
        torch.save({**good, "meta": {**good["meta"], field: value}}, path)
    finally:
        sys.setrecursionlimit(limit)
    start = time.monotonic()
    with pytest.raises(ModelMetaError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert time.monotonic() - start < 5
    assert message.startswith(f"model file '{path}': field ") and "\n" not in message
    assert words in message and message.endswith("retrain it or re-download it")


@pytest.mark.parametrize(
    "where, value, words",
    [
        ("metrics", {"best_fold": "2"}, "'metrics.best_fold': '2' is not a whole number from 1 to 100"),
        ("metrics", {"test_dice_per_class": {"cell": "high"}}, "'metrics.test_dice_per_class'"),
        ("metrics", {"test_dice": 3.0}, "'metrics.test_dice': 3.0 is not a score"),
        ("arch_args", {"in_channels": 1, "classes": 1, "width": 8, "depth": 40}, "'arch_args.depth': 40"),
        ("arch_args", {"in_channels": 1, "classes": 1, "width": 1024, "depth": 8}, "exceed 4096"),
        ("class_names", ["a", "b", "c"], "3 names for 1 classes"),
        (
            "config",
            {"patch": 10**6, "seed": -1},
            "'config': --patch 1000000 is out of range: give a whole number from 1 to 8192 - the file",
        ),
    ],
)
def test_nested_fields_are_checked(good, tmp_path, where, value, words):
    path = tmp_path / "bad.pth"
    meta = {**good["meta"], where: value}
    if where == "class_names":
        meta.pop("classes", None)
    torch.save({**good, "meta": meta}, path)
    with pytest.raises(ModelMetaError, match="field ") as info:
        load_checkpoint(path)
    assert words in str(info.value)


def test_the_record_types_a_good_file(good, tmp_path):
    record = ModelMeta.parse(good["meta"], tmp_path / "g.pth")
    assert (record.arch, record.in_channels, record.classes, record.patch, record.threshold) == (
        "paulow_attention_unet",
        1,
        1,
        32,
        0.5,
    )
    assert record.class_names == ["cell"]
    assert record.normalisation == {"method": "percentile", "low": 1.0, "high": 99.8}
    assert record.meta == good["meta"]


def test_nan_scores_mean_not_measured(good, tmp_path):
    meta = {**good["meta"], "metrics": {"test_dice": float("nan"), "best_fold": 1}}
    assert ModelMeta.parse(meta, "x.pth").metrics["best_fold"] == 1


def test_legacy_state_dict_with_flat_weights_is_one_line(tmp_path):
    from paulow.models import build_model

    sd = build_model("paulow_original", in_channels=3, classes=1, width=4, depth=4).state_dict()
    path = tmp_path / "old.pth"
    torch.save({**sd, "conv1.conv1.weight": torch.zeros(4)}, path)
    with pytest.raises(ModelMetaError, match=r"tensor 'conv1.conv1.weight' has rank 1, not 4"):
        load_checkpoint(path)
    torch.save({**sd, "final.weight": torch.tensor(1.0)}, path)
    with pytest.raises(ModelMetaError, match=r"tensor 'final.weight' has rank 0, not 4"):
        load_checkpoint(path)
    torch.save(sd, path)
    assert load_checkpoint(path).legacy  # the genuine one still loads


@pytest.mark.parametrize(
    "field, value", [("metrics", {"test_dice_per_class": {"cell": "x"}}), ("date", "not a date")]
)
def test_model_table_lists_a_forged_file_as_unreadable(good, tmp_path, field, value):
    from paulow.commands.common import model_table

    ok = untrained_model(tmp_path / "ok.pth")
    bad = tmp_path / "bad.pth"
    torch.save({**good, "meta": {**good["meta"], field: value}}, bad)
    with pytest.raises(ModelError):
        describe(bad)
    table = model_table([ok, bad])
    row = next(line for line in table.splitlines() if "bad" in line)
    assert f"unreadable (field '{field}" in row
    assert "paulow_attention_unet w8" in next(line for line in table.splitlines() if " ok " in line)
