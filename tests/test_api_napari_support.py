"""`paulow.api`'s attention maps and volumes: what the napari plugin uses instead of PAULow's internals."""

from __future__ import annotations

import numpy as np
import torch

import paulow.api
from paulow.models import build_model


def test_attention_maps_of_a_model_are_its_gates_at_the_page_size():
    torch.manual_seed(0)
    net = build_model("paulow_attention_unet", width=4, depth=3).eval()
    meta = {"in_channels": 1, "arch": "paulow_attention_unet", "normalisation": {"method": "minmax"}}
    model = paulow.api.Model([net], meta)
    page = np.random.default_rng(0).random((1, 21, 30)).astype(np.float32)
    maps = paulow.api.attention_maps(model, page)
    assert [m.shape for m in maps] == [(21, 30), (21, 30)]  # deepest (11x15) resized to the page
    assert all(m.dtype == np.float32 and 0 <= m.min() and m.max() <= 1 for m in maps)
    assert not net.keep_attention  # switched off again
    plain = paulow.api.Model([build_model("unet", width=4, depth=2).eval()], {**meta, "arch": "unet"})
    assert paulow.api.attention_maps(plain, page) == []


def test_a_nifti_volume_opens_with_its_spacing_and_name(tmp_path):
    nib = __import__("pytest").importorskip("nibabel")
    data = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)  # (i, j, k): columns, rows, pages
    affine = np.diag([0.5, 0.25, 2.0, 1.0])
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "case1_mask.nii.gz")
    assert paulow.api.is_volume(tmp_path / "case1_mask.nii.gz") and not paulow.api.is_volume(tmp_path)
    volume = paulow.api.open_volume(tmp_path / "case1_mask.nii.gz")
    assert volume.name == "case1_mask" and volume.scale == (2.0, 0.25, 0.5)
    assert volume.data.shape == (3, 1, 5, 4) and volume.affine == affine.tolist()
    np.testing.assert_array_equal(volume.data[:, 0], data.transpose(2, 1, 0))
