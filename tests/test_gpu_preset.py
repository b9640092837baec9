"""The `gpu` preset's batch size and square-root scaled learning rate, fitted to the card's memory
(`paulow.gpu_preset`; the card's memory is given, no GPU needed)."""

from __future__ import annotations

import pytest

import paulow.gpu_preset as gp
from paulow.config import PRESETS, config_from_options

GIB = 2**30


def test_preset_batch_64_with_the_rate_scaled_by_the_square_root():
    assert gp.scaled_lr(16) == pytest.approx(1e-3)
    assert gp.scaled_lr(64) == pytest.approx(2e-3)  # linear scaling would give 4e-3
    assert PRESETS["gpu"]["batch_size"] == 64
    assert PRESETS["gpu"]["lr"] == pytest.approx(gp.scaled_lr(64))


def test_the_batch_is_halved_until_its_activations_take_half_the_card():
    assert gp.patch_bytes(32, 128) == 72 * 2**20
    assert gp.patch_bytes(32, 256) == 4 * 72 * 2**20
    assert gp.fit_batch(64, 32, 128, 80 * GIB) == 64
    assert gp.fit_batch(64, 32, 128, 9 * GIB) == 64  # 64 x 72 MiB = 4.5 GiB
    assert gp.fit_batch(64, 32, 128, 8 * GIB) == 32
    assert gp.fit_batch(64, 32, 128, 4 * GIB) == 16
    assert gp.fit_batch(64, 64, 128, 4 * GIB) == 16  # never below 16: the old preset's batch


@pytest.mark.parametrize(("gib", "batch", "lr"), [(80, 64, 2e-3), (8, 32, 2e-3 / 2**0.5), (4, 16, 1e-3)])
def test_config_for_cuda_fits_the_preset_to_the_card(monkeypatch, gib, batch, lr):
    monkeypatch.setattr(gp, "_total_memory", lambda device: gib * GIB)
    cfg = config_from_options({}, None, "cuda")
    assert (cfg.batch_size, cfg.lr) == (batch, pytest.approx(lr))


def test_the_users_batch_or_rate_and_other_presets_are_left_alone(monkeypatch):
    monkeypatch.setattr(gp, "_total_memory", lambda device: 4 * GIB)
    assert config_from_options({"batch_size": 64}, None, "cuda").batch_size == 64
    given_lr = config_from_options({"lr": 5e-4}, None, "cuda")
    assert (given_lr.batch_size, given_lr.lr) == (64, 5e-4)
    assert config_from_options({}, "paper", "cuda").batch_size == 4
    assert config_from_options({}, None, "cpu").batch_size == 8


def test_without_a_visible_card_the_preset_is_kept(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cfg = config_from_options({}, "gpu", "cuda")
    assert (cfg.batch_size, cfg.lr) == (64, 2e-3)
