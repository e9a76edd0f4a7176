"""Measures built on the spectra: Shi et al.'s frequency-band correspondence, statistics over
trajectories, the windowed high-frequency fraction and the texture band (see :mod:`dipscope.spectral`)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import scipy.stats
import torch

from ..errors import DipscopeError
from .bands import (ArrayLike, _as_float64, _require_ndim, radial_frequency, _GREY_WEIGHTS, _FBC_EPS, _FBC_RING_FRACTIONS)
from .spectra import power_spectrum, radial_power_spectrum


# --------------------------------------------------------------------------------------------
# Shi et al.'s frequency-band correspondence
# --------------------------------------------------------------------------------------------


def _to_grey(t: torch.Tensor, name: str) -> torch.Tensor:
    """``(..., C, H, W)`` with C in {1, 3} -> ``(..., H, W)`` grey, Shi et al.'s way."""
    _require_ndim(t, 3, name, "(..., C, H, W) with C = 1 or 3")
    c = t.shape[-3]
    if c == 1:
        return t[..., 0, :, :]
    if c == 3:
        wr, wg, wb = _GREY_WEIGHTS
        grey = wr * t[..., 0, :, :] + wg * t[..., 1, :, :] + wb * t[..., 2, :, :]
        return grey.clamp(0.0, 1.0)
    raise DipscopeError(f"{name} must have 1 or 3 channels, got {c}")


