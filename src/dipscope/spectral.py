"""Spectral measurements of images and of DIP trajectories.

Everything here is a pure function on arrays. Images are ``(C, H, W)``; trajectories and other
batches of snapshots are ``(T, C, H, W)``. Torch tensors and NumPy arrays are both accepted; they
are converted to ``torch.float64`` (keeping a tensor's device) and results are ``torch.float64``
tensors unless a function says otherwise.

Frequency conventions
---------------------
Frequencies are in cycles/pixel. For an ``H x W`` grid the discrete frequencies are
``f_y = torch.fft.fftfreq(H)`` (rows) and ``f_x = torch.fft.fftfreq(W)`` (columns), laid out in
the unshifted FFT order, and the radial frequency is

.. math:: r(f_x, f_y) = \\sqrt{f_x^2 + f_y^2}, \\qquad 0 \\le r \\le \\tfrac{\\sqrt 2}{2}.

Nyquist is ``0.5``. The disc ``r <= 0.5`` is split into ``K`` rings by edges
``0 = e_0 < e_1 < ... < e_K = 0.5``; the frequencies with ``r > 0.5`` (the corners of the square
frequency domain, reached only along diagonals) form a separate *corner* band, reported as the
last entry ``K`` of every per-band result. Fourier transforms use ``norm="ortho"``, so that
Parseval's identity reads :math:`\\sum_p |x(p)|^2 = \\sum_f |\\mathcal F x(f)|^2`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Union

import numpy as np
import scipy.stats
import torch

from dipscope.errors import DipscopeError

__all__ = [
    "radial_frequency",
    "band_edges",
    "band_masks",
    "power_spectrum",
    "radial_power_spectrum",
    "band_energy",
    "band_relative_error",
    "low_error_radius",
    "frequency_band_correspondence",
    "spearman_rho",
    "first_crossing",
]

ArrayLike = Union[torch.Tensor, np.ndarray]
EdgesLike = Union[None, int, Sequence[float], np.ndarray, torch.Tensor]

_NYQUIST = 0.5
_DEFAULT_BANDS = 8

# Shi et al.'s RGB -> grey weights (their ``rgb2gray``).
_GREY_WEIGHTS = (0.2989, 0.5870, 0.1140)
_FBC_EPS = 1e-8
_FBC_RING_FRACTIONS = np.linspace(0.2, 1.0, 5)  # the radii fractions {0.2, 0.4, ..., 1.0}


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _as_float64(x: object, name: str) -> torch.Tensor:
    """Return ``x`` as a real ``torch.float64`` tensor (a tensor keeps its device)."""
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise DipscopeError(f"{name} must be real, got a complex tensor")
        return x.to(torch.float64)
    try:
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise DipscopeError(f"{name} must be a torch tensor or a numpy array") from exc
    if np.iscomplexobj(arr):
        raise DipscopeError(f"{name} must be real, got a complex array")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise DipscopeError(f"{name} must be numeric, got dtype {arr.dtype}")
    return torch.from_numpy(np.array(arr, dtype=np.float64))


def _check_size(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DipscopeError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _require_ndim(x: torch.Tensor, min_ndim: int, name: str, layout: str) -> None:
    if x.ndim < min_ndim:
        raise DipscopeError(f"{name} must have shape {layout}, got shape {tuple(x.shape)}")


def _resolve_edges(edges: EdgesLike) -> torch.Tensor:
    """Turn ``None`` / an int / a sequence of edges into a validated 1-D float64 tensor."""
    if edges is None:
        return band_edges(_DEFAULT_BANDS)
    if isinstance(edges, (int, np.integer)) and not isinstance(edges, bool):
        return band_edges(int(edges))
    if isinstance(edges, (bool, float, str, bytes)):
        raise DipscopeError(f"edges must be None, an int or a sequence of floats, got {edges!r}")
    try:
        e = _as_float64(edges, "edges").detach().cpu()
    except DipscopeError:
        raise
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise DipscopeError("edges must be None, an int or a sequence of floats") from exc
    if e.ndim != 1 or e.numel() < 2:
        raise DipscopeError(f"edges must be a 1-D sequence of at least 2 values, got shape {tuple(e.shape)}")
    if not bool(torch.isfinite(e).all()):
        raise DipscopeError("edges must be finite")
    if not bool((e[1:] > e[:-1]).all()):
        raise DipscopeError("edges must be strictly increasing")
    if float(e[0]) != 0.0 or float(e[-1]) != _NYQUIST:
        raise DipscopeError(f"edges must start at 0 and end at 0.5, got {float(e[0])} ... {float(e[-1])}")
    return e


def _band_stack(height: int, width: int, edges: EdgesLike, device: torch.device) -> torch.Tensor:
    """``(K+1, H, W)`` float64 indicator stack: the K rings, then the corner band."""
    rings, corners = band_masks(height, width, edges)
    return torch.cat([rings, corners[None]], dim=0).to(device=device, dtype=torch.float64)


# --------------------------------------------------------------------------------------------
# frequency grid and bands
# --------------------------------------------------------------------------------------------


def radial_frequency(height: int, width: int) -> torch.Tensor:
    """Radial frequency of every FFT coefficient of an ``height x width`` image.

    .. math:: r[u, v] = \\sqrt{f_y[u]^2 + f_x[v]^2}

    with ``f_y = fftfreq(height)``, ``f_x = fftfreq(width)`` in cycles/pixel, so
    ``0 <= r <= sqrt(2)/2`` and ``r[0, 0] = 0`` is the DC term.

    Parameters
    ----------
    height, width : int
        Image size in pixels (positive).

    Returns
    -------
    torch.Tensor
        ``(height, width)`` float64, in the unshifted layout of ``torch.fft.fft2``.
    """
    h = _check_size(height, "height")
    w = _check_size(width, "width")
    fy = torch.fft.fftfreq(h, dtype=torch.float64)
    fx = torch.fft.fftfreq(w, dtype=torch.float64)
    return torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)


def band_edges(n_bands: int = _DEFAULT_BANDS) -> torch.Tensor:
    """Equal-width ring edges covering ``[0, 0.5]`` cycles/pixel.

    .. math:: e_k = \\frac{k}{2K}, \\qquad k = 0, \\dots, K

    Parameters
    ----------
    n_bands : int
        Number of rings ``K >= 1``.

    Returns
    -------
    torch.Tensor
        ``(K + 1,)`` float64 edges ``0, 0.5/K, ..., 0.5``.
    """
    k = _check_size(n_bands, "n_bands")
    return torch.arange(k + 1, dtype=torch.float64) * (_NYQUIST / k)


def band_masks(height: int, width: int, edges: EdgesLike = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean masks of the frequency rings and of the corner band.

    With edges ``0 = e_0 < ... < e_K = 0.5`` the rings are

    .. math::

        B_0 = \\{f : 0 \\le r(f) \\le e_1\\}, \\qquad
        B_k = \\{f : e_k < r(f) \\le e_{k+1}\\} \\quad (k \\ge 1),

    so the DC term is in ring 0 and ``r = 0.5`` (Nyquist) is in the last ring. The corner band is
    ``{f : r(f) > 0.5}``. Every frequency of the grid lies in exactly one ring or in the corners.

    Parameters
    ----------
    height, width : int
        Image size in pixels.
    edges : None, int or sequence of float
        ``None`` gives 8 equal-width rings, an int ``K`` gives ``K`` equal-width rings
        (:func:`band_edges`); a sequence gives custom edges, which must be strictly increasing,
        start at 0 and end at 0.5.

    Returns
    -------
    rings : torch.Tensor
        ``(K, height, width)`` bool, unshifted FFT layout.
    corners : torch.Tensor
        ``(height, width)`` bool mask of ``r > 0.5``.

    Raises
    ------
    DipscopeError
        For a non-positive size or invalid edges.
    """
    r = radial_frequency(height, width)
    e = _resolve_edges(edges)
    lower = r[None] > e[:-1, None, None]
    lower[0] = True  # ring 0 is closed at 0 and so holds the DC term
    rings = lower & (r[None] <= e[1:, None, None])
    corners = r > _NYQUIST
    return rings, corners


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
    """
    t = _as_float64(x, "x")
    _require_ndim(t, 3, "x", "(..., C, H, W)")
    stack = _band_stack(t.shape[-2], t.shape[-1], edges, t.device)
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
    """
    xt = _as_float64(x, "x")
    ref = _as_float64(x0, "x0")
    if ref.ndim != 3:
        raise DipscopeError(f"x0 must have shape (C, H, W), got shape {tuple(ref.shape)}")
    if xt.ndim not in (3, 4) or tuple(xt.shape[-3:]) != tuple(ref.shape):
        raise DipscopeError(
            f"x must have shape {tuple(ref.shape)} or (T, *{tuple(ref.shape)}), got shape {tuple(xt.shape)}"
        )
    ref = ref.to(xt.device)
    num = band_energy(xt - ref, edges)
    den = band_energy(ref, edges)
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
    e = band_edges(n_rings) if edges is None else _resolve_edges(edges)
    if e.numel() != n_rings + 1:
        raise DipscopeError(f"errors have {n_rings} rings (+ corner) but edges define {e.numel() - 1}")
    passing = (err[..., :n_rings] < float(tau)).to(torch.int64)  # nan < tau is False
    n_leading = torch.cumprod(passing, dim=-1).sum(dim=-1)
    return e.to(err.device)[n_leading]


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
