"""Boundary models' instances across chunks: the chunked seeded watershed equals the whole image's."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import zarr
from scipy import ndimage
from torch import nn

from paulow.api import Model
from paulow.boundaries import boundary_target, instances_from_boundaries
from paulow.chunk_watershed import default_halo, labels_in_chunks
from paulow.object_size import largest_object, remove_small


def disks(shape: tuple[int, int], centres: list[tuple[int, int, int]]) -> np.ndarray:
    """Instance labels of discs (cy, cx, r); a later disc does not overwrite an earlier one."""
    labels = np.zeros(shape, dtype=np.int32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for i, (cy, cx, r) in enumerate(centres, start=1):
        labels[((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & (labels == 0)] = i
    return labels


def probabilities(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """(3, H, W) probabilities of the 1 px boundary target of `labels`, 0.9 on the true class, with
    noise so that the watershed meets no exactly equal values."""
    target = boundary_target(labels, 1)
    probs = np.full((3, *labels.shape), 0.05, dtype=np.float32)
    for k in range(3):
        probs[k][target == k] = 0.9
    return probs + np.random.default_rng(seed).uniform(0, 0.04, probs.shape).astype(np.float32)


def whole_image(probs: np.ndarray, min_size: int = 0) -> np.ndarray:
    return remove_small(instances_from_boundaries(probs, threshold=0.5), min_size)


def across_seams() -> np.ndarray:
    """Touching objects over the seams of a 20 px grid: discs across x = 20 and y = 20 meeting near
    the corner (20, 20), and two squares in diagonal contact only, across the corner (40, 40)."""
    labels = disks((60, 60), [(20, 14, 5), (20, 25, 6), (9, 9, 5), (9, 20, 5), (52, 8, 5), (47, 22, 6)])
    labels[34:40, 34:40] = 7
    labels[40:46, 40:46] = 8
    return labels


def test_the_layout_touches_across_seams_and_the_corner_diagonally():
    labels = across_seams()
    assert labels[39, 39] == 7 and labels[40, 40] == 8  # diagonal contact across the chunk corner
    assert labels[39, 40] == labels[40, 39] == 0
    assert labels[20, 19] == 1 and labels[20, 20] == 2  # face contact across the seam x = 20


@pytest.mark.parametrize("chunk,halo", [(20, 14), (20, 40), (17, 14), (32, 14), (60, 1)])
def test_touching_objects_across_chunks_equal_the_whole_image_labels(chunk, halo):
    probs = probabilities(across_seams())
    expected = whole_image(probs)
    got, warning = labels_in_chunks(probs, chunk, halo)
    assert expected.max() == 8 and warning is None
    assert ndimage.label(expected > 0, structure=np.ones((3, 3)))[1] == 5  # three contacts split
    assert np.array_equal(got, expected)  # same partition and the same numbering
    pairs = {(int(a), int(b)) for a, b in zip(got[got > 0], expected[got > 0])}
    assert len(pairs) == 8  # one-to-one


def test_a_cluster_longer_than_the_halo_of_small_objects_needs_no_warning():
    # a confluent row of 12 touching discs (one 8-connected mask component 130 px long) over 7 chunks
    chain = [(15, 6 + 11 * i, 6) for i in range(12)] + [(27, 12 + 11 * i, 6) for i in range(11)]
    probs = probabilities(disks((40, 140), chain), seed=1)
    got, warning = labels_in_chunks(probs, 20, 14)
    assert warning is None
    assert np.array_equal(got, whole_image(probs)) and got.max() == 23


def test_an_object_larger_than_the_halo_is_a_warning_naming_the_fix():
    probs = probabilities(disks((80, 80), [(40, 40, 25), (10, 70, 4)]))
    _, warning = labels_in_chunks(probs, 20, 8)
    assert warning == (
        "image: objects reach the edge of the read region of 12 chunk(s) (--halo 8 px; the largest spans "
        "at least 34 px): they may be split or cut at chunk seams - rerun with --halo 35 or larger"
    )  # the disc (51 px) meets every chunk but the four corner ones; their regions are 36 px
    # seen whole by its own chunk (51 px) but still cut by others' regions, whose fix is unknown:
    # twice the halo
    _, warning = labels_in_chunks(probs, 20, 35)
    assert warning is not None and "at least 51 px" in warning and "rerun with --halo 70 or" in warning
    got, warning = labels_in_chunks(probs, 20, 52)
    assert warning is None and np.array_equal(got, whole_image(probs))


def test_empty_chunks_stay_empty_and_an_empty_image_has_no_objects():
    labels = np.zeros((60, 60), dtype=np.int32)
    labels[22:30, 22:30] = 1  # chunk (1, 1) only
    probs = probabilities(labels)
    got, warning = labels_in_chunks(probs, 20, 10)
    assert warning is None and got.max() == 1
    assert np.count_nonzero(got) == np.count_nonzero(whole_image(probs)) == 64
    outside = np.ones(got.shape, dtype=bool)
    outside[20:40, 20:40] = False
    assert not got[outside].any()
    nothing, warning = labels_in_chunks(probabilities(np.zeros((50, 30), dtype=np.int32)), 20, 10)
    assert not nothing.any() and nothing.shape == (50, 30) and warning is None


def test_smallest_object_size_counts_an_objects_whole_area_over_chunks():
    # disc areas: r=5 -> 81 px, r=3 -> 29 px; the small ones sit across seams
    probs = probabilities(disks((60, 60), [(20, 20, 3), (20, 27, 5), (40, 12, 3), (45, 45, 5)]))
    expected = whole_image(probs, min_size=40)
    got, _ = labels_in_chunks(probs, 20, 14, min_size=40)
    assert expected.max() == 2 and np.array_equal(got, expected)


def test_largest_object_and_the_default_halo():
    labels = disks((60, 60), [(20, 20, 5), (40, 40, 9)])
    assert largest_object([labels, np.zeros((5, 5), dtype=np.uint8)]) == 19
    assert largest_object([]) == 0
    assert default_halo({"largest_object_px": 19, "patch": 64}) == 20
    assert default_halo({"patch": 64}) == 65  # model files from before `largest_object_px`


# ---------------------------------------------------------------- through the chunked engine (files)
def boundary_model() -> Model:
    """A pointwise network whose 3 softmax channels follow the input scaled to 0..1 (scale255):
    about 0 -> background, 0.5 -> boundary, 1 -> interior."""
    net = nn.Conv2d(1, 3, 1)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([-12.0, 12.0, 0.0]).view(3, 1, 1, 1))
        net.bias.copy_(torch.tensor([3.0, -9.0, 0.0]))
    meta = {
        "in_channels": 1,
        "classes": 3,
        "activation": "softmax",
        "boundary_target": 1,
        "class_names": ["background", "interior", "boundary"],
        "patch": 32,
        "threshold": 0.5,
        "overlap": 0.5,
        "normalisation": {"method": "scale255"},
        "largest_object_px": 23,
    }
    return Model([net], meta)


def boundary_image() -> np.ndarray:
    """uint8 classes (0 background, 128 boundary, 255 interior, with noise): four touching discs
    around the corner (48, 48) of a 48 px grid, a pair across the seam x = 96, two squares in
    diagonal contact across the corner (96, 96), and a lone disc."""
    centres = [(42, 42, 6), (42, 54, 6), (54, 42, 6), (54, 54, 6), (20, 88, 8), (20, 104, 8), (130, 30, 9)]
    labels = disks((150, 170), centres)
    labels[88:96, 88:96], labels[96:104, 96:104] = 8, 9
    target = boundary_target(labels, 1)
    rng = np.random.default_rng(0)
    return (
        (np.array([0, 255, 128])[target] + rng.integers(-20, 21, target.shape)).clip(0, 255).astype(np.uint8)
    )


def test_a_chunked_run_of_a_boundary_model_equals_prediction_labels(tmp_path: Path, caplog):
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, boundary_image(), tile=(32, 32))
    model = boundary_model()
    expected = model.predict(boundary_image(), tile=32)
    labels = expected.labels()
    with caplog.at_level(logging.WARNING, logger="paulow"):
        record = model.predict_file(
            path, tmp_path / "out", chunk=48, tile=32, format="ome-zarr", scheduler="sync"
        )
    group = zarr.open_group(tmp_path / "out" / "cells.ome.zarr", mode="r")
    objects = group["labels/objects/0"][:]
    assert labels.max() == 9 and record["objects"] == [9]
    assert ndimage.label(expected.mask, structure=np.ones((3, 3)))[1] == 4  # touching ones split
    assert np.array_equal(objects, labels)
    assert np.array_equal(group["labels/mask/0"][:], expected.mask)
    assert record["settings"]["halo"] == 24 and record["chunking"]["watershed_halo_px"] == 24
    assert "warnings" not in record and not caplog.records
    rows = (tmp_path / "out" / "cells_objects.csv").read_text().splitlines()
    assert len(rows) == 1 + 9


def test_a_too_small_halo_is_a_warning_in_the_log_and_the_record(tmp_path: Path, caplog):
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, boundary_image(), tile=(32, 32))
    with caplog.at_level(logging.WARNING, logger="paulow"):
        record = boundary_model().predict_file(
            path, tmp_path / "out", chunk=48, tile=32, halo=3, format="ome-zarr", scheduler="sync"
        )
    (warning,) = record["warnings"]
    assert warning.startswith("cells.tif: ") and "--halo 3 px" in warning and "rerun with --halo" in warning
    assert [r.getMessage() for r in caplog.records] == [warning]


def test_a_run_killed_in_the_watershed_phase_resumes_to_identical_bytes(tmp_path: Path, monkeypatch):
    from paulow import dask_runner

    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, boundary_image(), tile=(32, 32))

    def run(out: str) -> dict:
        return boundary_model().predict_file(
            path, tmp_path / out, chunk=48, tile=32, format="ome-zarr", scheduler="sync"
        )

    run("whole")
    original, calls = dask_runner.TaskRunner.run, {"n": 0}

    def dies_in_the_watershed(self, fn, jobs, done):
        def counted():
            calls["n"] += 1
            if calls["n"] == 16 + 5:  # all 16 predictions, then 5 of the 16 watersheds
                raise KeyboardInterrupt
            done()

        return original(self, fn, jobs, counted)

    monkeypatch.setattr(dask_runner.TaskRunner, "run", dies_in_the_watershed)
    with pytest.raises(KeyboardInterrupt):
        run("killed")
    monkeypatch.setattr(dask_runner.TaskRunner, "run", original)
    assert len(list((tmp_path / "killed" / ".cells.paulow-work" / "done" / "split").iterdir())) == 5
    assert run("killed")["resumed"]
    whole, killed = (tmp_path / name / "cells.ome.zarr" for name in ("whole", "killed"))
    files = sorted(p.relative_to(whole) for p in whole.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(killed) for p in killed.rglob("*") if p.is_file())
    assert all((whole / f).read_bytes() == (killed / f).read_bytes() for f in files)
