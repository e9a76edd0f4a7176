"""Power spectra, per-band energies and relative errors, the low-error radius (see :mod:`dipscope.spectral`)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from ..errors import DipscopeError
from .bands import (ArrayLike, EdgesLike, _as_float64, _check_size, _require_ndim, resolve_edges, band_stack, band_edges, band_masks)


# --------------------------------------------------------------------------------------------
# spectra and band energies
# --------------------------------------------------------------------------------------------


def power_spectrum(x: ArrayLike) -> torch.Tensor:
    """Power spectrum of every 2-D slice, with the unitary DFT.

    .. math::

        P(f) = |\\mathcal F x(f)|^2, \\qquad
        \\mathcal F x(f) = \\frac{1}{\\sqrt{HW}} \\sum_{p} x(p)\\, e^{-2\\pi i\\, f \\cdot p},

    so that :math:`\\sum_p x(p)^2 = \\sum_f P(f)` (Parseval).

    Parameters
    ----------
    x : tensor or ndarray, shape (..., H, W)
        Real images; the transform acts on the last two axes (per channel).

    Returns
    -------
    torch.Tensor
        ``(..., H, W)`` float64, unshifted FFT layout.
    """
    t = _as_float64(x, "x")
    _require_ndim(t, 2, "x", "(..., H, W)")
    return torch.fft.fft2(t, norm="ortho").abs().square()


def radial_power_spectrum(image: ArrayLike, n_bins: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Radially averaged power spectrum over the disc ``r <= 0.5``.

    The interval ``[0, 0.5]`` is cut into ``n_bins`` equal-width bins with the ring convention of
    :func:`band_masks` (bin 0 closed at 0, each bin closed on the right). For each bin ``b``

    .. math:: \\bar P_b = \\frac{1}{C\\,|B_b|} \\sum_{c=1}^{C} \\sum_{f \\in B_b} |\\mathcal F x_c(f)|^2,

    i.e. the mean power over the frequencies of the bin, averaged over channels. The corners
    ``r > 0.5`` are left out: there only partial rings exist, which makes their averages
    direction-dependent (:func:`band_energy` reports them as a separate band).

    Parameters
    ----------
    image : tensor or ndarray, shape (H, W), (C, H, W) or (..., C, H, W)
        A 2-D input is one channel. Leading batch axes are kept.
    n_bins : int, optional
        Number of bins; default ``max(1, min(H, W) // 2)``, a bin width of about one frequency
        step ``1 / min(H, W)``.

    Returns
    -------
    centres : torch.Tensor
        ``(n_bins,)`` bin centres in cycles/pixel.
    power : torch.Tensor
        ``(..., n_bins)`` mean power per bin; ``nan`` for a bin that holds no grid frequency
        (possible for tiny images with many bins).
    """
    t = _as_float64(image, "image")
    _require_ndim(t, 2, "image", "(H, W), (C, H, W) or (..., C, H, W)")
    if t.ndim == 2:
        t = t[None]
    h, w = t.shape[-2:]
    k = max(1, min(h, w) // 2) if n_bins is None else _check_size(n_bins, "n_bins")
    edges = band_edges(k)
    rings, _ = band_masks(h, w, edges)
    rings = rings.to(device=t.device, dtype=torch.float64)
    p = power_spectrum(t).mean(dim=-3)  # average over channels: (..., H, W)
    total = torch.einsum("...hw,khw->...k", p, rings)
    power = total / rings.sum(dim=(-2, -1))  # 0/0 -> nan for an empty bin
    centres = 0.5 * (edges[:-1] + edges[1:])
    return centres.to(t.device), power


def band_energy(x: ArrayLike, edges: EdgesLike = None) -> torch.Tensor:
    """Energy of each channel in each frequency band.

    .. math:: E_{c,k} = \\sum_{f \\in B_k} |\\mathcal F x_c(f)|^2, \\qquad k = 0, \\dots, K,

    where ``B_0 .. B_{K-1}`` are the rings of :func:`band_masks` and ``B_K`` is the corner band
    ``r > 0.5``. With the unitary DFT, :math:`\\sum_k E_{c,k} = \\sum_p x_c(p)^2`.

    Parameters
    ----------
    x : tensor or ndarray, shape (..., C, H, W)
    edges : None, int or sequence of float
        Ring edges, as in :func:`band_masks`.

    Returns
    -------
    torch.Tensor
        ``(..., C, K + 1)`` float64; the last entry is the corner band.

    Examples
    --------
    >>> import torch
    >>> x = torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> bool(torch.isclose(band_energy(x).sum(), (x ** 2).sum().double()))   # Parseval
    True

    """
    t = _as_float64(x, "x")
    _require_ndim(t, 3, "x", "(..., C, H, W)")
    stack = band_stack(t.shape[-2], t.shape[-1], edges, t.device)
    return torch.einsum("...hw,khw->...k", power_spectrum(t), stack)


def band_relative_error(
    x: ArrayLike,
    x0: ArrayLike,
    edges: EdgesLike = None,
    reduce_channels: bool = True,
) -> torch.Tensor:
    """Relative error of ``x`` against a reference ``x0``, band by band.

    For channel ``c`` and band ``k`` (rings of :func:`band_masks`, then the corner band)

    .. math::

        e_{c,k} = \\frac{\\sum_{f \\in B_k} |\\mathcal F (x_c - x_{0,c})(f)|^2}
                       {\\sum_{f \\in B_k} |\\mathcal F x_{0,c}(f)|^2}.

    A band in which ``x0`` has exactly zero energy gives ``nan`` for that channel (never
    ``inf``); note that round-off can leave a tiny non-zero energy in a band that is zero in exact
    arithmetic, and then the ratio is finite but meaningless. With ``reduce_channels=True`` the
    result is the mean of the per-channel ratios, :math:`e_k = \\frac1C \\sum_c e_{c,k}`, taken over
    the channels where the ratio is defined (``nan`` only if it is undefined for every channel).

    Parameters
    ----------
    x : tensor or ndarray, shape (C, H, W) or (T, C, H, W)
        One image or a batch of snapshots.
    x0 : tensor or ndarray, shape (C, H, W)
        The reference image.
    edges : None, int or sequence of float
        Ring edges, as in :func:`band_masks`.
    reduce_channels : bool
        Average the ratios over channels (default) or keep them.

    Returns
    -------
    torch.Tensor
        ``(K + 1,)`` or ``(T, K + 1)``; with ``reduce_channels=False`` ``(C, K + 1)`` or
        ``(T, C, K + 1)``. The last column is the corner band.

    Raises
    ------
    DipscopeError
        If the shapes are not as above or do not match.

    Examples
    --------
    >>> import torch
    >>> from dipscope.spectral import band_edges
    >>> x0 = torch.rand(1, 32, 32, generator=torch.Generator().manual_seed(0))
    >>> band_relative_error(x0, x0, band_edges(4))          # 4 rings and the corner band
    tensor([0., 0., 0., 0., 0.], dtype=torch.float64)
    >>> e = band_relative_error(torch.zeros_like(x0), x0, band_edges(4))   # nothing fitted yet
    >>> bool(torch.allclose(e, torch.ones(5, dtype=torch.float64)))
    True

    """
    xt, ref = _snapshots_and_reference(x, x0)
    return _band_ratio(band_energy(xt - ref, edges), band_energy(ref, edges), reduce_channels)


def band_magnitude_error(
    x: ArrayLike,
    x0: ArrayLike,
    edges: EdgesLike = None,
    reduce_channels: bool = True,
) -> torch.Tensor:
    """Relative error of the Fourier *magnitudes* of ``x`` against those of ``x0``, band by band.

    The phase-free counterpart of :func:`band_relative_error`: for channel ``c`` and band ``k``

    .. math::

        m_{c,k} = \\frac{\\sum_{f \\in B_k} \\big(|\\mathcal F x_c(f)| - |\\mathcal F x_{0,c}(f)|\\big)^2}
                       {\\sum_{f \\in B_k} |\\mathcal F x_{0,c}(f)|^2}.

    It compares amplitude spectra only — the quantity of the study's helpers, which sum
    ``|FFT|`` over rings — so it is unchanged when either image is circularly translated
    (a translation multiplies :math:`\\mathcal F x` by a unit-modulus phase) and is zero
    whenever the two magnitude spectra agree, whatever the phases. Since
    :math:`\\big||a| - |b|\\big| \\le |a - b|`, ``m_{c,k} <= e_{c,k}`` of
    :func:`band_relative_error` band by band. Reduction over channels and ``nan`` for a band
    where ``x0`` has no energy are as in :func:`band_relative_error`.

    Parameters
    ----------
    x : tensor or ndarray, shape (C, H, W) or (T, C, H, W)
        One image or a batch of snapshots.
    x0 : tensor or ndarray, shape (C, H, W)
        The reference image.
    edges : None, int or sequence of float
        Ring edges, as in :func:`band_masks`.
    reduce_channels : bool
        Average the ratios over channels (default) or keep them.

    Returns
    -------
    torch.Tensor
        ``(K + 1,)`` or ``(T, K + 1)``; with ``reduce_channels=False`` ``(C, K + 1)`` or
        ``(T, C, K + 1)``. The last column is the corner band.

    Raises
    ------
    DipscopeError
        If the shapes are not as above or do not match.

    Examples
    --------
    A circular shift leaves every magnitude as it is, but not the complex coefficients:

    >>> import torch
    >>> x0 = torch.rand(1, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> shifted = torch.roll(x0, shifts=(3, 5), dims=(-2, -1))
    >>> bool(band_magnitude_error(shifted, x0, edges=4).abs().max() < 1e-12)
    True
    >>> bool(band_relative_error(shifted, x0, edges=4)[1:].min() > 0.5)
    True
    """
    xt, ref = _snapshots_and_reference(x, x0)
    stack = band_stack(ref.shape[-2], ref.shape[-1], edges, ref.device)
    amplitude = torch.fft.fft2(xt, norm="ortho").abs()
    amplitude0 = torch.fft.fft2(ref, norm="ortho").abs()
    num = torch.einsum("...hw,khw->...k", (amplitude - amplitude0).square(), stack)
    return _band_ratio(num, band_energy(ref, edges), reduce_channels)


def _snapshots_and_reference(x: ArrayLike, x0: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` (C, H, W) or (T, C, H, W) and ``x0`` (C, H, W) as float64 on ``x``'s device, checked."""
    xt = _as_float64(x, "x")
    ref = _as_float64(x0, "x0")
    if ref.ndim != 3:
        raise DipscopeError(f"x0 must have shape (C, H, W), got shape {tuple(ref.shape)}")
    if xt.ndim not in (3, 4) or tuple(xt.shape[-3:]) != tuple(ref.shape):
        raise DipscopeError(
            f"x must have shape {tuple(ref.shape)} or (T, *{tuple(ref.shape)}), got shape {tuple(xt.shape)}"
        )
    return xt, ref.to(xt.device)


def _band_ratio(num: torch.Tensor, den: torch.Tensor, reduce_channels: bool) -> torch.Tensor:
    """``num / den`` per channel and band, ``nan`` where ``den`` is 0; optionally the nan-mean over channels."""
    ratio = torch.where(den > 0, num / torch.where(den > 0, den, 1.0), torch.nan)
    if not reduce_channels:
        return ratio
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.nanmean(ratio, dim=-2)


def low_error_radius(errors: ArrayLike, edges: EdgesLike = None, tau: float = 0.1) -> torch.Tensor:
    """Radius of the low-frequency disc that is already fitted to relative error below ``tau``.

    For one snapshot with ring errors ``e_0 .. e_{K-1}`` (the corner entry ``e_K`` is ignored) let
    ``k*`` be the largest ``k`` with ``e_j < tau`` for all ``j <= k``. The result is
    ``edges[k* + 1]``, or ``0.0`` if ``e_0 >= tau``. A ``nan`` error counts as not below ``tau``.

    Parameters
    ----------
    errors : tensor or ndarray, shape (K + 1,) or (T, K + 1)
        As returned by :func:`band_relative_error` (channel-reduced).
    edges : None, int or sequence of float
        The ring edges the errors were computed with. ``None`` means ``K`` equal-width rings,
        ``K`` taken from ``errors``; otherwise there must be ``K + 1`` edges.
    tau : float
        Threshold, positive.

    Returns
    -------
    torch.Tensor
        Radii in cycles/pixel: 0-d for a 1-D input, ``(T,)`` for a 2-D one.
    """
    err = _as_float64(errors, "errors")
    if err.ndim not in (1, 2) or err.shape[-1] < 2:
        raise DipscopeError(f"errors must have shape (K+1,) or (T, K+1) with K >= 1, got {tuple(err.shape)}")
    if isinstance(tau, bool) or not isinstance(tau, (int, float, np.floating, np.integer)):
        raise DipscopeError(f"tau must be a positive number, got {tau!r}")
    if not (math.isfinite(float(tau)) and float(tau) > 0):
        raise DipscopeError(f"tau must be a positive finite number, got {tau!r}")
    n_rings = err.shape[-1] - 1
    e = band_edges(n_rings) if edges is None else resolve_edges(edges)
    if e.numel() != n_rings + 1:
        raise DipscopeError(f"errors have {n_rings} rings (+ corner) but edges define {e.numel() - 1}")
    passing = (err[..., :n_rings] < float(tau)).to(torch.int64)  # nan < tau is False
    n_leading = torch.cumprod(passing, dim=-1).sum(dim=-1)
    return e.to(err.device)[n_leading]

