"""Chunked runs on files: outputs equal `Model.predict`, OME-Zarr readable, dask clusters, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import zarr
from torch import nn

from paulow.api import Model
from paulow.errors import UnreadableImageError, UsageError

META = {
    "in_channels": 1,
    "classes": 1,
    "patch": 32,
    "threshold": 0.5,
    "overlap": 0.5,
    "normalisation": {"method": "percentile", "low": 1.0, "high": 99.8},
}


def blob_model(seed: int = 0) -> Model:
    """A tiny fixed network that finds bright blobs: logits = smoothed (input - 0.5) x 8."""
    torch.manual_seed(seed)
    net = nn.Conv2d(1, 1, 3, padding=1)
    with torch.no_grad():
        net.weight.fill_(8 / 9)
        net.bias.fill_(-4.0)
    return Model([net], dict(META))


def blob_image(height: int = 150, width: int = 170, seed: int = 0) -> np.ndarray:
    """uint16 noise with bright discs and bars that cross 48 px chunk seams and corners."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 8000, (height, width)).astype(np.uint16)
    yy, xx = np.mgrid[:height, :width]
    for cy, cx, r in ((48, 48, 7), (96, 30, 5), (20, 100, 9), (120, 140, 6), (70, 75, 3)):
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 60000
    image[100:104, 40:160] = 60000  # a bar over three chunks
    return image


def run(model: Model, path: Path, out: Path, **options) -> dict:
    options.setdefault("scheduler", "sync")
    return model.predict_file(path, out, chunk=48, tile=32, **options)


def read_tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def tiled_tiff(tmp_path: Path) -> Path:
    path = tmp_path / "scan.ome.tif"
    tifffile.imwrite(path, blob_image(), tile=(32, 32), ome=True)
    return path


