"""The napari plugin, headless: the manifest, the widgets in a viewer, segmenting and training from layers."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt is imported: CI has no display

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("napari", reason="the napari extra is not installed (make install adds it)")
pytest.importorskip("pytestqt", reason="the napari extra is not installed (make install adds it)")

import paulow  # noqa: E402
from paulow.synthetic import make_stack, nuclei_image  # noqa: E402

MANIFEST = Path(paulow.__file__).parent / "napari" / "napari.yaml"
FAST = {"per_epoch": 8, "batch_size": 4}  # a few patches per epoch: seconds, not minutes
WAIT_MS = 120_000


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A width-8 model trained for one epoch on three synthetic 64x64 images."""
    pairs = [nuclei_image(size=(64, 64), seed=30 + i) for i in range(3)]
    model = paulow.train(
        [p[0] for p in pairs],
        [p[1] for p in pairs],
        time_limit=0,
        width=8,
        patch=64,
        overlap=32,
        epochs=1,
        folds=1,
        test_fraction=0.0,
        **FAST,
    )
    return model.save(tmp_path_factory.mktemp("napari_model") / "tiny.pth")


@pytest.fixture
def viewer(make_napari_viewer, monkeypatch):
    """napari's test viewer; offscreen Qt has no OpenGL, so vispy's GL queries get safe answers.

    (vispy calls .decode() on the None that glGetString gives without a GL context, vispy#2736.)
    """
    if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        from napari._vispy.utils import gl as napari_gl
        from vispy.gloo import gl

        real = gl.glGetParameter

        def answer(pname):
            try:
                value = real(pname)
            except AttributeError:
                value = None
            return value if value else ("" if pname == gl.GL_EXTENSIONS else 2048)

        monkeypatch.setattr(gl, "glGetParameter", answer)
        napari_gl.get_gl_extensions.cache_clear()
        napari_gl.get_max_texture_sizes.cache_clear()
    return make_napari_viewer()


def test_manifest_validates_and_names_the_three_widgets():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_file(MANIFEST)
    assert manifest.name == "paulow"
    assert [w.display_name for w in manifest.contributions.widgets] == [
        "Segment",
        "Train / fine-tune",
        "Attention maps",
    ]
    from paulow.napari import widgets

    targets = [c.python_name for c in manifest.contributions.commands]
    assert targets[3:] == ["paulow.napari.reader:get_reader"]  # NIfTI / DICOM with their spacing
    targets = targets[:3]
    assert targets == [
        "paulow.napari.widgets:SegmentWidget",
        "paulow.napari.widgets:TrainWidget",
        "paulow.napari.widgets:AttentionWidget",
    ]
    assert all(isinstance(getattr(widgets, t.split(":")[1]), type) for t in targets)


def test_widgets_dock_from_the_manifest(npe2pm, viewer):
    from paulow.napari.widgets import AttentionWidget, SegmentWidget, TrainWidget

    with npe2pm.tmp_plugin(manifest=str(MANIFEST)):
        for name, kind in [
            ("Segment", SegmentWidget),
            ("Train / fine-tune", TrainWidget),
            ("Attention maps", AttentionWidget),
        ]:
            _, widget = viewer.window.add_plugin_dock_widget("paulow", name)
            assert isinstance(widget, kind) and widget._status.value == ""