def frequency_band_correspondence(x: ArrayLike, target: ArrayLike) -> torch.Tensor:
    """Frequency-band correspondence (FBC) of Shi et al. (IJCV 2022).

    Following ``get_circular_statastic`` in ``code/utils/measure_utils.py`` of
    github.com/shizenglin/Measure-and-Control-Spectral-Bias:

    1. RGB images become grey, :math:`g = \\mathrm{clip}(0.2989 R + 0.5870 G + 0.1140 B, 0, 1)`
       (the clip is theirs; it does nothing to images in ``[0, 1]``); a 1-channel image is used
       as is.
    2. With the unnormalised DFT (``norm="backward"``, which matters because of the ``1e-8``)
       and both spectra ``fftshift``-ed,

       .. math:: M(f) = \\mathrm{clip}\\Big(\\frac{|\\mathcal F g_x(f)|}{|\\mathcal F g_y(f)| + 10^{-8}}, 0, 1\\Big).

    3. With the centre at row ``H // 2``, column ``W // 2`` (their ``int(h/2)``, ``int(w/2)``;
       this is where ``fftshift`` puts DC for even and odd sizes) and
       :math:`d(i, j) = \\sqrt{(j - W//2)^2 + (i - H//2)^2}` in pixels, the radii are
       :math:`\\rho_m = (W//2)\\, s_m` with ``s = linspace(0.2, 1, 5)`` — *width only*, for
       every aspect ratio. Ring ``m`` is :math:`\\rho_{m-1} < d \\le \\rho_m` (ring 0 is
       :math:`d \\le \\rho_0`, which holds the centre) and the FBC is the **mean** of ``M`` over the
       ring. Pixels with :math:`d > W//2` (corners, and for tall images the top/bottom bands)
       are dropped.

    Choices made here: a ring that holds no pixel (tiny images) gives ``nan`` (their code divides
    0 by 0 with a warning); inputs must be ``(..., C, H, W)`` with ``C`` in {1, 3} and are
    broadcast against each other over the leading axes. Note the metric compares magnitudes only;
    because of the ``1e-8`` an identical pair gives values just below 1, and exactly 0 at any
    frequency where the target spectrum vanishes.

    Parameters
    ----------
    x : tensor or ndarray, shape (..., C, H, W)
        The output image(s), e.g. a ``(T, C, H, W)`` trajectory.
    target : tensor or ndarray, shape (..., C, H, W)
        The image they are compared with (Shi et al. use the noisy observation); same ``H, W``.

    Returns
    -------
    torch.Tensor
        ``(..., 5)`` float64 in ``[0, 1]``, ordered from the lowest to the highest band.
    """
    gx = _to_grey(_as_float64(x, "x"), "x")
    gy = _to_grey(_as_float64(target, "target"), "target")
    if gx.shape[-2:] != gy.shape[-2:]:
        raise DipscopeError(
            f"x and target must have the same height and width, got {tuple(gx.shape[-2:])} and {tuple(gy.shape[-2:])}"
        )
    gy = gy.to(gx.device)
    try:
        torch.broadcast_shapes(gx.shape, gy.shape)
    except RuntimeError as exc:
        raise DipscopeError(f"x and target batch shapes do not broadcast: {tuple(gx.shape)} vs {tuple(gy.shape)}") from exc
    ax = torch.fft.fftshift(torch.fft.fft2(gx), dim=(-2, -1)).abs()
    ay = torch.fft.fftshift(torch.fft.fft2(gy), dim=(-2, -1)).abs()
    m = (ax / (ay + _FBC_EPS)).clamp(0.0, 1.0)

    h, w = gx.shape[-2:]
    rows = torch.arange(h, dtype=torch.float64, device=gx.device) - (h // 2)
    cols = torch.arange(w, dtype=torch.float64, device=gx.device) - (w // 2)
    dist = torch.sqrt(rows[:, None] ** 2 + cols[None, :] ** 2)
    radii = [(w // 2) * float(s) for s in _FBC_RING_FRACTIONS]
    rings = []
    inner = torch.zeros_like(dist, dtype=torch.bool)
    for radius in radii:
        disc = dist <= radius
        rings.append(disc & ~inner)
        inner = disc
    stack = torch.stack(rings).to(torch.float64)
    return torch.einsum("...hw,khw->...k", m, stack) / stack.sum(dim=(-2, -1))


# --------------------------------------------------------------------------------------------
# statistics over trajectories
# --------------------------------------------------------------------------------------------


def spearman_rho(a: ArrayLike | Sequence[float], b: ArrayLike | Sequence[float]) -> float:
    """Spearman rank correlation, with average ranks for ties.

    .. math:: \\rho = \\mathrm{corr}\\big(\\mathrm{rank}(a), \\mathrm{rank}(b)\\big)

    (the Pearson correlation of the ranks), computed by :func:`scipy.stats.spearmanr`.

    Parameters
    ----------
    a, b : array-like
        Equal numbers of values (flattened), at least 2.

    Returns
    -------
    float
        ``rho`` in ``[-1, 1]``; ``nan`` if either input is constant or contains ``nan``.

    Examples
    --------
    >>> spearman_rho([0, 1, 2, 3], [10, 70, 190, 390])      # bands reached low to high
    1.0
    >>> spearman_rho([0, 1, 2, 3], [390, 190, 70, 10])
    -1.0

    """
    av = _as_float64(a, "a").detach().cpu().reshape(-1).numpy()
    bv = _as_float64(b, "b").detach().cpu().reshape(-1).numpy()
    if av.size != bv.size:
        raise DipscopeError(f"a and b must have the same number of values, got {av.size} and {bv.size}")
    if av.size < 2:
        raise DipscopeError("spearman_rho needs at least 2 values")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = scipy.stats.spearmanr(av, bv)
    return float(result[0])


def first_crossing(values: ArrayLike, steps: ArrayLike | Sequence[float], tau: float) -> list[float | None]:
    """First step at which each column of a table falls below a threshold.

    For column ``k`` of a ``(T, K)`` table ``v`` recorded at ``steps[0..T-1]`` the result is
    ``steps[t*]`` with :math:`t^* = \\min\\{t : v_{t,k} < \\tau\\}`, or ``None`` if no row qualifies
    (``nan`` never qualifies). Rows are taken in the given order.

    Parameters
    ----------
    values : tensor or ndarray, shape (T, K) or (T,)
        E.g. band errors ``e_k`` of ``T`` snapshots; a 1-D input is one column.
    steps : array-like, length T
        The iteration (or time) of each row.
    tau : float
        Threshold.

    Returns
    -------
    list of float or None
        One entry per column.

    Examples
    --------
    >>> import torch
    >>> errors = torch.tensor([[0.5, 0.9], [0.05, 0.5], [0.01, 0.2]])   # 3 snapshots, 2 bands
    >>> first_crossing(errors, [0, 10, 20], tau=0.1)
    [10.0, None]

    """
    v = _as_float64(values, "values").detach().cpu()
    if v.ndim == 1:
        v = v[:, None]
    if v.ndim != 2:
        raise DipscopeError(f"values must have shape (T, K) or (T,), got {tuple(v.shape)}")
    s = _as_float64(steps, "steps").detach().cpu().reshape(-1)
    if s.numel() != v.shape[0]:
        raise DipscopeError(f"steps has {s.numel()} entries but values has {v.shape[0]} rows")
    if isinstance(tau, bool) or not isinstance(tau, (int, float, np.floating, np.integer)):
        raise DipscopeError(f"tau must be a number, got {tau!r}")
    below = v < float(tau)
    out: list[float | None] = []
    for k in range(v.shape[1]):
        hits = torch.nonzero(below[:, k]).reshape(-1)
        out.append(float(s[hits[0]]) if hits.numel() else None)
    return out


def windowed(image: torch.Tensor) -> torch.Tensor:
    """``(x − mean(x))·w`` with ``w`` the separable 2-D Hann window (per channel, float64).

    The DFT treats an image as periodic; the jumps between opposite borders of a smooth image
    would otherwise put a ``1/r²`` tail of spurious power at high frequencies and dominate the
    high-frequency fraction of a smooth output."""
    x = image.detach().cpu().double()
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    h, w = x.shape[-2:]
    wy = torch.hann_window(h, periodic=False, dtype=torch.float64)
    wx = torch.hann_window(w, periodic=False, dtype=torch.float64)
    return x * (wy[:, None] * wx[None, :])


def hf_fraction(image: torch.Tensor, cutoff: float) -> float:
    """``Σ_{r > cutoff} P / Σ_{r > 0} P`` with ``P`` the power spectrum of the mean-removed,
    Hann-windowed output (:func:`windowed`), channels summed; corners ``r > 0.5`` count as high."""
    _, h, w = image.shape
    p = power_spectrum(windowed(image)).sum(dim=0)
    r = radial_frequency(h, w)
    total = float(p[r > 0].sum())
    return float(p[r > cutoff].sum()) / total if total > 0 else math.nan


def texture_band(image: torch.Tensor, min_freq: float = 0.06) -> tuple[float, float, float]:
    """The ring holding the image's dominant periodic texture: ``(low, peak, high)`` in cycles/pixel.

    The radially averaged power spectrum ``P(r)`` of the mean-removed image is whitened by
    ``r²`` (natural images fall off about as ``1/r²``), and its maximum over
    ``min_freq ≤ r ≤ 0.5`` is the texture frequency; the ring extends on both sides while the
    whitened spectrum stays above half that maximum (at least one bin each side).
    """
    x = image.double() - image.double().mean(dim=(-2, -1), keepdim=True)
    centres, power = radial_power_spectrum(x)
    r = centres.numpy()
    white = np.nan_to_num(power.numpy() * r ** 2)
    allowed = r >= min_freq
    if not allowed.any():
        raise DipscopeError("the image is too small to look for texture above "
                            f"{min_freq} cycles/pixel")
    k = int(np.argmax(np.where(allowed, white, -np.inf)))
    half = white[k] / 2
    lo = k
    while lo - 1 >= 0 and allowed[lo - 1] and white[lo - 1] >= half:
        lo -= 1
    hi = k
    while hi + 1 < len(r) and white[hi + 1] >= half:
        hi += 1
    lo, hi = min(lo, k - 1) if k > 0 else 0, max(hi, k + 1) if k + 1 < len(r) else k
    width = r[1] - r[0] if len(r) > 1 else 0.5
    return float(max(r[lo] - width / 2, 0.0)), float(r[k]), float(min(r[hi] + width / 2, 0.5))

