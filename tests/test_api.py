"""The public API, called directly: train, predict, save/load, fine-tune, evaluate."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
import torch

import paulow
from paulow.errors import ShapeMismatchError, UsageError
from paulow.synthetic import nuclei_image

TINY = {
    "width": 8,
    "patch": 64,
    "overlap": 32,
    "epochs": 2,
    "per_epoch": 8,
    "batch_size": 4,
    "folds": 1,
    "test_fraction": 0.0,
    "panel_every": 1000,
}


def _data(n: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    pairs = [nuclei_image(size=(64, 64), seed=seed + i) for i in range(n)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


EPOCH_ROWS: list[dict] = []  # what the module's model reported to `on_epoch` while it trained


@pytest.fixture(scope="module")
def model() -> paulow.Model:
    images, masks = _data(4)
    return paulow.train(
        images, masks, time_limit=0, dropout=0.1, rotate=False, on_epoch=EPOCH_ROWS.append, **TINY
    )


def test_import_is_light_and_exposes_the_api():
    assert {"train", "finetune", "load_model", "evaluate", "Model", "Prediction"} <= set(dir(paulow))
    importlib.import_module("paulow.training.cross_validation")  # the training code's home
    assert not (Path(paulow.__file__).parent / "train.py").exists()  # no module beside the function
    assert callable(paulow.train) and paulow.train is importlib.import_module("paulow.api").train


def test_train_returns_a_model_with_metadata(model):
    assert model.classes == 1 and model.in_channels == 1
    assert 0.0 <= model.threshold <= 1.0
    assert model.meta["arch_args"]["width"] == 8 and len(model.networks) == 1
    assert model.meta["arch_args"]["dropout"] == 0.1 and model.meta["config"]["rotate"] is False
    assert model.meta["config"]["folds"] == 1  # an explicit `folds` is obeyed by the planner


def test_boundary_target_is_settled_from_the_masks():
    from paulow.config import TrainConfig

    pairs = [nuclei_image(size=(64, 64), n=3, radius_range=(10, 14), seed=i) for i in range(2)]
    images, masks, tiny, said = [p[0] for p in pairs], [p[1] for p in pairs], {**TINY, "epochs": 1}, []
    auto = paulow.train(images, masks, time_limit=0, echo=said.append, **tiny)  # round objects, 10-14 px
    assert auto.meta["boundary_target"] == 2 and auto.meta["classes"] == 3
    assert any(line.startswith("target: background / interior / boundary") for line in said)
    pred = auto.predict(images[0], min_size=0)
    assert pred.probabilities.shape == (3, 64, 64) and set(np.unique(pred.mask)) <= {0, 1}
    # its threshold is tuned on the validation image, on the object probability 1 - P(background)
    assert any(line.startswith("fold 1: object threshold") for line in said)
    assert auto.threshold == auto.meta["metrics"]["folds"][0]["threshold"] == pred.threshold
    assert np.array_equal(pred.mask, 1.0 - pred.probabilities[0] > auto.threshold)
    strict = auto.predict(images[0], min_size=0, threshold=0.95)  # a user's threshold is obeyed
    assert np.array_equal(strict.mask, 1.0 - strict.probabilities[0] > 0.95)
    assert np.array_equal(strict.labels() > 0, strict.mask > 0)
    plain = paulow.train(images, masks, time_limit=0, boundary_target=0, **tiny)
    assert plain.meta["classes"] == 1 and plain.meta["boundary_target"] is None
    direct = paulow.train(images, masks, time_limit=None, config=TrainConfig(**tiny))  # None: binary
    assert direct.meta["classes"] == 1 and direct.meta["boundary_target"] is None


def test_on_epoch_gets_every_epochs_row(model):
    assert [(r["fold"], r["epoch"], r["folds"], r["epochs"]) for r in EPOCH_ROWS] == [
        (1, 1, 1, 2),
        (1, 2, 1, 2),
    ]
    for r in EPOCH_ROWS:  # every patch trained falls in exactly one regime of the dynamic loss
        assert r["patches"] > 0 and r["patches"] == r["regime_empty"] + r["regime_small"] + r["regime_large"]
        assert np.isfinite(r["train_loss"])
    assert EPOCH_ROWS[-1]["val_dice"] is not None  # the last epoch always validates
    assert {"val_loss", "lr", "regime_empty", "regime_small", "regime_large"} <= set(EPOCH_ROWS[0])


def test_predict_shapes_and_types(model):
    image, _ = nuclei_image(size=(64, 64), seed=9)
    pred = model.predict(image, min_size=0)
    assert pred.probabilities.shape == (1, 64, 64) and pred.probabilities.dtype == np.float32
    assert pred.mask.shape == (64, 64) and pred.mask.dtype == np.uint8
    assert np.array_equal(pred.mask, (pred.probabilities[0] > model.threshold).astype(np.uint8))
    labels = pred.labels()
    assert labels.shape == (64, 64) and len(pred.objects()) == int(labels.max())
    assert np.array_equal(model.predict(image[None]).probabilities, pred.probabilities)


def test_predict_threshold_override(model):
    image, _ = nuclei_image(size=(64, 64), seed=9)
    assert not model.predict(image, threshold=1.0).mask.any()
    assert model.predict(image, threshold=0.0).mask.all()


def test_predict_removes_objects_under_the_models_min_size(model):
    image, _ = nuclei_image(size=(64, 64), seed=9)
    assert model.predict(image, threshold=0.0, min_size=4096).mask.all()  # one 4,096 px object stays
    assert not model.predict(image, threshold=0.0, min_size=4097).mask.any()
    saved = model.meta.get("min_object_px")
    model.meta["min_object_px"] = 4097  # the default comes from the model file
    try:
        pred = model.predict(image, threshold=0.0)
        assert pred.min_size == 4097 and not pred.mask.any() and pred.labels().max() == 0
        assert pred.labels(min_size=0).max() == 0  # the mask it labels has no object left
    finally:
        model.meta["min_object_px"] = saved


def test_save_load_round_trip(model, tmp_path):
    image, _ = nuclei_image(size=(64, 64), seed=9)
    path = model.save(tmp_path / "m.pth")
    again = paulow.load_model(path)
    assert again.threshold == model.threshold and again.classes == model.classes
    np.testing.assert_array_equal(again.predict(image).probabilities, model.predict(image).probabilities)


def test_train_from_files(tmp_path):
    from paulow.synthetic import write_dataset

    pairs = write_dataset(tmp_path / "img", tmp_path / "msk", n=3, size=(64, 64), seed=3)
    config = paulow.TrainConfig(**{**TINY, "epochs": 1, "seed": 5})
    model = paulow.train([p[0] for p in pairs], [p[1] for p in pairs], time_limit=None, config=config)
    assert model.meta["config"]["seed"] == 5 and model.meta["config"]["time_limit"] is None
    assert [f["name"] for f in model.meta["training_files"]] == ["image1.tif", "image2.tif", "image3.tif"]
    assert model.predict(pairs[0][0]).mask.shape == (64, 64)


def test_every_training_option_of_the_script_is_an_api_option(tmp_path):
    """`train_model.py`'s training and cross-validation options all reach `paulow.train`."""
    from paulow.cli import build_parser
    from paulow.config import option_names

    parser = build_parser(tmp_path)
    train = next(a for a in parser._actions if a.dest == "command").choices["train"]
    groups = [g for g in train._action_groups if g.title in ("training", "cross-validation")]
    dests = {a.dest for g in groups for a in g._group_actions}
    assert len(dests) > 25 and dests - {"preset"} <= option_names()


