"""Tests for dipscope.metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dipscope.errors import DipscopeError
from dipscope.metrics import mse, psnr, ssim


def _smooth_rgb(h: int = 24, w: int = 20) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([x, y, (x + y) / 2]) * 0.8 + 0.1


def test_psnr_constant_offset_is_20_db() -> None:
    reference = np.linspace(0.0, 0.9, 12 * 10, dtype=np.float64).reshape(12, 10)
    estimate = reference + 0.1  # MSE = 0.01, PSNR = 10 log10(1 / 0.01) = 20 dB
    assert mse(estimate, reference) == pytest.approx(0.01)
    assert psnr(estimate, reference) == pytest.approx(20.0)
    assert psnr(estimate * 255, reference * 255, data_range=255) == pytest.approx(20.0)


def test_psnr_identical_is_inf_and_torch_matches_numpy() -> None:
    image = _smooth_rgb()
    assert psnr(image, image.clone()) == math.inf
    assert mse(image, image) == 0.0
    noisy = image + 0.05 * torch.randn(image.shape, generator=torch.Generator().manual_seed(0))
    as_hwc = noisy.permute(1, 2, 0).numpy()
    assert psnr(noisy, image) == pytest.approx(psnr(as_hwc, image), rel=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_identical_and_noisy(channels: int) -> None:
    image = _smooth_rgb()[:channels]
    assert ssim(image, image) == pytest.approx(1.0)
    noise = 0.1 * torch.randn(image.shape, generator=torch.Generator().manual_seed(1))
    value = ssim(image + noise, image)
    assert 0.0 < value < 0.99


def test_ssim_small_images() -> None:
    image = torch.rand(3, 4, 6, generator=torch.Generator().manual_seed(2))
    assert ssim(image, image) == pytest.approx(1.0)  # window shrinks to 3
    assert ssim(image[:, :3, :3] * 0.5, image[:, :3, :3]) < 1.0
    with pytest.raises(DipscopeError, match="at least 3"):
        ssim(image[:, :2], image[:, :2])


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="shape"):
        psnr(torch.zeros(3, 4, 4), torch.zeros(1, 4, 4))
