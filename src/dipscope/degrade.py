"""Degradations: the measurement models the experiments apply to clean images."""

from __future__ import annotations

import math

import torch

from .errors import DipscopeError
from .runtime import derive_seed


def add_gaussian_noise(image: torch.Tensor, sigma: float, seed: int = 0, *, clip: bool = True,
                       quantize: bool = False) -> torch.Tensor:
    """``y = x + (σ/255)·n`` with ``n ~ N(0, I)`` drawn from ``seed`` (through
    :func:`dipscope.runtime.derive_seed`, so it never repeats a network's random numbers).

    ``sigma`` is on the 0–255 scale (σ = 25 is the usual benchmark). ``clip`` keeps
    ``y`` in [0, 1]; ``quantize`` rounds it to 8 bits, as a saved PNG would be.
    """
    if sigma < 0:
        raise DipscopeError("the noise level sigma must be ≥ 0")
    gen = torch.Generator().manual_seed(derive_seed(seed, "degradation"))
    noise = torch.randn(image.shape, generator=gen, dtype=torch.float32)
    noisy = image.float().cpu() + (sigma / 255.0) * noise
    if clip:
        noisy = noisy.clamp(0.0, 1.0)
    if quantize:
        noisy = quantize8(noisy)
    return noisy


RESIZES = ("antialias", "area", "study", "study-distorted")


def downsample(image: torch.Tensor, factor: int, method: str = "antialias") -> torch.Tensor:
    """Shrink (C, H, W) by an integer ``factor``.

    * ``antialias`` — bilinear with PyTorch's anti-aliasing filter (a proper resize), output
      ``H // factor × W // factor``;
    * ``study`` — plain bilinear interpolation without anti-aliasing, as OpenCV's
      ``INTER_LINEAR`` in the study's script (it aliases fine texture), same output size;
    * ``study-distorted`` — the study's script exactly: it passed ``(H/f, W/f)`` where OpenCV
      expects ``(width, height)``, so non-square images came out ``W // factor × H // factor``,
      squeezed along one axis and stretched along the other. Only for like-with-like
      comparisons with the published Kodak cells; square images are unaffected;
    * ``area`` — the box average of every ``factor × factor`` block,
      ``y[i, j] = mean(x[f·i : f·i + f, f·j : f·j + f])``, which is what OpenCV's ``INTER_AREA``
      computes for an integer factor. Both axes shrink by the same factor, so the aspect ratio
      is kept (a 768×512 Kodak image becomes 192×128); rows and columns beyond the last whole
      block are dropped.
    """
    if factor < 1:
        raise DipscopeError("the downsampling factor must be a positive integer")
    if method not in RESIZES:
        raise DipscopeError(f"unknown downsampling {method!r}; choose one of {', '.join(RESIZES)}")
    h, w = image.shape[-2] // factor, image.shape[-1] // factor
    if method == "study-distorted":
        h, w = image.shape[-1] // factor, image.shape[-2] // factor
    if (h, w) == tuple(image.shape[-2:]):
        return image.clone()
    if min(h, w) < 1:
        raise DipscopeError(f"a {image.shape[-2]}×{image.shape[-1]} image is too small to shrink ×{factor}")
    if method == "area":
        blocks = image[..., : h * factor, : w * factor].float()
        return torch.nn.functional.avg_pool2d(blocks[None], factor)[0]
    out = torch.nn.functional.interpolate(image[None].float(), size=(h, w), mode="bilinear",
                                          align_corners=False, antialias=method == "antialias")[0]
    return out.clamp(0.0, 1.0)


def quantize8(image: torch.Tensor) -> torch.Tensor:
    """Round to 8 bits, as saving a PNG does: ``round(255·clip(x, 0, 1)) / 255``.

    Exact ties are common: averaging 8-bit pixels (the ``study`` resize at even factors takes the
    mean of 2×2 pixels) lands on ``k + 1/2`` or ``k + 1/4`` of the 0–255 scale. In float32 such a
    value arrives a few 1e-5 above or below the tie, and which side depends on the summation
    order — PyTorch's CPU interpolation differs between 1 and 2 threads — so a plain ``round``
    made the clean reference depend on the thread count. The scaled value is therefore first
    snapped to the 1/1024 grid (far coarser than float32 noise, far finer than the 1/4 steps of
    the averages), then rounded half to even.
    """
    scaled = image.float().clamp(0.0, 1.0) * 255.0
    snapped = torch.round(scaled * 1024.0) / 1024.0
    return torch.round(snapped) / 255.0


