"""bench/datasets.py (the fixed benchmark splits) and bench/quality.py's Otsu baseline."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import datasets as bench_datasets  # noqa: E402  (bench/datasets.py, not a package)
from quality import OtsuFit, apply_otsu, fit_otsu, parse_overrides  # noqa: E402

from paulow.errors import UsageError  # noqa: E402

requires_data = pytest.mark.skipif(
    not bench_datasets.DEFAULT_ROOT.is_dir(), reason=f"{bench_datasets.DEFAULT_ROOT} is absent (CI has it)"
)

ISBI = "isbi2012_em_cells"
EXPECTED = {
    ISBI: ([f"train-volume.tif#{p}" for p in range(20)], [f"train-volume.tif#{p}" for p in range(20, 30)]),
    "paulow_filaments": (
        [f"image{i}.tif#0" for i in range(1, 11)],
        [f"image{i}.tif#0" for i in range(11, 15)],
    ),
    "nih3t3_nuclei": (
        [f"dna-{n}.png#0" for n in (0, 1, 26, 27, 28, 29, 30, 31, 32, 33, 37, 40)],
        [f"dna-{n}.png#0" for n in (42, 44, 45, 46, 47, 49)],
    ),
}
MASK_OF = {
    ISBI: lambda name: "train-labels.tif",
    "paulow_filaments": lambda name: "Mask" + name[len("image") :],
    "nih3t3_nuclei": lambda name: name[len("dna-") :],
}


def test_bench_module_is_ours() -> None:
    assert Path(bench_datasets.__file__).resolve() == BENCH / "datasets.py"


def test_unknown_dataset_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown dataset 'cells'"):
        bench_datasets.load_dataset("cells")


@pytest.mark.shared_data
@requires_data
@pytest.mark.parametrize("name", bench_datasets.DATASETS)
def test_split_items_without_reading(name) -> None:
    train, test = bench_datasets.split_items(name)
    pages = {ISBI: ([tuple(range(20))], [tuple(range(20, 30))])}.get(name)
    if pages:
        assert [i.pages for i in train] == pages[0] and [i.pages for i in test] == pages[1]
        assert {i.image.name for i in train + test} == {"train-volume.tif"}
    else:
        names = [i.image.name + "#0" for i in train], [i.image.name + "#0" for i in test]
        assert names == EXPECTED[name]
        assert [i.mask.name for i in train + test] == [MASK_OF[name](i.image.name) for i in train + test]


@pytest.fixture(scope="module", params=bench_datasets.DATASETS)
def loaded(request):
    return request.param, bench_datasets.load_dataset(request.param)


@pytest.mark.shared_data
@requires_data
def test_load_dataset_splits_exactly(loaded) -> None:
    name, (train, test) = loaded
    assert bench_datasets.slice_names(train) == EXPECTED[name][0]
    assert bench_datasets.slice_names(test) == EXPECTED[name][1]
    assert {s.info["mask_file"] for s in train + test} == {MASK_OF[name](s.source.name) for s in train + test}


@pytest.mark.shared_data
@requires_data
def test_loaded_slices_are_normalised_binary_with_raw(loaded) -> None:
    name, (train, test) = loaded
    for s in train + test:
        assert s.image.dtype == np.float32 and s.image.shape[0] == 1
        assert s.mask.dtype == np.uint8 and s.mask.shape == s.image.shape[1:]
        assert set(np.unique(s.mask)) == {0, 1}
        assert s.info["raw"].dtype == np.uint8 and s.info["raw"].shape == s.mask.shape
        # percentile normalisation: the 1st percentile maps to 0, the 99.8th to 1
        low, high = np.percentile(s.image[0], [1.0, 99.8])
        assert abs(low) < 1e-5 and abs(high - 1.0) < 1e-5
        assert s.info["foreground_fraction"] == pytest.approx(s.mask.mean())


# ---------------------------------------------------------------- Otsu baseline (no data needed)
def test_otsu_bright_foreground_is_found_exactly() -> None:
    image = np.array([[0.1, 0.1, 0.9, 0.9]] * 2, dtype=np.float32)
    mask = np.array([[0, 0, 1, 1]] * 2, dtype=np.uint8)
    fit = fit_otsu([image], [mask])
    assert 0.1 < fit.threshold < 0.9
    assert fit.bright is True and fit.train_dice == 1.0


def test_otsu_dark_foreground_flips_polarity() -> None:
    image = np.array([[0.1, 0.1, 0.9, 0.9]], dtype=np.float32)
    mask = np.array([[1, 1, 0, 0]], dtype=np.uint8)
    fit = fit_otsu([image], [mask])
    assert fit.bright is False and fit.train_dice == 1.0
    assert apply_otsu(fit, np.array([[0.0, 1.0]])).tolist() == [[1, 0]]


def test_otsu_imperfect_case_has_hand_computed_dice() -> None:
    # brighter: prediction 0011 vs truth 0111 -> tp 2, fp 0, fn 1 -> Dice 4/5;
    # darker:   prediction 1100 vs truth 0111 -> tp 1, fp 1, fn 2 -> Dice 2/5; brighter wins
    image = np.array([[0.0, 0.0, 1.0, 1.0]], dtype=np.float32)
    mask = np.array([[0, 1, 1, 1]], dtype=np.uint8)
    fit = fit_otsu([image], [mask])
    assert fit.bright is True and fit.train_dice == pytest.approx(0.8)
    assert 0.0 <= fit.train_dice <= 1.0


def test_otsu_threshold_is_pooled_over_training_images() -> None:
    # one dark and one bright image: only the pooled threshold separates 0.2 from 0.8 in both
    images = [np.full((2, 2), 0.2, np.float32), np.full((2, 2), 0.8, np.float32)]
    masks = [np.zeros((2, 2), np.uint8), np.ones((2, 2), np.uint8)]
    fit = fit_otsu(images, masks)
    assert 0.2 < fit.threshold < 0.8 and fit.bright and fit.train_dice == 1.0


def test_apply_otsu_is_strictly_above_threshold() -> None:
    fit = OtsuFit(threshold=0.5, bright=True, train_dice=1.0)
    assert apply_otsu(fit, np.array([[0.5, 0.50001]])).tolist() == [[0, 1]]


def test_extra_row_overrides_are_typed_like_config_fields() -> None:
    assert parse_overrides("arch=unet, width=24,lr=0.001,per_epoch=none,augment=false") == {
        "arch": "unet",
        "width": 24,
        "lr": 0.001,
        "per_epoch": None,
        "augment": False,
    }
    with pytest.raises(UsageError, match="not a valid value for width"):
        parse_overrides("width=wide")
    with pytest.raises(UsageError, match="TrainConfig field"):
        parse_overrides("colour=red")


def test_finetune_bench_uses_the_finetune_settings_of_the_package():
    from finetune_domains import finetune_settings

    from paulow.config import TrainConfig

    parent = TrainConfig(width=8, lr=2e-3, seed=4, folds=5)
    cfg = finetune_settings(parent, 1, 2.5, "cpu")
    assert (cfg.lr, cfg.time_limit, cfg.seed, cfg.folds, cfg.width) == (pytest.approx(2e-4), 2.5, 4, 1, 8)


@pytest.mark.shared_data
@requires_data
def test_vnc_split_and_class_indices_are_kept() -> None:
    name = "drosophila_vnc_sstem"
    train, test = bench_datasets.split_items(name)
    assert [i.image.name for i in train] == [f"{n:02d}.tif" for n in range(16)]
    assert [(i.image.name, i.mask.name) for i in test] == [
        (f"{n:02d}.tif", f"{n:02d}.png") for n in range(16, 20)
    ]
    assert bench_datasets.classes_of(name) == 5 and bench_datasets.classes_of(ISBI) == 1
    (page,) = bench_datasets._item_slices(test[0], bench_datasets.classes_of(name))
    assert set(np.unique(page.mask)) == {0, 1, 2, 3, 4} and page.mask.shape == (1024, 1024)


def test_binary_view_keeps_one_class_as_foreground() -> None:
    from paulow.slices import Slice

    page = Slice(
        np.zeros((1, 2, 3), np.float32),
        np.array([[0, 2, 2], [1, 4, 2]], np.uint8),
        Path("00.tif"),
        0,
        {"foreground_fraction": 5 / 6},
    )
    (view,) = bench_datasets._binary_view([page], 2)
    assert view.mask.tolist() == [[0, 1, 1], [0, 0, 1]] and view.mask.dtype == np.uint8
    assert view.info["foreground_fraction"] == pytest.approx(0.5) and view.source == page.source
    assert bench_datasets.classes_of("vnc_mitochondria") == 1


@pytest.mark.shared_data
@requires_data
def test_vnc_mitochondria_is_the_vnc_split_with_mitochondria_masks() -> None:
    train, test = bench_datasets.split_items("vnc_mitochondria")
    assert (train, test) == bench_datasets.split_items("drosophila_vnc_sstem")
    (item,) = test[:1]
    (page,) = bench_datasets._binary_view(bench_datasets._item_slices(item, 5), 2)
    classes = bench_datasets._item_slices(item, 5)[0].mask
    assert np.array_equal(page.mask, (classes == 2).astype(np.uint8)) and 0 < page.mask.mean() < 0.2


def test_multiclass_rows_score_each_class_and_get_their_own_table() -> None:
    import argparse

    from quality import class_table, markdown_table, rows_for, score_test_pages, selected_rows

    from paulow.slices import Slice

    truth = np.array([[0, 1, 1], [2, 2, 0]], np.uint8)
    pred = np.array([[0, 1, 2], [2, 0, 0]], np.uint8)
    page = Slice(np.zeros((1, 2, 3), np.float32), truth, Path("16.tif"), 0)
    scores = score_test_pages([page], [pred], ["bg", "membrane", "mito"])
    assert scores["test_dice_per_class"] == pytest.approx({"bg": 0.8, "membrane": 2 / 3, "mito": 0.5})
    assert scores["test_dice"] == pytest.approx((2 / 3 + 0.5) / 2) and scores["test_object_f1"] is None
    args = argparse.Namespace(rows=None, extra=None, extra_name=None, extra_loss_args=None)
    specs = selected_rows(args)
    assert [s.name for s in rows_for("drosophila_vnc_sstem", specs, False)] == [
        "paulow_dynamic",
        "unet_ce_dice",
        "att_ce_dice",
    ]
    assert [s.name for s in rows_for(ISBI, specs, False)][:2] == ["otsu", "unet_bce"]
    row = {
        "dataset": "drosophila_vnc_sstem",
        "row": "unet_ce_dice",
        "method": "U-Net + CE + Dice",
        "budget_min": 10.0,
        "epochs_run": 3,
        "train_seconds": 600.0,
        **scores,
    }
    assert (
        "| U-Net + CE + Dice | 10 min | 3 | 0.583 | 0.500 | 0.800 | 0.667 | 0.500 | 10.0 min |"
        in class_table([row])
    )
    assert len(markdown_table([row]).splitlines()) == 2  # header only: multi-class rows are not in it
