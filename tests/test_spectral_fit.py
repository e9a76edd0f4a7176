"""The behaviour the spectral module exists to measure: DIP fits low frequencies first."""

from __future__ import annotations

import math

import torch

from dipscope.callbacks import SpectralObserver
from dipscope.fit import FitConfig, fit
from dipscope.models import SkipSpec
from dipscope.spectral import first_crossing


def test_dip_fits_the_low_band_before_the_high_band() -> None:
    """One cosine at 2/64 cycles/pixel (ring 0 of 8) and one at 22/64 ≈ 0.34 (ring 5)."""
    y, x = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    image = (0.5 + 0.25 * torch.cos(2 * math.pi * 2 * x / 64) + 0.2 * torch.cos(2 * math.pi * 22 * y / 64))[None]
    spec = SkipSpec(in_channels=8, channels_down=(16,) * 3, channels_up=(16,) * 3, channels_skip=(4,) * 3)
    observer = SpectralObserver({"target": image}, edges=8, tau=0.1)
    fit(spec, image, FitConfig(steps=150, lr=0.01, observe_every=5, device="cpu", precision="fp32",
                               reg_noise_std=0.0, ema=None), callbacks=[observer], ssim=False)
    errors = torch.from_numpy(observer.table("target"))
    low, high = first_crossing(errors[:, [0, 5]], observer.steps, 0.1)
    assert low is not None, "the low band was never fitted"
    assert high is None or low < high, (low, high)
    assert float(errors[0, 0]) > 0.1  # not fitted at initialisation
