"""Convolution kernels of the forward operators: the Lanczos downsampling filter of the
original DIP super-resolution, and the blur kernels of deblurring.

Pure functions returning float64 tensors that sum to 1.
"""

from __future__ import annotations

import math

import torch

from ..errors import DipscopeError

BLUR_KINDS = ("gaussian", "box")
MAX_BLUR_STD = 50.0  # pixels: a 301×301 kernel; larger blurs are beyond any image this runs on
MAX_BOX_SIZE = 301


def lanczos_taps(factor: int, support: int = 2) -> torch.Tensor:
    """The 1-D Lanczos-``a`` low-pass filter for shrinking ×``factor``, sampled at half-pixel phase.

    Tap ``k = 0 … 2·a·factor − 1`` sits at ``d_k = (k + ½ − a·factor) / factor`` low-resolution
    pixels from the centre and weighs ``sinc(d_k) · sinc(d_k / a)`` (normalised sinc), the taps
    normalised to sum 1. With ``a = 2`` and an even factor this is the original DIP
    implementation's ``lanczos2`` downsampler with ``phase = 0.5`` (a ``4·factor``-tap filter;
    its 2-D kernel is the outer product of these taps, see :class:`~dipscope.physics.operators.Downsample`).
    """
    if factor < 1 or support < 1:
        raise DipscopeError("the Lanczos filter needs a factor ≥ 1 and a support ≥ 1")
    k = torch.arange(2 * support * factor, dtype=torch.float64)
    d = (k + 0.5 - support * factor) / factor
    taps = torch.sinc(d) * torch.sinc(d / support)
    return taps / taps.sum()


def gaussian_kernel(std: float) -> torch.Tensor:
    """A 2-D Gaussian of standard deviation ``std`` pixels, ``g(u, v) ∝ exp(−(u² + v²) / 2·std²)``,
    truncated at ``±⌈3·std⌉`` pixels and normalised to sum 1."""
    if not (0 < std <= MAX_BLUR_STD and math.isfinite(std)):
        raise DipscopeError(f"the Gaussian blur needs a std in (0, {MAX_BLUR_STD:g}] pixels, not {std}")
    radius = max(1, math.ceil(3 * std))
    u = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-u ** 2 / (2 * std ** 2))
    kernel = torch.outer(g, g)
    return kernel / kernel.sum()


def box_kernel(size: int) -> torch.Tensor:
    """A ``size × size`` uniform (box) kernel, each weight ``1 / size²``."""
    if not 1 <= size <= MAX_BOX_SIZE:
        raise DipscopeError(f"the box blur needs a size in [1, {MAX_BOX_SIZE}], not {size}")
    return torch.full((size, size), 1.0 / size ** 2, dtype=torch.float64)


def parse_blur(text: str) -> tuple[str, float, torch.Tensor]:
    """``gaussian:S`` (std ``S`` pixels) or ``box:K`` (``K × K``, K odd) → (kind, parameter, kernel)."""
    kind, _, value = text.partition(":")
    if kind not in BLUR_KINDS or not value:
        raise DipscopeError(f"unknown blur kernel {text!r}; give gaussian:STD or box:SIZE (e.g. gaussian:1.6, box:5)")
    try:
        number = float(value)
    except ValueError:
        raise DipscopeError(f"the blur kernel {text!r} needs a number after the colon") from None
    if kind == "gaussian":
        return kind, number, gaussian_kernel(number)
    if not math.isfinite(number) or not number.is_integer() or number < 1 or int(number) % 2 == 0:
        raise DipscopeError(f"the box blur needs an odd whole size ≥ 1 (centred on the pixel), not {value}")
    return kind, number, box_kernel(int(number))
