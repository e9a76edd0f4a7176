"""Image quality metrics: MSE, PSNR and SSIM, computed by scikit-image.

Each function takes an estimate and a reference of the same shape, given either as torch
tensors ``(C, H, W)`` / ``(H, W)`` or as NumPy arrays ``(H, W, C)`` / ``(H, W)``; the two may be
mixed. Values are compared as ``float64`` without clipping.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from dipscope.images import check_min_size, to_numpy_hwc

__all__ = ["mse", "psnr", "ssim"]

def _pair(
    estimate: torch.Tensor | np.ndarray, reference: torch.Tensor | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Both images as ``float64`` ``(H, W, C)`` arrays of equal shape."""
    est = to_numpy_hwc(estimate, np.float64)
    ref = to_numpy_hwc(reference, np.float64)
    if est.shape != ref.shape:
        raise ValueError(
            f"estimate and reference differ in shape: {est.shape} vs {ref.shape} (H, W, C)"
        )
    return est, ref


def mse(estimate: torch.Tensor | np.ndarray, reference: torch.Tensor | np.ndarray) -> float:
    """Mean squared error, :math:`\\frac{1}{N} \\sum_i (x_i - y_i)^2` over all pixels and channels.

    Parameters
    ----------
    estimate, reference
        Images of the same shape (see module docstring).

    Returns
    -------
    float
        The mean squared error.

    Examples
    --------
    >>> import torch
    >>> mse(torch.full((1, 4, 4), 0.5), torch.zeros(1, 4, 4))
    0.25

    """
    est, ref = _pair(estimate, reference)
    return float(mean_squared_error(ref, est))


def psnr(
    estimate: torch.Tensor | np.ndarray,
    reference: torch.Tensor | np.ndarray,
    data_range: float = 1.0,
    *,
    border: int = 0,
) -> float:
    """Peak signal-to-noise ratio, :math:`10 \\log_{10}(R^2 / \\mathrm{MSE})` in decibels.

    Parameters
    ----------
    estimate, reference
        Images of the same shape (see module docstring).
    data_range
        Peak value :math:`R` (1 for images in ``[0, 1]``).
    border
        Ignore a border of this many pixels on every side (the study's tables crop none).

    Returns
    -------
    float
        PSNR in dB; ``math.inf`` when the images are identical (MSE = 0). A constant error of
        0.1 with :math:`R = 1` gives exactly 20 dB.

    Examples
    --------
    >>> import torch
    >>> clean = torch.zeros(1, 8, 8)
    >>> round(psnr(clean + 0.1, clean), 6)
    20.0
    >>> psnr(clean, clean)
    inf

    """
    if border:
        estimate = estimate[..., border:estimate.shape[-2] - border, border:estimate.shape[-1] - border]
        reference = reference[..., border:reference.shape[-2] - border, border:reference.shape[-1] - border]
    est, ref = _pair(estimate, reference)
    if not np.any(est != ref):
        return float("inf")
    return float(peak_signal_noise_ratio(ref, est, data_range=data_range))


def ssim(
    estimate: torch.Tensor | np.ndarray,
    reference: torch.Tensor | np.ndarray,
    data_range: float = 1.0,
) -> float:
    """Mean structural similarity index (Wang et al., 2004).

    For local means :math:`\\mu`, variances :math:`\\sigma^2` and covariance
    :math:`\\sigma_{xy}` over a uniform ``w × w`` window,

    .. math::
        \\mathrm{SSIM}(x, y) = \\frac{(2\\mu_x\\mu_y + C_1)(2\\sigma_{xy} + C_2)}
        {(\\mu_x^2 + \\mu_y^2 + C_1)(\\sigma_x^2 + \\sigma_y^2 + C_2)},
        \\quad C_1 = (0.01 R)^2,\\ C_2 = (0.03 R)^2,

    averaged over windows and, for colour images, over channels. The window side is
    :math:`w = \\min(7, \\text{largest odd number} \\le \\min(H, W))`.

    Parameters
    ----------
    estimate, reference
        Images of the same shape (see module docstring), at least 3 pixels per side.
    data_range
        Dynamic range :math:`R` (1 for images in ``[0, 1]``).

    Returns
    -------
    float
        Mean SSIM; 1.0 for identical images.

    Raises
    ------
    DipscopeError
        If a side is shorter than 3 pixels (no valid window).
    """
    est, ref = _pair(estimate, reference)
    height, width, channels = est.shape
    check_min_size(height, width, 3, "SSIM")
    side = min(height, width)
    win_size = min(7, side if side % 2 else side - 1)
    if channels == 1:
        value = structural_similarity(
            ref[:, :, 0], est[:, :, 0], data_range=data_range, win_size=win_size
        )
    else:
        value = structural_similarity(
            ref, est, data_range=data_range, win_size=win_size, channel_axis=-1
        )
    return float(value)


def trajectory_distance(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> np.ndarray:
    """``d(t) = ||x¹_t − x²_t||²`` for two trajectories (T, C, H, W) of equal length."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"trajectories differ in shape: {a.shape} vs {b.shape}")
    return ((a - b) ** 2).reshape(a.shape[0], -1).sum(axis=1)
