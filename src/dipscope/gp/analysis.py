"""Summaries of a kernel: stationarised kernel, correlation, power spectrum, half-width, samples."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import DipscopeError


def stationarize(K: torch.Tensor, max_lag: int | None = None) -> np.ndarray:
    """``k̄(τ) = mean_t K(t, t+τ)`` over the pairs inside the signal, for lags ``τ ≥ 0``.

    1-D kernels ``(n, n)`` give ``k̄`` of shape ``(L,)``; 2-D kernels ``(H, W, H, W)`` give
    ``k̄(τ₁, τ₂)`` of shape ``(L₁, L₂)`` for non-negative lags along both axes.
    ``L = min(max_lag + 1, n)`` (all lags by default).
    """
    d = K.ndim // 2
    shape = tuple(K.shape[:d])
    lags = [n if max_lag is None else min(max_lag + 1, n) for n in shape]
    if d == 1:
        return np.array([float(K.diagonal(t).mean()) for t in range(lags[0])])
    if d == 2:
        out = np.empty(lags)
        for a in range(lags[0]):
            Ka = K.diagonal(a, 0, 2)  # (W, W, H−a)
            for b in range(lags[1]):
                out[a, b] = float(Ka.diagonal(b, 0, 1).mean())
        return out
    raise DipscopeError("kernels are 1-D or 2-D")


def correlation(kbar: np.ndarray) -> np.ndarray:
    """``c(τ) = k̄(τ) / k̄(0)``."""
    kbar = np.asarray(kbar, dtype=float)
    return kbar / kbar.reshape(-1)[0]


def spectrum(K: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Expected normalised power spectrum of a sample ``f ~ GP(0, K)``.

    ``S(ω) = E|F f(ω)|² / Σ_t K(t, t) = (F K Fᴴ)_{ωω} / tr K`` for the unnormalised DFT ``F``:
    the power spectral density relative to white noise of the same variance (its mean over the
    full DFT grid is 1; white noise has ``S ≡ 1``). 1-D: ``ω`` in cycles/sample ``0 … 0.5``
    (rfft grid). 2-D: the mean over rings of width ``1/min(H, W)`` of the radial frequency up
    to 0.5 (ring centres returned).
    """
    d = K.ndim // 2
    shape = tuple(K.shape[:d])
    n = math.prod(shape)
    K2 = K.reshape(n, n).to(torch.complex128)
    trace = float(K.reshape(n, n).diagonal().sum())
    if d == 1:
        A = torch.fft.fft(K2, dim=0)
        S = torch.fft.ifft(A, dim=1).diagonal().real * n / trace
        freqs = np.fft.rfftfreq(n)
        return freqs, S.numpy()[: len(freqs)]
    H, W = shape
    A = torch.fft.fftn(K2.reshape(H, W, n), dim=(0, 1)).reshape(n, H, W)
    S = (torch.fft.ifftn(A, dim=(1, 2)).reshape(n, n).diagonal().real * n / trace).reshape(H, W).numpy()
    fy, fx = np.meshgrid(np.fft.fftfreq(H), np.fft.fftfreq(W), indexing="ij")
    radius = np.hypot(fy, fx)
    width = 1.0 / min(H, W)
    edges = np.arange(0, 0.5 + width / 2, width)
    ring = np.digitize(radius, edges) - 1
    shares = np.array([S[ring == i].mean() for i in range(len(edges) - 1)])
    return 0.5 * (edges[:-1] + edges[1:]), shares


def floor_level(c: np.ndarray) -> float:
    """Baseline of a correlation: its minimum over lags ``τ ≤ n/2`` (the constant part that a
    shared random offset, e.g. the mean of ReLU outputs, adds at every lag)."""
    c = np.asarray(c, dtype=float)
    return float(c[: max(2, len(c) // 2 + 1)].min())


def half_width(c: np.ndarray, floor: float | None = None) -> float:
    """Lag (linearly interpolated) where ``c`` first falls halfway from 1 to its ``floor``.

    The half width at half height *above the floor* (:func:`floor_level` by default), so a
    constant long-range correlation does not make the width infinite. 1-D correlations only;
    ``nan`` if ``c`` never gets there.
    """
    c = np.asarray(c, dtype=float)
    if c.ndim != 1:
        raise DipscopeError("half_width takes a 1-D correlation (use one axis of a 2-D one)")
    base = floor_level(c) if floor is None else floor
    level = 0.5 * (c[0] + base)
    below = np.nonzero(c <= level)[0]
    if len(below) == 0 or below[0] == 0:
        return float("nan")
    j = int(below[0])
    return float(j - 1 + (c[j - 1] - level) / (c[j - 1] - c[j]))


def sample_prior(K: torch.Tensor, count: int, seed: int = 0) -> np.ndarray:
    """``count`` samples of ``GP(0, K)`` (shape ``(count, *spatial)``), via ``K = Q Λ Qᵀ``.

    Negative eigenvalues of round-off size are clipped to zero.
    """
    d = K.ndim // 2
    shape = tuple(K.shape[:d])
    n = math.prod(shape)
    evals, evecs = torch.linalg.eigh(K.reshape(n, n))
    root = evecs * evals.clamp_min(0).sqrt()
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, count, generator=gen, dtype=K.dtype)
    return (root @ z).T.reshape((count,) + shape).numpy()
