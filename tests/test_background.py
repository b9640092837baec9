"""Background I/O (`paulow.background`, `paulow.multi_file`): the next file read while the current one
is predicted, the previous one written; results, files and order equal the sequential loop's."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from paulow import io
from paulow.api import Model
from paulow.background import BackgroundWriter, read_ahead
from paulow.errors import UnreadableImageError


def test_read_ahead_yields_in_order_and_loads_one_item_ahead():
    loaded: list[int] = []
    seen = []
    for item, future in read_ahead(range(5), lambda i: loaded.append(i) or i * 10):
        assert future.result() == item * 10
        seen.append(item)
        assert set(loaded) <= set(range(item + 2))  # never more than one item ahead
    assert seen == [0, 1, 2, 3, 4] and loaded == [0, 1, 2, 3, 4]


def test_the_next_item_loads_while_the_caller_works_on_the_current_one():
    second_loading = threading.Event()

    def load(i: int) -> int:
        if i == 1:
            second_loading.set()
        return i

    for item, _future in read_ahead([0, 1], load):
        if item == 0:  # item 1 is loaded in the background before item 0's work ends
            assert second_loading.wait(timeout=10)


def test_a_load_error_is_raised_for_its_item_only():
    def load(i: int) -> int:
        if i == 1:
            raise UnreadableImageError("b.tif: not an image - re-export it")
        return i

    outcomes = []
    for _item, future in read_ahead([0, 1, 2], load):
        try:
            outcomes.append(future.result())
        except UnreadableImageError as err:
            outcomes.append(str(err))
    assert outcomes == [0, "b.tif: not an image - re-export it", 2]


def test_background_writer_runs_writes_in_order_and_raises_the_first_failure_at_close():
    done: list[int] = []
    with BackgroundWriter() as writer:
        for i in range(4):
            writer.submit(done.append, i)
    assert done == [0, 1, 2, 3]

    def fail() -> None:
        raise OSError("disk full")

    writer = BackgroundWriter()
    writer.submit(fail).exception(timeout=10)  # wait until it has failed
    with pytest.raises(OSError, match="disk full"):
        writer.submit(done.append, 4)  # the next write is refused
    with pytest.raises(OSError, match="disk full"):
        writer.close()
    assert done == [0, 1, 2, 3]


def _model() -> Model:
    from paulow.models import build_model

    torch.manual_seed(0)
    net = build_model("paulow_attention_unet", in_channels=1, classes=1, width=4, depth=2).eval()
    meta = {
        "arch": "paulow_attention_unet",
        "in_channels": 1,
        "classes": 1,
        "patch": 32,
        "threshold": 0.5,
        "normalisation": {"method": "percentile", "low": 1.0, "high": 99.8},
    }
    return Model([net], meta)


def _files(folder):
    rng = np.random.default_rng(1)
    folder.mkdir()
    paths = [
        io.write_tiff(folder / "img2.tif", rng.integers(0, 255, (40, 37), dtype=np.uint8)),
        io.write_tiff(folder / "img10.tif", rng.integers(0, 4000, (3, 33, 50), dtype=np.uint16)),
        io.write_tiff(folder / "img1.tif", rng.integers(0, 255, (20, 20), dtype=np.uint8)),
    ]
    return paths


def test_predict_files_equals_predict_stack_file_by_file_in_the_given_order(tmp_path):
    model, paths = _model(), _files(tmp_path / "in")
    options = {"tile": 32, "batch_size": 4}
    got = list(model.predict_files(paths, **options))
    assert [path for path, _ in got] == paths
    for (_path, preds), expected in zip(got, [model.predict_stack(p, **options) for p in paths]):
        assert len(preds) == len(expected)
        for a, b in zip(preds, expected):
            np.testing.assert_array_equal(a.probabilities, b.probabilities)
            np.testing.assert_array_equal(a.mask, b.mask)
            np.testing.assert_array_equal(a.image, b.image)


def test_segment_files_writes_the_sequential_masks_without_overwriting(tmp_path):
    model, paths = _model(), _files(tmp_path / "in")
    out = tmp_path / "out"
    out.mkdir()
    (out / "img10_mask.tif").write_bytes(b"the user's file")
    written = model.segment_files(paths + [paths[0]], out, tile=32)
    assert [p.name for p in written] == [
        "img2_mask.tif",
        "img10_mask_2.tif",
        "img1_mask.tif",
        "img2_mask_2.tif",
    ]
    assert (out / "img10_mask.tif").read_bytes() == b"the user's file"
    for path, mask_path in zip(paths + [paths[0]], written):
        expected = np.stack([p.mask for p in model.predict_stack(path, tile=32)])
        np.testing.assert_array_equal(io.read_mask(mask_path), io.binary_to_uint8(expected))


def test_an_unreadable_file_stops_predict_files_at_that_file(tmp_path):
    model, paths = _model(), _files(tmp_path / "in")
    bad = tmp_path / "in" / "broken.tif"
    bad.write_bytes(b"not a tiff")
    names = []
    with pytest.raises(UnreadableImageError):
        for path, _ in model.predict_files([paths[0], bad, paths[1]], tile=32):
            names.append(path.name)
    assert names == ["img2.tif"]
