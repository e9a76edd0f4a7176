"""Classical methods DIP is compared with.

Denoising:

* :func:`best_gaussian_lowpass` — the best Gaussian low-pass filter of the noisy image, its
  width chosen against the clean image (an oracle, like the study's best-snapshot PSNR):
  ``max_s PSNR(G_s * y, x)`` with ``G_s`` the Gaussian of std ``s`` pixels. The study says
  early-stopped DIP "behaves like a low pass filter"; this is the best any such filter does.
* :func:`bm3d_denoise` — BM3D (grey) or CBM3D (colour) through the maintained ``bm3d``
  package, given σ; optional (``pip install 'dipscope[baselines]'``), see :func:`bm3d_available`.

Super-resolution and inpainting:

* :func:`upsample` — bicubic or Lanczos-3 interpolation of the low-resolution image (Pillow's
  filters on float samples, as the original DIP notebook's ``get_baselines`` with ``BICUBIC``);
* :func:`biharmonic_fill` — scikit-image's ``inpaint_biharmonic`` of the unknown values, each
  channel with its own mask.

Deblurring:

* :func:`wiener_deblur` — scikit-image's ``unsupervised_wiener`` (a Wiener–Hunt deconvolution
  whose noise and image priors are estimated by Gibbs sampling: no parameter to tune).

Pure functions of (C, H, W) float tensors in [0, 1].
"""

from __future__ import annotations

import importlib.util

import numpy as np
import torch
from scipy import ndimage

from .errors import DipscopeError
from .metrics import psnr

#: Filter widths searched (std in pixels, log-spaced): from almost none to a strong blur.
LOWPASS_WIDTHS = tuple(float(s) for s in np.geomspace(0.25, 8.0, 49))


def gaussian_lowpass(image: torch.Tensor, width: float) -> torch.Tensor:
    """``G_s * y`` per channel (std ``width`` pixels, borders reflected)."""
    array = image.detach().cpu().double().numpy()
    out = np.stack([ndimage.gaussian_filter(c, width, mode="reflect") for c in array])
    return torch.from_numpy(out).float()


def best_gaussian_lowpass(noisy: torch.Tensor, clean: torch.Tensor, widths: tuple[float, ...] = LOWPASS_WIDTHS,
                          border: int = 0) -> tuple[float, float]:
    """The oracle low-pass filter: ``(best PSNR, its width)`` over ``widths`` (PSNR against
    ``clean``, ignoring ``border`` pixels; the identity, width 0, is a candidate too)."""
    best = (psnr(noisy, clean, border=border), 0.0)
    for s in widths:
        value = psnr(gaussian_lowpass(noisy, s), clean, border=border)
        if value > best[0]:
            best = (value, s)
    return best


def bm3d_available() -> bool:
    """Whether the optional ``bm3d`` package is installed."""
    return importlib.util.find_spec("bm3d") is not None


def bm3d_denoise(noisy: torch.Tensor, sigma: float) -> torch.Tensor:
    """BM3D (one channel) or CBM3D (three) of ``noisy`` with noise std ``sigma`` on the [0, 1] scale."""
    if not bm3d_available():
        raise DipscopeError("BM3D needs the bm3d package: pip install 'dipscope[baselines]'")
    import bm3d

    array = noisy.detach().cpu().double().numpy()
    if array.shape[0] == 3:
        out = bm3d.bm3d_rgb(np.moveaxis(array, 0, -1), sigma)
        return torch.from_numpy(np.moveaxis(np.asarray(out), -1, 0).copy()).float().clamp(0, 1)
    return torch.from_numpy(np.asarray(bm3d.bm3d(array[0], sigma))[None].copy()).float().clamp(0, 1)


UPSAMPLINGS = ("bicubic", "lanczos")


def upsample(image: torch.Tensor, factor: int, method: str = "bicubic") -> torch.Tensor:
    """Enlarge (C, H, W) ×``factor`` with Pillow's ``BICUBIC`` or ``LANCZOS`` (Lanczos-3) filter,
    per channel on float samples (no 8-bit rounding), clipped to [0, 1]."""
    from PIL import Image

    if method not in UPSAMPLINGS:
        raise DipscopeError(f"unknown upsampling {method!r}; choose {' or '.join(UPSAMPLINGS)}")
    resample = Image.Resampling.BICUBIC if method == "bicubic" else Image.Resampling.LANCZOS
    h, w = image.shape[-2:]
    channels = [np.asarray(Image.fromarray(c, mode="F").resize((w * factor, h * factor), resample))
                for c in image.detach().cpu().float().numpy()]
    return torch.from_numpy(np.stack(channels)).clamp(0, 1)


def biharmonic_fill(image: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Fill the values where ``known`` (C or 1, H, W) is 0 by biharmonic interpolation of the rest
    (scikit-image's ``restoration.inpaint_biharmonic``), channel by channel."""
    from skimage.restoration import inpaint_biharmonic

    array = image.detach().cpu().double().numpy()
    missing = (known.detach().cpu().numpy() < 0.5).astype(bool)
    out = [inpaint_biharmonic(c, missing[k if missing.shape[0] > 1 else 0]) for k, c in enumerate(array)]
    return torch.from_numpy(np.stack(out)).float().clamp(0, 1)


def wiener_deblur(blurred: torch.Tensor, kernel: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Deconvolve every channel of ``blurred`` by ``kernel`` with scikit-image's
    ``restoration.unsupervised_wiener`` (its Gibbs sampler seeded by ``seed``)."""
    from skimage.restoration import unsupervised_wiener

    psf = kernel.detach().cpu().double().numpy()
    out = [unsupervised_wiener(c, psf, rng=np.random.default_rng(seed))[0]
           for c in blurred.detach().cpu().double().numpy()]
    return torch.from_numpy(np.stack(out)).float().clamp(0, 1)
