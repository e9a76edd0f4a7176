"""Frequency rings: the radial frequency of a grid, ring edges and masks (see :mod:`dipscope.spectral`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import numpy as np
import torch

from ..errors import DipscopeError

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


def resolve_edges(edges: EdgesLike) -> torch.Tensor:
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


def band_stack(height: int, width: int, edges: EdgesLike, device: torch.device) -> torch.Tensor:
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

    Examples
    --------
    >>> r = radial_frequency(4, 4)
    >>> float(r[0, 1]), float(r[2, 2])
    (0.25, 0.7071067811865476)

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

    Examples
    --------
    >>> band_edges(4)
    tensor([0.0000, 0.1250, 0.2500, 0.3750, 0.5000], dtype=torch.float64)

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
    e = resolve_edges(edges)
    lower = r[None] > e[:-1, None, None]
    lower[0] = True  # ring 0 is closed at 0 and so holds the DC term
    rings = lower & (r[None] <= e[1:, None, None])
    corners = r > _NYQUIST
    return rings, corners