def test_ome_zarr_output_equals_model_predict(tiled_tiff: Path, tmp_path: Path):
    model = blob_model()
    record = run(model, tiled_tiff, tmp_path / "out", format="ome-zarr")
    expected = model.predict(blob_image(), tile=32)
    group = zarr.open_group(tmp_path / "out" / "scan.ome.zarr", mode="r")
    assert np.array_equal(group["labels/mask/0"][:], expected.mask)
    probability = np.round(expected.probabilities * 255).astype(np.uint8)
    assert np.abs(group["0"][:].astype(int) - probability).max() <= 1  # float summation order only
    objects, labels = group["labels/objects/0"][:], expected.labels()
    assert objects.max() == labels.max() == record["objects"][0] == 6
    pairs = {(int(a), int(b)) for a, b in zip(objects[labels > 0], labels[labels > 0])}
    assert len(pairs) == 6 and np.array_equal(objects > 0, labels > 0)  # one-to-one
    levels = group["labels/objects"].attrs["multiscales"][0]["datasets"]
    assert [group[f"labels/objects/{d['path']}"].shape for d in levels] == [(150, 170), (75, 85), (38, 43)]
    assert np.array_equal(group["labels/objects/1"][:], objects[::2, ::2])
    assert record["complete"] and record["chunking"]["grid"] == [4, 4]
    import csv

    with open(tmp_path / "out" / "scan_objects.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    box = ("bbox_min_row", "bbox_min_col", "bbox_max_row", "bbox_max_col")
    wanted = {tuple(row[k] for k in box): row for row in expected.objects()}
    assert len(rows) == 6 and {tuple(int(row[k]) for k in box) for row in rows} == set(wanted)
    for row in rows:  # each object's chunk parts (objects over up to four chunks) sum to the whole
        whole = wanted[tuple(int(row[k]) for k in box)]
        y0, x0, y1, x1 = (int(row[k]) for k in box)
        assert int(row["area_px"]) == whole["area_px"] == np.count_nonzero(objects == int(row["label"]))
        assert np.count_nonzero(objects[y0:y1, x0:x1] == int(row["label"])) == whole["area_px"]
        for key in ("centroid_y", "centroid_x", "mean_intensity"):
            assert float(row[key]) == pytest.approx(whole[key], rel=1e-9)
    assert record["normalisation"][0]["from"] == "whole page"
    assert not any(p.name.startswith(".") for p in (tmp_path / "out").iterdir())  # work folder removed


def test_tiff_output_and_a_stack(tmp_path: Path):
    stack = np.stack([blob_image(seed=1), blob_image(seed=2)[::-1]])
    tifffile.imwrite(tmp_path / "stack.tif", stack, imagej=True, metadata={"axes": "ZYX"})
    model = blob_model()
    record = run(model, tmp_path / "stack.tif", tmp_path / "out")
    assert [Path(p).name for p in record["outputs"]] == [
        "stack_mask.tif",
        "stack_labels.tif",
        "stack_objects.csv",
    ]
    header = (tmp_path / "out" / "stack_objects.csv").read_text().splitlines()[0]
    assert header.startswith("page,label,area_px,centroid_y,centroid_x,bbox_min_row")
    mask = tifffile.imread(tmp_path / "out" / "stack_mask.tif")
    expected = model.predict_stack(stack[:, None], tile=32)
    assert mask.shape == (2, 150, 170) and mask.dtype == np.uint8
    for page, pred in enumerate(expected):
        assert np.array_equal(mask[page], pred.mask * 255)
    labels = tifffile.imread(tmp_path / "out" / "stack_labels.tif")
    assert labels.dtype == np.uint16 and [labels[p].max() for p in range(2)] == record["objects"]


def test_ome_zarr_input_and_napari_opens_the_labels(tiled_tiff: Path, tmp_path: Path):
    first = run(blob_model(), tiled_tiff, tmp_path / "a", format="ome-zarr")
    source = Path(first["outputs"][0])  # an OME-Zarr image (the probability) as input
    record = run(blob_model(), source, tmp_path / "b")
    assert record["settings"]["format"] == "ome-zarr"  # default for zarr inputs
    reader = pytest.importorskip("napari_ome_zarr", reason="napari-ome-zarr comes with the napari extra")
    napari_get_reader = reader.napari_get_reader

    root = str(tmp_path / "b" / "scan.ome.zarr")
    layers = napari_get_reader(root)(root)
    assert [kind for _, _, kind in layers] == ["image", "labels", "labels"]
    assert [attrs["name"].split("/")[-1] for _, attrs, _ in layers[1:]] == ["mask", "objects"]
    objects = layers[2][0]
    assert [tuple(level.shape) for level in objects] == [(150, 170), (75, 85), (38, 43)]
    assert np.array_equal(np.asarray(objects[0]), zarr.open_array(f"{root}/labels/objects/0", mode="r")[:])


def test_a_killed_run_resumes_and_gives_identical_bytes(tiled_tiff: Path, tmp_path: Path, monkeypatch):
    from paulow import dask_runner

    run(blob_model(), tiled_tiff, tmp_path / "whole", format="ome-zarr")
    original = dask_runner.TaskRunner.run
    calls = {"n": 0}

    def dies_after_seven(self, fn, jobs, done):
        def counted():
            calls["n"] += 1
            if calls["n"] == 7:
                raise KeyboardInterrupt
            done()

        return original(self, fn, jobs, counted)

    monkeypatch.setattr(dask_runner.TaskRunner, "run", dies_after_seven)
    with pytest.raises(KeyboardInterrupt):
        run(blob_model(), tiled_tiff, tmp_path / "killed", format="ome-zarr")
    monkeypatch.setattr(dask_runner.TaskRunner, "run", original)
    work = tmp_path / "killed" / ".scan.paulow-work" / "done" / "predict"
    assert len(list(work.iterdir())) == 7  # seven chunks were finished before the kill
    record = run(blob_model(), tiled_tiff, tmp_path / "killed", format="ome-zarr")
    assert record["resumed"] and record["complete"]
    assert read_tree(tmp_path / "killed" / "scan.ome.zarr") == read_tree(tmp_path / "whole" / "scan.ome.zarr")
    again = run(blob_model(), tiled_tiff, tmp_path / "killed", format="ome-zarr")  # done: nothing rewritten
    assert again["finished"] == record["finished"]


def test_other_settings_never_overwrite_earlier_outputs(tiled_tiff: Path, tmp_path: Path):
    run(blob_model(), tiled_tiff, tmp_path / "out", format="ome-zarr")
    with pytest.raises(
        UsageError, match="come from a run with other settings - choose another --output folder"
    ):
        run(blob_model(), tiled_tiff, tmp_path / "out", format="ome-zarr", threshold=0.7)


def test_two_worker_local_cluster_and_a_scheduler_address(tiled_tiff: Path, tmp_path: Path):
    from distributed import Client, LocalCluster

    run(blob_model(), tiled_tiff, tmp_path / "sync", format="ome-zarr")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            record = run(blob_model(), tiled_tiff, tmp_path / "client", format="ome-zarr", scheduler=client)
        by_address = run(
            blob_model(),
            tiled_tiff,
            tmp_path / "address",
            format="ome-zarr",
            scheduler=cluster.scheduler_address,
        )
    assert len(record["workers"]) == len(by_address["workers"]) == 2
    expected = read_tree(tmp_path / "sync" / "scan.ome.zarr")
    assert read_tree(tmp_path / "client" / "scan.ome.zarr") == expected
    assert read_tree(tmp_path / "address" / "scan.ome.zarr") == expected


def test_embedded_local_cluster_is_the_default(tiled_tiff: Path, tmp_path: Path):
    record = blob_model().predict_file(tiled_tiff, tmp_path / "out", chunk=96, tile=32, format="ome-zarr")
    assert len(record["workers"]) == 1 and record["workers"][0].startswith("inproc://")


def test_large_untiled_tiff_is_one_clear_error(tmp_path: Path, monkeypatch):
    from paulow import lazy

    tifffile.imwrite(tmp_path / "flat.tif", blob_image(), rowsperstrip=150)
    monkeypatch.setattr(lazy, "UNTILED_LIMIT_BYTES", 1000)
    with pytest.raises(
        UnreadableImageError,
        match=r"flat.tif: an untiled TIFF page of 0.0 GiB cannot be read "
        r"in pieces - convert it to a tiled TIFF",
    ):
        run(blob_model(), tmp_path / "flat.tif", tmp_path / "out")


def test_large_pages_take_statistics_from_a_fixed_sample(tiled_tiff: Path, tmp_path: Path, monkeypatch):
    from paulow import lazy

    monkeypatch.setattr(lazy, "EXACT_STATS_PIXELS", 100)
    monkeypatch.setattr(lazy, "SAMPLE_BLOCK", 32)
    record = run(blob_model(), tiled_tiff, tmp_path / "out", format="ome-zarr")
    entry = record["normalisation"][0]
    assert entry["from"] == "8x8 blocks of 32 px"
    image = blob_image()

    def starts(n: int) -> list[int]:
        return sorted({round(i * (n - 32) / 7) for i in range(8)})

    sample = np.concatenate([image[y : y + 32, x : x + 32].ravel() for y in starts(150) for x in starts(170)])
    assert entry["low_high"][0] == pytest.approx(list(np.percentile(sample.astype(np.float32), [1.0, 99.8])))
    assert json.loads((tmp_path / "out" / "scan.paulow-run.json").read_text())["complete"]


def test_multi_class_model_writes_class_indices_and_no_objects(tiled_tiff: Path, tmp_path: Path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1))
    model = Model([net], {**META, "classes": 3, "activation": "softmax"})
    record = run(model, tiled_tiff, tmp_path / "out", format="ome-zarr")
    group = zarr.open_group(tmp_path / "out" / "scan.ome.zarr", mode="r")
    expected = model.predict(blob_image(), tile=32)
    assert np.array_equal(group["labels/mask/0"][:], expected.mask) and expected.mask.max() == 2
    assert group["0"].shape == (3, 150, 170) and "objects" not in group["labels"]
    assert record["objects"] is None and group["labels"].attrs["labels"] == ["mask"]
