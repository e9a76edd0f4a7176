"""Classical denoisers DIP is compared with.

* :func:`best_gaussian_lowpass` — the best Gaussian low-pass filter of the noisy image, its
  width chosen against the clean image (an oracle, like the study's best-snapshot PSNR):
  ``max_s PSNR(G_s * y, x)`` with ``G_s`` the Gaussian of std ``s`` pixels. The study says
  early-stopped DIP "behaves like a low pass filter"; this is the best any such filter does.
* :func:`bm3d_denoise` — BM3D (grey) or CBM3D (colour) through the maintained ``bm3d``
  package, given σ; optional (``pip install 'dipscope[baselines]'``), see :func:`bm3d_available`.

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
