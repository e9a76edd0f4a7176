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


def downsample(image: torch.Tensor, factor: int, method: str = "antialias") -> torch.Tensor:
    """Shrink (C, H, W) by an integer ``factor`` (output size ``H // factor × W // factor``).

    ``antialias``: bilinear with PyTorch's anti-aliasing filter (a proper resize);
    ``study``: plain bilinear interpolation without anti-aliasing, as OpenCV's
    ``INTER_LINEAR`` in the study's script (it aliases fine texture).
    """
    if factor < 1:
        raise DipscopeError("the downsampling factor must be a positive integer")
    if factor == 1:
        return image.clone()
    if method not in ("antialias", "study"):
        raise DipscopeError(f"unknown downsampling {method!r}; choose antialias or study")
    h, w = image.shape[-2] // factor, image.shape[-1] // factor
    out = torch.nn.functional.interpolate(image[None].float(), size=(h, w), mode="bilinear",
                                          align_corners=False, antialias=method == "antialias")[0]
    return out.clamp(0.0, 1.0)


def pattern_image(size: int = 256, fraction: float = 0.5, stripe_period: int = 24, stripe_width: int = 8,
                  stripe_level: float = 0.55, triangle_level: float = 0.35, line_gain: float = 2 / 3) -> torch.Tensor:
    """A synthetic test image with a controllable amount of high-frequency pattern, (1, size, size).

    After the study's "triangle" images: a white background with grey diagonal stripes
    (period ``stripe_period`` px along each axis), a dark triangle in the centre, and in the
    top-left ``fraction·size × fraction·size`` square a pattern of fine horizontal lines —
    every other row darkened by ``line_gain`` — i.e. energy at the vertical Nyquist frequency
    0.5 cycles/pixel. ``fraction`` is the side fraction (the covered area is ``fraction²``), as
    in the study's file names ``triangle-{fraction}.png``. Never downsample these images: the
    lines exist only on the full pixel grid.
    """
    if not 0.0 <= fraction <= 1.0:
        raise DipscopeError("the pattern fraction must be in [0, 1]")
    if size < 16:
        raise DipscopeError("pattern images need size ≥ 16")
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    image = torch.ones(size, size)
    image[((x + y) % stripe_period) < stripe_width] = stripe_level
    top, bottom = 0.35 * size, 0.6 * size
    half_width = (y - top) / (bottom - top) * 0.1 * size
    inside = (y >= top) & (y <= bottom) & ((x - size / 2).abs() <= half_width)
    image[inside] = triangle_level
    n = int(round(fraction * size))
    if n > 0:
        rows = (torch.arange(size) % 2 == 0)[:, None] & (y < n) & (x < n)
        image = torch.where(rows, image * line_gain, image)
    return image[None]
