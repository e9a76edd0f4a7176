"""Degradations: the measurement models the experiments apply to clean images."""

from __future__ import annotations

import torch

from .errors import DipscopeError


def add_gaussian_noise(image: torch.Tensor, sigma: float, seed: int = 0, *, clip: bool = True,
                       quantize: bool = False) -> torch.Tensor:
    """``y = x + (σ/255)·n`` with ``n ~ N(0, I)`` drawn from ``seed``.

    ``sigma`` is on the 0–255 scale (σ = 25 is the usual benchmark). ``clip`` keeps
    ``y`` in [0, 1]; ``quantize`` rounds it to 8 bits, as a saved PNG would be.
    """
    if sigma < 0:
        raise DipscopeError("the noise level sigma must be ≥ 0")
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(image.shape, generator=gen, dtype=torch.float32)
    noisy = image.float().cpu() + (sigma / 255.0) * noise
    if clip:
        noisy = noisy.clamp(0.0, 1.0)
    if quantize:
        noisy = torch.round(noisy.clamp(0.0, 1.0) * 255.0) / 255.0
    return noisy