def test_options_map_to_the_config_as_on_the_command_line():
    from paulow.config import config_from_options

    cfg = config_from_options(
        {"no_rotate": True, "norm": "layer", "per_epoch": 0, "time_limit": 0, "width": 8}, device="cpu"
    )
    assert (cfg.rotate, cfg.arch_extra, cfg.per_epoch, cfg.time_limit, cfg.width) == (
        False,
        {"norm": "layer"},
        None,
        None,
        8,
    )
    assert config_from_options({}, "paper", "cpu").width == 64  # the preset fills what is not given
    with pytest.raises(UsageError, match="unknown training option.*epoch"):
        config_from_options({"epoch": 3})


def test_export_writes_torchscript_with_the_same_probabilities(model, tmp_path):
    from paulow.normalisation import normalise_with

    image, _ = nuclei_image(size=(64, 64), seed=9)
    written = model.export("torchscript", tmp_path, name="nuclei")
    assert [p.name for p in written] == ["nuclei.torchscript.pt", "nuclei.torchscript.pt.json"]
    x = torch.from_numpy(normalise_with(image[None].astype(np.float32), model.meta["normalisation"]))[None]
    with torch.no_grad():
        got = torch.jit.load(str(written[0]))(x)
        want = torch.sigmoid(model.networks[0](x))
    assert torch.allclose(got, want, atol=1e-5)


