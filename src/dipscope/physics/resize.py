"""Resampling and quantisation: how the study's data script shrinks and stores its images."""

from __future__ import annotations

import torch

from ..errors import DipscopeError
from .noise import GaussianNoise

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


def denoising_pair(image: torch.Tensor, factor: int = 1, sigma: float = 25 / 255, *, resize: str = "antialias",
                   seed: int = 0, quantize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The (clean, noisy) pair of a denoising benchmark, as the study's data script makes it.

    The image is shrunk ×``factor`` with ``resize``, white Gaussian noise of std ``sigma``
    (image scale: 25/255 is the usual "σ = 25") drawn from ``seed``
    (:class:`~dipscope.physics.noise.GaussianNoise`) is added to the shrunk float image and
    clipped to [0, 1]; with ``quantize`` both images are rounded to 8 bits as the script's saved
    PNGs are, so PSNR is measured against the 8-bit clean image at the same size.
    """
    small = downsample(image, factor, resize) if factor > 1 or resize == "study-distorted" else image.float()
    noisy = GaussianNoise(sigma, seed)(small, clip=True)
    if quantize:
        noisy = quantize8(noisy)
    clean = quantize8(small) if quantize else small.clone()
    return clean, noisy