def test_segment_adds_instance_labels_and_probabilities(viewer, qtbot, tiny_model):
    from napari.layers import Image, Labels

    from paulow.napari.widgets import INSTANCES, SegmentWidget

    image, _ = nuclei_image(size=(64, 64), seed=5)
    widget = SegmentWidget(viewer)
    layer = viewer.add_image(image, name="cells")
    assert widget._image.value is layer  # the picker follows the viewer's layers
    widget._model.value = tiny_model
    widget._output.value = INSTANCES
    widget._probabilities.value = True
    widget.run()
    qtbot.waitUntil(lambda: widget._status.value.startswith(("done", "error")), timeout=WAIT_MS)
    assert widget._status.value.startswith("done: tiny.pth"), widget._status.value
    expected = paulow.load_model(tiny_model).predict(image)
    labels = viewer.layers["cells instances"]
    assert isinstance(labels, Labels) and labels.data.shape == (64, 64)
    assert np.array_equal(labels.data, expected.labels())
    probs = viewer.layers["cells probability"]
    assert isinstance(probs, Image) and probs.data.shape == (64, 64)  # one channel: the foreground
    foreground = 1 - expected.probabilities[0] if expected.boundary else expected.probabilities[0]
    np.testing.assert_allclose(probs.data, foreground, atol=1e-6)
    assert probs.blending == "translucent" and probs.opacity == 0.5 and probs.colormap.name == "viridis"
    assert widget._progress.value == widget._progress.max == 1  # one tile (64 px padded to the tile)


def test_segment_a_stack_gives_a_mask_per_page(viewer, qtbot, tiny_model):
    from paulow.napari.widgets import SegmentWidget

    stack, _ = make_stack("nuclei", pages=2, size=(64, 64), seed=2)
    stack = np.asarray(stack).reshape(2, 64, 64)
    viewer.add_image(stack, name="stack")
    widget = SegmentWidget(viewer)
    widget._model.value = tiny_model
    widget.run()
    qtbot.waitUntil(lambda: "stack mask" in viewer.layers, timeout=WAIT_MS)
    model = paulow.load_model(tiny_model)
    mask = viewer.layers["stack mask"].data
    assert mask.shape == (2, 64, 64) and set(np.unique(mask)) <= {0, 1}
    assert np.array_equal(mask, np.stack([model.predict(page).mask for page in stack]))


def test_segment_without_a_model_says_so_and_starts_nothing(viewer):
    from paulow.napari.widgets import SegmentWidget

    widget = SegmentWidget(viewer)
    widget.run()
    assert widget._status.value == "error: no image layer: open an image first"
    viewer.add_image(np.zeros((16, 16)), name="blank")
    widget.run()
    assert widget._status.value.startswith("error: model file '' not found: choose a saved PAULow model")
    assert widget.worker is None and [layer.name for layer in viewer.layers] == ["blank"]


def _train_widget(viewer, out: Path):
    from paulow.napari.widgets import TrainWidget

    image, mask = nuclei_image(size=(64, 64), seed=7)
    viewer.add_image(image, name="cells")
    viewer.add_labels(mask.astype(np.uint8), name="cells labels")
    widget = TrainWidget(viewer)
    widget._minutes.value, widget._epochs.value, widget._width.value = 0, 1, 8
    widget._patch.value, widget._tiles.value = 32, 2
    widget._out.value = out
    widget.train_options = dict(FAST)
    return widget


def test_train_from_layers_writes_a_model_and_shows_loss_and_dice(viewer, qtbot, tmp_path):
    out = tmp_path / "from_layers.pth"
    widget = _train_widget(viewer, out)
    widget.run()
    seen = []
    widget.worker.yielded.connect(lambda update: seen.append(update.message))
    qtbot.waitUntil(lambda: widget._status.value.startswith((f"saved {out}", "error")), timeout=WAIT_MS)
    assert widget._status.value.startswith(f"saved {out}"), widget._status.value
    assert any(m.startswith("epoch 1/1: loss ") and "validation Dice 0." in m for m in seen), seen
    model = paulow.load_model(out)
    assert model.meta["arch_args"]["width"] == 8 and model.in_channels == 1
    assert len(model.meta["training_files"]) == 4  # the image cut into 2 x 2 tiles