def denoising_pair(image: torch.Tensor, factor: int = 1, sigma: float = 25.0, *, resize: str = "antialias",
                   seed: int = 0, quantize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The (clean, noisy) pair of a denoising benchmark, as the study's data script makes it.

    The image is shrunk ×``factor`` with ``resize``, white Gaussian noise of ``sigma`` (0–255
    scale, drawn from ``seed``) is added to the shrunk float image and clipped to [0, 1]; with
    ``quantize`` both images are rounded to 8 bits as the script's saved PNGs are, so PSNR is
    measured against the 8-bit clean image at the same size.
    """
    small = downsample(image, factor, resize) if factor > 1 or resize == "study-distorted" else image.float()
    noisy = add_gaussian_noise(small, sigma, seed, clip=True, quantize=quantize)
    clean = quantize8(small) if quantize else small.clone()
    return clean, noisy


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


# --------------------------------------------------------------------------------------------
# coloured (band-limited) Gaussian noise
# --------------------------------------------------------------------------------------------


def _band_filtered_noise(shape: tuple[int, ...], sigma: float, low: float, high: float, seed: int,
                         exact: bool, closed_low: bool) -> torch.Tensor:
    """White noise kept at radial frequencies ``low < r ≤ high`` (``0 ≤ r ≤ high`` when
    ``closed_low``), scaled so its std is ``sigma`` (in expectation, or exactly if ``exact``)."""
    if sigma < 0:
        raise DipscopeError("the noise std sigma must be ≥ 0")
    if len(shape) < 2 or any(int(s) < 1 for s in shape):
        raise DipscopeError(f"the noise shape must be (..., H, W) with positive sides, got {tuple(shape)}")
    h, w = int(shape[-2]), int(shape[-1])
    fy = torch.fft.fftfreq(h, dtype=torch.float64)
    fx = torch.fft.fftfreq(w, dtype=torch.float64)
    r = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    mask = (r <= high) & ((r >= low) if closed_low else (r > low))
    kept = int(mask.sum())
    if kept == 0:
        raise DipscopeError(f"no frequency of a {h}×{w} grid lies in the band ({low:g}, {high:g}] cycles/pixel; "
                            "widen the band or use a larger image")
    gen = torch.Generator().manual_seed(seed)
    white = torch.randn(tuple(int(s) for s in shape), generator=gen, dtype=torch.float64)
    filtered = torch.fft.ifft2(torch.fft.fft2(white, norm="ortho") * mask, norm="ortho").real
    if exact:
        flat = filtered.reshape(-1, h * w)
        flat = flat - flat.mean(dim=1, keepdim=True)
        std = flat.std(dim=1, correction=0)
        if bool((std < 1e-12).any()):
            raise DipscopeError("the band holds only the DC term: the noise is constant and has no std to set")
        filtered = (flat / std[:, None] * sigma).reshape(filtered.shape)
    else:
        # With the unitary DFT, unit white noise has unit power at every frequency, so the
        # filtered field has variance kept / (H·W) per pixel (in expectation).
        filtered = filtered * (sigma * math.sqrt(h * w / kept))
    return filtered.float()


def lowfreq_noise(shape: tuple[int, ...], sigma: float, fc: float = 1 / 32, seed: int = 0, *,
                  exact: bool = False) -> torch.Tensor:
    """Band-limited ("low-frequency") Gaussian noise of std ``sigma``, shape ``(..., H, W)``.

    White Gaussian noise ``w`` is filtered to the radial frequencies ``r ≤ fc`` (cycles/pixel,
    DC included) with an ideal low-pass on the unitary DFT, independently per 2-D slice:

    .. math:: n = \\mathcal F^{-1}\\big[\\mathbf 1\\{r(f) \\le f_c\\}\\,\\mathcal F w\\big] \\cdot
              \\sigma \\sqrt{HW / |\\{f : r(f) \\le f_c\\}|},

    which makes ``n`` a stationary (periodic) Gaussian field with ``E[n_p²] = σ²``. Only about
    ``π f_c² H W`` Fourier coefficients are kept, so one realisation's sample std scatters
    around σ (by ~``1/√(π f_c² HW)``); ``exact=True`` instead rescales each slice to zero mean
    and sample std exactly σ (the DC term is then removed).

    ``sigma`` is in the units of the result (e.g. ``25/255`` for images in [0, 1]).
    """
    if not 0 < fc <= 0.5 * math.sqrt(2):
        raise DipscopeError("the cutoff fc must be in (0, √2/2] cycles/pixel")
    return _band_filtered_noise(tuple(shape), sigma, 0.0, fc, seed, exact, closed_low=True)


def bandpass_noise(shape: tuple[int, ...], sigma: float, f_low: float, f_high: float, seed: int = 0, *,
                   exact: bool = False) -> torch.Tensor:
    """Gaussian noise of std ``sigma`` confined to the ring ``f_low < r ≤ f_high`` (cycles/pixel).

    As :func:`lowfreq_noise`, with the ideal band-pass mask of the ring in place of the disc.
    """
    if not 0 <= f_low < f_high:
        raise DipscopeError("the band needs 0 ≤ f_low < f_high (cycles/pixel)")
    return _band_filtered_noise(tuple(shape), sigma, f_low, f_high, seed, exact, closed_low=False)


def mixed_noise(shape: tuple[int, ...], sigma_white: float, sigma_low: float, fc: float = 1 / 32,
                seed: int = 0) -> torch.Tensor:
    """White Gaussian noise of std ``sigma_white`` plus independent low-frequency noise of std
    ``sigma_low`` (:func:`lowfreq_noise`, cutoff ``fc``): total variance ``σ_w² + σ_l²``."""
    if sigma_white < 0:
        raise DipscopeError("the noise std sigma_white must be ≥ 0")
    gen = torch.Generator().manual_seed(seed)
    white = torch.randn(tuple(int(s) for s in shape), generator=gen, dtype=torch.float32) * sigma_white
    return white + lowfreq_noise(shape, sigma_low, fc, seed + 1_000_003)


def add_noise(image: torch.Tensor, noise: torch.Tensor, *, clip: bool = False) -> torch.Tensor:
    """``y = x + n``, not clipped by default: clipping to [0, 1] would add high frequencies to
    a band-limited ``n`` (``clip=True`` clips anyway)."""
    if noise.shape != image.shape:
        raise DipscopeError(f"the noise is {tuple(noise.shape)} but the image is {tuple(image.shape)}")
    noisy = image.float().cpu() + noise.float().cpu()
    return noisy.clamp(0.0, 1.0) if clip else noisy