def test_finetune_keeps_the_parent(model, tmp_path):
    images, masks = _data(3, seed=20)
    before = [p.detach().clone() for p in model.networks[0].parameters()]
    rows: list[dict] = []
    tuned = paulow.finetune(
        model,
        images,
        masks,
        time_limit=0,
        epochs=1,
        per_epoch=8,
        batch_size=4,
        report_dir=tmp_path,
        on_epoch=rows.append,
    )
    assert [(r["fold"], r["epoch"], r["folds"], r["epochs"]) for r in rows] == [(1, 1, 1, 1)]
    assert (tmp_path / "curves.png").is_file()  # drawn while it trains, as finetune_model.py does
    assert isinstance(tuned, paulow.Model) and tuned.networks[0] is not model.networks[0]
    assert all(torch.equal(a, b) for a, b in zip(before, model.networks[0].parameters()))
    assert set(tuned.meta["metrics"]["finetune"]) >= {"parent_dice", "finetuned_dice"}
    assert tuned.meta["config"]["lr"] == pytest.approx(model.meta["config"]["lr"] * 0.1)
    assert tuned.meta["config"]["epochs"] == 1 and tuned.meta["parent"] == {"name": model.meta["name"]}


def test_bad_inputs_are_user_errors(model):
    with pytest.raises(UsageError, match="unknown training option"):
        paulow.train(*_data(2), time_limit=0, widht=8)
    with pytest.raises(UsageError, match="--threshold 1.5 is out of range: give a number above 0 below 1"):
        paulow.train(*_data(2), time_limit=0, **{**TINY, "threshold": 1.5})
    with pytest.raises(ShapeMismatchError):
        paulow.train([np.zeros((64, 64))], [np.zeros((32, 32))], time_limit=0, **TINY)
    with pytest.raises(UsageError, match="two images"):
        paulow.finetune(model, *_data(1), time_limit=0, epochs=1)
    with pytest.raises(UsageError, match="unknown fine-tuning option"):
        paulow.finetune(model, *_data(2), time_limit=0, epoch=1)
    with pytest.raises(UsageError, match="--width 64: fine-tuning cannot change the network"):
        paulow.finetune(model, *_data(2), time_limit=0, epochs=1, width=64)


def test_evaluate_exact_values():
    truth = np.zeros((8, 8), np.uint8)
    truth[0:2, 0:2] = 1  # object A, 4 px
    truth[5:7, 5:7] = 1  # object B, 4 px
    pred = np.zeros((8, 8), np.uint8)
    pred[0:2, 0:3] = 1  # A plus 2 px: IoU 4/6
    scores = paulow.evaluate(pred, truth)
    # tp 4, fp 2, fn 4
    assert scores["dice"] == pytest.approx(8 / 14)
    assert scores["iou"] == pytest.approx(4 / 10)
    assert scores["precision"] == pytest.approx(4 / 6)
    assert scores["recall"] == pytest.approx(0.5)
    assert scores["object_tp"] == 1 and scores["object_fn"] == 1 and scores["object_fp"] == 0
    assert scores["object_precision"] == 1.0 and scores["object_recall"] == 0.5
    assert scores["object_mean_matched_iou"] == pytest.approx(4 / 6)


def test_evaluate_takes_a_prediction_and_multiclass():
    probs = np.zeros((1, 4, 4), np.float32)
    probs[0, :2] = 0.9
    pred = paulow.Prediction(probs, (probs[0] > 0.5).astype(np.uint8))
    assert paulow.evaluate(pred, pred.mask * 255)["dice"] == 1.0
    truth = np.array([[0, 1], [2, 2]])
    scores = paulow.evaluate(np.array([[0, 1], [2, 1]]), truth, classes=3)
    assert scores["dice_2"] == pytest.approx(2 / 3) and scores["pa_2"] == 0.5 and scores["accuracy"] == 0.75


def test_docs_python_api_example_runs(tmp_path, monkeypatch):
    """The example of docs/python-api.md, with tiny settings (each substitution must still apply)."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "python-api.md").read_text(encoding="utf-8")
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    tiny = ", ".join(f"{k}={v!r}" for k, v in TINY.items())
    for old, new in (
        ("(128, 128)", "(64, 64)"),
        ("time_limit=2", f"time_limit=0, {tiny}"),
        ("time_limit=1)", "time_limit=0, epochs=1, per_epoch=8, batch_size=4)"),
    ):
        assert old in code, f"docs/python-api.md example changed: '{old}' not found"
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "docs/python-api.md", "exec"), namespace)
    assert [row[0] for row in namespace["losses"]] == [1, 2]  # on_epoch: one row per epoch (TINY: 2)
    assert (tmp_path / "nuclei.pth").is_file() and (tmp_path / "nuclei_rois.zip").is_file()
    assert paulow.load_model(tmp_path / "nuclei.pth").threshold == 0.6
    assert sorted(p.name for p in (tmp_path / "exported").iterdir()) == [
        "nuclei.torchscript.pt",
        "nuclei.torchscript.pt.json",
    ]
    assert (tmp_path / "nuclei_report" / "timing.json").is_file()