def test_finetune_from_layers_writes_a_new_model(viewer, qtbot, tmp_path, tiny_model):
    out = tmp_path / "tuned.pth"
    widget = _train_widget(viewer, out)
    widget._finetune.value = True
    widget._parent_in.value = tiny_model
    widget.run()
    qtbot.waitUntil(lambda: widget._status.value.startswith((f"saved {out}", "error")), timeout=WAIT_MS)
    assert widget._status.value.startswith(f"saved {out}"), widget._status.value
    tuned = paulow.load_model(out)
    assert set(tuned.meta["metrics"]["finetune"]) >= {"parent_dice", "finetuned_dice"}


def test_finetune_from_sparse_strokes_writes_a_new_model(viewer, qtbot, tmp_path, tiny_model):
    out = tmp_path / "strokes.pth"
    widget = _train_widget(viewer, out)
    _, mask = nuclei_image(size=(64, 64), seed=7)
    strokes = np.zeros((64, 64), np.uint8)
    rows = np.zeros((64, 64), bool)
    rows[[8, 24, 40, 56]] = True  # four lines across the image: background 1, objects 2
    strokes[rows] = np.where(mask[rows] > 0, 2, 1)
    viewer.layers["cells labels"].data = strokes
    widget._sparse.value, widget._finetune.value, widget._parent_in.value = True, True, tiny_model
    widget.run()
    qtbot.waitUntil(lambda: widget._status.value.startswith((f"saved {out}", "error")), timeout=WAIT_MS)
    assert widget._status.value.startswith(f"saved {out}"), widget._status.value
    scores = paulow.load_model(out).meta["metrics"]["finetune"]
    assert 0 <= scores["finetuned_dice"] <= 1 and 0 <= scores["parent_dice"] <= 1


def test_train_never_overwrites_a_model_file(viewer, tmp_path):
    out = tmp_path / "taken.pth"
    out.write_bytes(b"keep me")
    widget = _train_widget(viewer, out)
    widget.run()
    assert (
        widget._status.value
        == f"error: model file '{out}' exists: choose another name (nothing is overwritten)"
    )
    assert widget.worker is None and out.read_bytes() == b"keep me"


def test_train_says_what_is_missing_and_starts_nothing(viewer, tmp_path, tiny_model):
    widget = _train_widget(viewer, tmp_path / "new.pth")
    widget._finetune.value, widget._parent_in.value, widget._tiles.value = True, tiny_model, 1
    widget.run()
    assert widget._status.value == (
        "error: fine-tuning holds part of the image out: set 'tiles per side' to 2 or more"
    )
    viewer.layers["cells labels"].data = np.zeros((64, 64), np.uint8)
    widget.run()
    assert widget._status.value == "error: the labels layer 'cells labels' is empty: paint some objects first"
    viewer.layers["cells labels"].data = np.zeros((32, 32), np.uint8)
    widget.run()
    assert widget._status.value == (
        "error: the labels layer is (32, 32) but the image layer is (64, 64): "
        "draw the labels on a layer of the image's size"
    )
    assert widget.worker is None and not (tmp_path / "new.pth").exists()


def test_attention_maps_become_one_layer_per_gate(viewer, qtbot, tiny_model):
    from paulow.napari.jobs import attention
    from paulow.napari.widgets import AttentionWidget

    image, _ = nuclei_image(size=(64, 64), seed=5)
    viewer.add_image(image, name="cells")
    widget = AttentionWidget(viewer)
    widget._model.value = tiny_model
    widget.run()
    qtbot.waitUntil(lambda: widget._status.value.startswith(("error", "4 gate", "3 gate")), timeout=WAIT_MS)
    expected = attention(tiny_model, image[None])
    gates = [layer for layer in viewer.layers if "attention gate" in layer.name]
    assert len(gates) == len(expected) >= 1, widget._status.value
    assert gates[0].name == "cells attention gate 1 (deepest)" and gates[0].visible
    for layer, want in zip(gates, expected):
        assert layer.data.shape == (64, 64)
        np.testing.assert_array_equal(layer.data, want)
