"""`use_model.py` end to end: piped prompt answers, stacks, outputs never overwritten, safe clearing."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import tifffile
from _workflow import files, run_script

from paulow import io
from paulow.checkpoint import load_checkpoint
from paulow.synthetic import make_stack, nuclei_image


def _put(folder, name, array, **kw):
    tifffile.imwrite(folder / name, array, **kw)


def test_piped_answer_segments_stacks_and_clears_only_processed_inputs(workspace_with_model):
    ws = workspace_with_model
    image, _ = nuclei_image((70, 90), seed=4)
    _put(ws.use_inputs, "single.tif", image, resolution=(2.0, 2.0), imagej=True, metadata={"unit": "micron"})
    stack, _ = make_stack("nuclei", 3, (64, 64), seed=8, bit_depth=16)
    _put(ws.use_inputs, "stack.tif", stack, imagej=True, metadata={"axes": "ZYX"})
    (ws.use_inputs / "broken.tif").write_bytes(b"II*\x00 not really a tiff")
    done = run_script("use_model.py", "--root", str(ws.root), stdin="7\n1\n")
    assert "please answer a number from 1 to 1" in done.stdout  # a bad answer asks again
    assert done.returncode == 1, done.stderr  # one file failed
    assert "broken.tif" in done.stdout + done.stderr
    assert files(ws.use_inputs) == ["broken.tif"]  # the corrupt file is kept, the others cleared
    single = io.read_image(ws.use_outputs / "single_mask.tif")
    assert single.data.shape == (1, 1, 70, 90) and single.data.dtype == np.uint8
    assert set(np.unique(single.data)) <= {0, 255} and single.data.max() == 255
    assert single.unit == "micron" and single.resolution == (2.0, 2.0)
    masks = io.read_mask(ws.use_outputs / "stack_mask.tif")
    assert masks.shape == (3, 64, 64)
    # the run record traces every mask to its input and to the exact model file
    (record_path,) = (ws.use_outputs / "runs").iterdir()
    record = json.loads(record_path.read_text())
    model = ws.models / "t.pth"
    assert record["model"]["file"] == "t.pth"
    assert record["model"]["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert record["threshold"] == load_checkpoint(model).meta["threshold"]
    by_input = {f["input"]: f for f in record["files"]}
    assert (
        by_input["single.tif"]["outputs"] == ["single_mask.tif"] and by_input["single.tif"]["error"] is None
    )
    assert by_input["stack.tif"]["outputs"] == ["stack_mask.tif"]
    assert by_input["broken.tif"]["outputs"] == [] and by_input["broken.tif"]["error"]
    assert str(record_path) in done.stdout  # listed with the files written


def test_results_are_never_overwritten(workspace_with_model):
    ws = workspace_with_model
    image, _ = nuclei_image((48, 48), seed=1)
    for _ in range(2):
        _put(ws.use_inputs, "a.tif", image)
        done = run_script("use_model.py", "--root", str(ws.root), "--model", "t", "--yes")
        assert done.returncode == 0, done.stderr
    assert files(ws.use_outputs) == ["a_mask.tif", "a_mask_2.tif", "runs"]
    assert len(files(ws.use_outputs / "runs")) == 2  # one record per run, none overwritten
    assert "a_mask_2.tif" in done.stdout  # the run summary says where it wrote


def test_options_write_probabilities_overlays_labels_and_tables(workspace_with_model):
    ws = workspace_with_model
    image, _ = nuclei_image((64, 64), seed=2)
    _put(ws.use_inputs, "n.tif", image)
    done = run_script(
        "use_model.py",
        "--root",
        str(ws.root),
        "--model",
        "t.pth",
        "--yes",
        "--keep-inputs",
        "--save-prob",
        "--overlay",
        "--instances",
        "--tta",
        "--save-attention",
        "--rois",
    )
    assert done.returncode == 0, done.stderr
    out = files(ws.use_outputs)
    assert {"n_mask.tif", "n_prob.tif", "n_overlay.png", "n_labels.tif", "objects.csv", "summary.csv"} <= set(
        out
    )
    # one heat map (PNG over the image) and one float map (TIFF) per gate (depth 4: 3 gates)
    assert sorted(n for n in out if n.startswith("n_attention")) == [
        f"n_attention{level}.{ext}" for level in (1, 2, 3) for ext in ("png", "tif")
    ]
    heat = io.read_image(ws.use_outputs / "n_attention3.png").data
    assert heat.shape == (1, 3, 64, 64) and heat.dtype == np.uint8  # colour
    raw = io.read_image(ws.use_outputs / "n_attention3.tif").data
    assert raw.dtype == np.float32 and 0.0 <= raw.min() and raw.max() <= 1.0
    assert files(ws.use_inputs) == ["n.tif"]  # --keep-inputs
    prob = io.read_image(ws.use_outputs / "n_prob.tif").data
    assert prob.dtype == np.float32 and 0.0 <= prob.min() and prob.max() <= 1.0
    labels = io.read_mask(ws.use_outputs / "n_labels.tif")
    rows = (ws.use_outputs / "objects.csv").read_text().splitlines()
    assert len(rows) - 1 == int(labels.max())  # one row per object
    from roifile import roiread

    rois = roiread(ws.use_outputs / "n_rois.zip")  # Fiji's ROI Manager opens this zip
    assert [r.name for r in rois] == [f"object-{i}" for i in range(1, int(labels.max()) + 1)]


def test_rgb_input_on_a_greyscale_model_is_converted_and_logged(workspace_with_model):
    ws = workspace_with_model
    grey, _ = nuclei_image((40, 40), seed=3)
    _put(ws.use_inputs, "rgb.tif", np.stack([grey] * 3, axis=-1), photometric="rgb")
    done = run_script("use_model.py", "--root", str(ws.root), "--model", "t", "--yes")
    assert done.returncode == 0, done.stderr
    assert "converted to grey" in done.stderr
    assert io.read_mask(ws.use_outputs / "rgb_mask.tif").shape == (1, 40, 40)


def test_unknown_model_and_empty_folder_are_clear_errors(workspace_with_model):
    ws = workspace_with_model
    done = run_script("use_model.py", "--root", str(ws.root), "--model", "nope", "--yes")
    assert done.returncode == 2 and "no model 'nope'" in done.stderr and "Traceback" not in done.stderr
    done = run_script("use_model.py", "--root", str(ws.root), "--model", "t", "--yes")
    assert done.returncode == 2 and "no images in" in done.stderr


def test_compile_gives_the_same_masks(workspace_with_model):
    ws = workspace_with_model
    image, _ = nuclei_image((80, 70), seed=6)
    for flags in ((), ("--compile",)):
        _put(ws.use_inputs, "c.tif", image)
        done = run_script(
            "use_model.py", "--root", str(ws.root), "--model", "t", "--yes", "--tile", "64", *flags
        )
        assert done.returncode == 0, done.stderr
    assert "--compile: the network compiles on the first batch" in done.stdout
    assert "compiling the network failed" not in done.stdout + done.stderr  # compiled, no silent fallback
    plain, compiled = (io.read_mask(ws.use_outputs / n) for n in ("c_mask.tif", "c_mask_2.tif"))
    # the same network up to float rounding: at most a few pixels on the threshold may differ
    assert plain.shape == compiled.shape == (1, 80, 70)
    assert np.count_nonzero(plain != compiled) <= 3
    (record,) = [p for p in (ws.use_outputs / "runs").iterdir() if '"compile": true' in p.read_text()]
    assert record.is_file()


def test_min_size_removes_small_objects_from_masks_and_labels(workspace_with_model):
    ws = workspace_with_model
    meta = load_checkpoint(ws.models / "t.pth").meta
    assert isinstance(meta["min_object_px"], int) and meta["min_object_px"] >= 0  # tuned in training
    image, _ = nuclei_image((64, 64), seed=2)
    _put(ws.use_inputs, "n.tif", image)
    done = run_script(
        "use_model.py",
        "--root",
        str(ws.root),
        "--model",
        "t",
        "--yes",
        "--keep-inputs",
        "--save-prob",
        "--instances",
        "--min-size",
        "0",
    )
    assert done.returncode == 0, done.stderr
    prob = io.read_image(ws.use_outputs / "n_prob.tif").data[0, 0]
    kept = io.read_mask(ws.use_outputs / "n_mask.tif")[0]
    assert np.array_equal(kept > 0, prob > meta["threshold"])  # 0: every object stays
    done = run_script(
        "use_model.py",
        "--root",
        str(ws.root),
        "--model",
        "t",
        "--yes",
        "--keep-inputs",
        "--instances",
        "--min-size",
        "4097",
    )  # more than the whole 64 x 64 image
    assert done.returncode == 0, done.stderr
    assert not io.read_mask(ws.use_outputs / "n_mask_2.tif").any()
    assert not io.read_mask(ws.use_outputs / "n_labels_2.tif").any()
    done = run_script("use_model.py", "--root", str(ws.root), "--model", "t", "--yes", "--min-size", "-1")
    assert done.returncode != 0 and "'-1' is not a whole number >= 0" in done.stderr
