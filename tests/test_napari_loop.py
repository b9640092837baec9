"""The napari loop, headless: kept probabilities re-thresholded by the sliders, the model picker, tile
progress and cancel, a boundary model's probability layer, and the correction loop's training side
(cancel, time-based progress, a fine-tuned model worse than its parent not made current, sparse
labels passed through to fine-tuning)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt is imported: CI has no display

import shutil  # noqa: E402
import threading  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("napari", reason="the napari extra is not installed (make install adds it)")
pytest.importorskip("pytestqt", reason="the napari extra is not installed (make install adds it)")

from test_napari import FAST, WAIT_MS, tiny_model, viewer  # noqa: E402,F401  (fixtures)

import paulow  # noqa: E402
from paulow.errors import Cancelled  # noqa: E402
from paulow.synthetic import nuclei_image  # noqa: E402


def _segment(viewer, qtbot, model, image, **controls):
    from paulow.napari.widgets import SegmentWidget

    viewer.add_image(image, name="cells")
    widget = SegmentWidget(viewer)
    widget._model.value = model
    for name, value in controls.items():
        getattr(widget, name).value = value
    widget.run()
    qtbot.waitUntil(lambda: widget._status.value.startswith(("done", "error", "cancelled")), timeout=WAIT_MS)
    return widget


def test_sliders_rethreshold_the_kept_probabilities_without_the_network(viewer, qtbot, tiny_model):
    image, _ = nuclei_image(size=(64, 64), seed=5)
    widget = _segment(viewer, qtbot, tiny_model, image)
    assert widget._status.value.startswith("done: tiny.pth, threshold"), widget._status.value
    model = paulow.load_model(tiny_model)
    first = model.predict(image)
    assert widget._threshold.value == pytest.approx(first.threshold, abs=0.01) and widget._threshold.enabled
    ran = widget.worker
    layer = viewer.layers["cells mask"]
    widget._threshold.value = 0.9
    expected = model.predict(image, threshold=0.9).mask
    assert np.array_equal(layer.data[0] if layer.data.ndim == 3 else layer.data, expected)
    widget._min_size.value = 30
    expected = model.predict(image, threshold=0.9, min_size=30).mask
    assert np.array_equal(layer.data.reshape(64, 64), expected)
    assert widget.worker is ran  # no new job: the network did not run again
    assert widget._status.value == "done: re-thresholded, threshold 0.90, smallest object 30 px"
    assert [lay.name for lay in viewer.layers] == ["cells", "cells mask"]  # the same layer, updated


def test_model_picker_lists_saved_models_with_classes_target_tile_and_scores(viewer, tmp_path, tiny_model):
    from paulow.napari.widgets import SegmentWidget

    for name in ("first", "second"):
        shutil.copy(tiny_model, tmp_path / f"{name}.pth")
    (tmp_path / "notes.txt").write_text("not a model")
    widget = SegmentWidget(viewer)
    widget._model.value = tmp_path / "first.pth"
    rows = paulow.api.list_models(tmp_path)
    assert sorted(r["name"] for r in rows) == ["first", "second"]
    meta = paulow.load_model(tiny_model).meta
    target = "boundary (background / interior / boundary)" if meta.get("boundary_target") else "binary"
    combo = widget._models.native
    labels = [combo.itemText(i) for i in range(combo.count())]
    assert len(labels) == 2 and all(f": {target}, " in label and "tile 256 px" in label for label in labels)
    assert widget._info.value.startswith(f"first: {target}, {meta.get('classes', 1)} class(es)")
    assert f"threshold {meta['threshold']:.2f}" in widget._info.value
    widget._models.value = tmp_path / "second.pth"  # picking a listed model makes it the model file
    assert widget._model.value == tmp_path / "second.pth"


def test_segment_progress_counts_tiles_and_cancel_stops_at_the_next_batch(tiny_model):
    from paulow.napari import jobs

    image = np.tile(nuclei_image(size=(64, 64), seed=5)[0], (9, 9))  # 576 px: 4 x 4 tiles of 256
    updates = list(jobs.segment(tiny_model, image, False))  # runs to the end
    tiles = [u for u in updates if "tiles" in u.message]
    assert [(u.done, u.total) for u in tiles] == [(8, 16), (16, 16)]  # batches of 8 tiles
    assert tiles[-1].message == "page 1/1: 16/16 tiles"
    stop = threading.Event()
    job = jobs.segment(tiny_model, image, False, cancel=stop)
    next(job)  # loading
    stop.set()
    with pytest.raises(Cancelled, match="segmentation cancelled: nothing was added or saved"):
        list(job)


def test_the_cancel_button_stops_segmenting_and_adds_nothing(viewer, qtbot, tiny_model):
    from paulow.napari.widgets import SegmentWidget

    image = np.tile(nuclei_image(size=(64, 64), seed=5)[0], (9, 9))
    viewer.add_image(image, name="big")
    widget = SegmentWidget(viewer)
    widget._model.value = tiny_model
    widget.run()
    assert widget._cancel.enabled
    widget.cancel()
    qtbot.waitUntil(lambda: widget._status.value.startswith(("done", "error", "cancelled")), timeout=WAIT_MS)
    assert widget._status.value == "cancelled: segmentation cancelled: nothing was added or saved"
    assert [layer.name for layer in viewer.layers] == ["big"]
    qtbot.waitUntil(lambda: not widget._cancel.enabled, timeout=WAIT_MS)


def test_training_progress_is_the_time_spent_of_the_limit():
    import time

    from paulow.napari.jobs import Update, _progress

    started = time.monotonic() - 30.4
    assert _progress(Update("epoch 3/40", 3, 40), started, 120.0) == Update("epoch 3/40", 30, 120)
    assert _progress(Update("x", 3, 40), started - 500, 120.0) == Update("x", 120, 120)  # never past the end
    assert _progress(Update("x", 3, 40), started, 0.0) == Update("x", 3, 40)  # no limit: epochs


def test_cancelled_training_saves_nothing(tmp_path):
    from paulow.napari import jobs

    image, mask = nuclei_image(size=(64, 64), seed=7)
    stop = threading.Event()
    out = tmp_path / "never.pth"
    job = jobs.train(
        [image[None]] * 2,
        [mask] * 2,
        out,
        time_limit=0,
        epochs=50,
        width=8,
        patch=32,
        overlap=16,
        folds=1,
        test_fraction=0.0,
        cancel=stop,
        **FAST,
    )
    first = next(job)
    assert first.message == "training: 2 image(s)"
    stop.set()
    with pytest.raises(Cancelled, match="training cancelled"):
        list(job)
    assert not out.exists()


def test_a_finetuned_model_worse_than_its_parent_is_reported_and_not_made_current(
    viewer, tmp_path, tiny_model
):
    from paulow.napari.jobs import Trained
    from paulow.napari.widgets import SegmentWidget, TrainWidget

    segment, train = SegmentWidget(viewer), TrainWidget(viewer)
    parent = shutil.copy(tiny_model, tmp_path / "parent.pth")
    segment._model.value = parent
    worse = shutil.copy(tiny_model, tmp_path / "worse.pth")
    train._saved(Trained(worse, finetuned_dice=0.61, parent_dice=0.70))
    assert train._status.value == (
        f"saved {worse}, but it scores worse than its parent on the held-out pixels "
        "(Dice 0.610 < 0.700): the parent stays the current model; choose this one "
        "in Segment's model list to use it anyway"
    )
    assert train._progress.value == train._progress.max == 1
    assert segment._model.value == parent  # not made current ...
    assert worse in segment._models.choices  # ... but offered
    better = shutil.copy(tiny_model, tmp_path / "better.pth")
    train._saved(Trained(better, finetuned_dice=0.8, parent_dice=0.7))
    assert train._status.value == f"saved {better} (held-out Dice 0.800, parent 0.700)"
    assert segment._model.value == better  # the new model is the Segment widget's current one


def test_sparse_corrections_reach_finetune_with_their_painted_pixels(
    viewer, tmp_path, tiny_model, monkeypatch
):
    from types import SimpleNamespace

    from paulow.napari import jobs
    from paulow.napari.widgets import TrainWidget

    image, _ = nuclei_image(size=(64, 64), seed=7)
    strokes = np.zeros((64, 64), np.uint8)
    strokes[5:7, :] = 1  # background strokes across the top tiles
    strokes[40:44, 10:14] = 2  # an object in the bottom-left tile
    viewer.add_image(image, name="cells")
    viewer.add_labels(strokes, name="corrections")
    widget = TrainWidget(viewer)
    assert widget._convention.native.isHidden()  # shown with the sparse check box only
    widget._sparse.value = True
    assert not widget._convention.native.isHidden() and widget._convention.value == (
        "label 1 = background, labels 2, 3, ... = objects (each label its own object); 0 = not labelled"
    )
    widget._finetune.value, widget._parent_in.value = True, tiny_model
    widget._out.value, widget._tiles.value = tmp_path / "tuned.pth", 2
    started = {}

    def start(self, job, *args, **kwargs):  # record what the job would be given; run nothing
        started.update(args=args, **kwargs)
        self.worker = SimpleNamespace(finished=SimpleNamespace(connect=lambda _: None))

    monkeypatch.setattr(TrainWidget, "_start", start)
    widget.run()
    images, masks, _ = started["args"]
    marks = started["labelled"]
    assert len(images) == len(masks) == len(marks) == 3  # the bottom-right tile holds no stroke
    assert [int(m.sum()) for m in marks] == [64, 64, 16] and int(masks[2].sum()) == 16
    assert not any(m.any() for m in masks[:2])  # the painted background is background
    seen = {}

    def finetune(parent, images, masks, **kwargs):
        seen.update(kwargs)
        return SimpleNamespace(meta={}, save=lambda out: out)

    monkeypatch.setattr(paulow.api, "finetune", finetune)
    job = jobs.train(images, masks, tmp_path / "t.pth", base=tiny_model, labelled=marks, time_limit=0)
    list(job)
    assert seen["labelled"] is marks  # the painted pixels go through to paulow.finetune
    viewer.layers["corrections"].data = strokes[:32]
    widget.run()
    assert widget._status.value.startswith("error: the labels layer is (32, 64)")
    strokes[:] = 0
    strokes[5:7, :20] = 1  # one tile painted: none left to hold out
    viewer.layers["corrections"].data = strokes
    widget.run()
    assert widget._status.value == (
        "error: fine-tuning holds part of the image out: paint in at least two of the image's 2x2 tiles"
    )
    viewer.layers["corrections"].data = np.zeros((64, 64), np.uint8)
    widget.run()
    assert widget._status.value == "error: the labels layer 'corrections' is empty: paint some objects first"
