"""The device engine on a real GPU: bf16 autocast + channels_last against float32 on the CPU, and
the host-accumulation fallback. Skipped where no CUDA GPU is visible.

Tolerance (stated in docs/gpu.md): bf16 keeps 8 bits of mantissa, so probabilities of the tiny
attention U-Net differ from float32 by at most 0.03; masks are equal wherever the float32
probability is more than 0.03 away from the threshold."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_infer_engine import image, reference_probs, small_unet

from paulow.infer import predict_slice

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch"),
]
BF16_ATOL = 0.03


@pytest.mark.parametrize("shape", [(97, 65), (1, 1), (256, 300)])
def test_bf16_channels_last_on_cuda_is_float32_within_the_stated_tolerance(shape):
    net = small_unet()
    img = image(1, *shape, seed=5)
    exact = predict_slice(net, img, tile=64, overlap=0.5, batch_size=4, device="cpu")
    on_gpu = predict_slice(net, img, tile=64, overlap=0.5, batch_size=4, device="cuda")
    assert on_gpu.shape == exact.shape and on_gpu.dtype == np.float32
    np.testing.assert_allclose(on_gpu, exact, atol=BF16_ATOL, rtol=0)
    clear = np.abs(exact - 0.5) > BF16_ATOL
    assert ((on_gpu > 0.5) == (exact > 0.5))[clear].all()


def test_host_accumulation_fallback_equals_the_device_sums(monkeypatch):
    net = small_unet()
    img = image(1, 130, 70, seed=6)
    on_device = predict_slice(net, img, tile=64, batch_size=4, device="cuda")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (0, 1))
    on_host = predict_slice(net, img, tile=64, batch_size=4, device="cuda")
    np.testing.assert_allclose(on_host, on_device, atol=1e-6, rtol=0)
    np.testing.assert_allclose(on_host, reference_probs(net.cpu(), img, 64, 0.5), atol=BF16_ATOL, rtol=0)
