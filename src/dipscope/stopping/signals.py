"""What a stopping rule sees: the :class:`Context` of a fit (noise level, band powers of the noisy
image) and the :class:`Observation` a :class:`Probe` makes of the loop's state every few steps;
the no-reference image measures some rules read (blur, sharpness, σ estimate)."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from .. import spectral
from ..errors import DipscopeError

_GREY = (0.2989, 0.5870, 0.1140)  # Shi et al.'s rgb2gray weights

# ---------------------------------------------------------------------------------------------
# context and observations
# ---------------------------------------------------------------------------------------------


_DB2_HI = (-0.48296291314469025, 0.836516303737469, -0.22414386804185735, -0.12940952255092145)


SIGMA_ESTIMATORS = ("wavelet", "pca")
#: The estimator the stopping rules use unless told otherwise: the patch-covariance one, which
#: fine texture does not bias (``benchmarks/STOPPING.md``: σ = 15 read as 21.3 on baboon by the
#: wavelet estimator, 15.x by this one; the default rule's σ = 15 gap fell from 0.68 to 0.05 dB).
DEFAULT_SIGMA_ESTIMATOR = "pca"


def estimate_sigma(target: torch.Tensor, method: str = DEFAULT_SIGMA_ESTIMATOR) -> float:
    """Noise std of ``target`` (C, H, W) in [0, 1] units: :func:`estimate_sigma_pca` (``pca``,
    the default) or :func:`estimate_sigma_wavelet` (``wavelet``)."""
    if method == "wavelet":
        return estimate_sigma_wavelet(target)
    if method == "pca":
        return estimate_sigma_pca(target)
    raise DipscopeError(f"unknown σ estimator {method!r}; choose {' or '.join(SIGMA_ESTIMATORS)}")


def estimate_sigma_pca(target: torch.Tensor, patch: int = 7, max_patches: int = 40_000) -> float:
    """Noise std of ``target`` (C, H, W) from the eigenvalues of its patch covariance (Chen, Zhu
    & Heng, ICCV 2015).

    Every ``patch × patch × C`` patch (on a grid thin enough to keep at most ``max_patches``) is a
    vector; white noise of std σ adds σ² to every eigenvalue of their covariance, while the
    image's structure concentrates in the largest ones. Dropping the largest eigenvalues one by
    one until the mean of the rest is no larger than their median leaves the noise-only ones;
    their mean is σ². Unlike the finest wavelet band, which fine texture also fills (σ = 25 read
    as 29 on baboon), the small eigenvalues stay free of texture.
    """
    x = target.detach().double().cpu()
    c, h, w = x.shape
    p = min(patch, h, w)
    n = (h - p + 1) * (w - p + 1)
    stride = max(1, math.ceil(math.sqrt(n / max_patches)))
    cols = F.unfold(x[None], kernel_size=p, stride=stride)[0]  # (C·p², patches)
    cols = cols - cols.mean(dim=1, keepdim=True)
    eig = torch.linalg.eigvalsh(cols @ cols.T / cols.shape[1]).flip(0).clamp(min=0).numpy()
    for i in range(len(eig)):
        tail = eig[i:]
        if tail.mean() <= np.median(tail):
            return float(math.sqrt(tail.mean()))
    return float(math.sqrt(eig[-1]))


def estimate_sigma_wavelet(target: torch.Tensor) -> float:
    """Noise std of ``target`` (C, H, W) in [0, 1] units, averaged over channels.

    The estimator of scikit-image's ``skimage.restoration.estimate_sigma`` (Donoho & Johnstone:
    the median absolute value of the finest diagonal Daubechies-2 wavelet coefficients / 0.6745),
    written out here because PyWavelets, which scikit-image needs for it, is not a dependency:
    high-pass filter the rows and the columns with db2 (symmetric borders), keep every other
    sample, and take ``median(|HH|) / 0.6745``.
    """
    x = target.detach().double().cpu()[:, None]  # (C, 1, H, W)
    hi = torch.tensor(_DB2_HI, dtype=torch.float64).flip(0)
    n = len(_DB2_HI)
    xp = F.pad(x, (n - 1, n - 1, n - 1, n - 1), mode="reflect") if min(x.shape[-2:]) > n else x
    rows = F.conv2d(xp, hi.reshape(1, 1, 1, n))[..., :, 1::2]
    hh = F.conv2d(rows, hi.reshape(1, 1, n, 1))[..., 1::2, :]
    sigmas = [float(hh[c].abs().median()) / 0.6745 for c in range(hh.shape[0])]
    return float(np.mean(sigmas))


@dataclass
class Context:
    """What a rule knows before the fit: the measurement and its noise level.

    ``sigma`` is on the [0, 1] scale: the given one, else :func:`estimate_sigma` of ``y``
    (``sigma_estimated``, by ``estimator``, is kept either way).
    ``band_power[k]`` is the mean power per frequency of ``y`` in band ``k`` (rings of
    :func:`dipscope.spectral.band_masks`, then the corner band), averaged over channels; with
    the unitary FFT, white noise of std σ has ``σ²`` per frequency in every band.
    """

    sigma: float
    sigma_given: bool
    sigma_estimated: float
    band_power: np.ndarray
    band_count: np.ndarray
    edges: np.ndarray
    shape: tuple[int, int, int]
    estimator: str = DEFAULT_SIGMA_ESTIMATOR

    @classmethod
    def from_target(cls, target: torch.Tensor, sigma: float | None = None, bands: int = 8,
                    estimator: str = DEFAULT_SIGMA_ESTIMATOR) -> "Context":
        """``sigma`` on the [0, 1] scale (None: estimate it from ``target`` with ``estimator``,
        one of :data:`SIGMA_ESTIMATORS`)."""
        t = target.detach().float().cpu()
        est = estimate_sigma(t, estimator)
        edges = spectral.band_edges(bands)
        counts = _band_counts(t.shape[-2], t.shape[-1], edges)
        power = spectral.band_energy(t, edges).sum(0).numpy() / (t.shape[0] * counts)
        return cls(sigma=float(sigma) if sigma is not None else est, sigma_given=sigma is not None,
                   sigma_estimated=est, band_power=power, band_count=counts, edges=edges.numpy(),
                   shape=tuple(t.shape), estimator=estimator)

    def with_sigma(self, sigma: float | None) -> "Context":
        """The same context with another noise level (None: the estimated one)."""
        return Context(sigma=self.sigma_estimated if sigma is None else float(sigma), sigma_given=sigma is not None,
                       sigma_estimated=self.sigma_estimated, band_power=self.band_power,
                       band_count=self.band_count, edges=self.edges, shape=self.shape, estimator=self.estimator)

    def to_dict(self) -> dict[str, Any]:
        return {"sigma": self.sigma, "sigma_given": self.sigma_given, "sigma_estimated": self.sigma_estimated,
                "band_power": self.band_power.tolist(), "band_count": self.band_count.tolist(),
                "edges": self.edges.tolist(), "shape": list(self.shape), "estimator": self.estimator}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Context":
        """The inverse of :meth:`to_dict`; a record without ``estimator`` predates the choice and
        was estimated with ``wavelet``."""
        return cls(sigma=d["sigma"], sigma_given=d["sigma_given"], sigma_estimated=d["sigma_estimated"],
                   band_power=np.asarray(d["band_power"]), band_count=np.asarray(d["band_count"]),
                   edges=np.asarray(d["edges"]), shape=tuple(d["shape"]), estimator=d.get("estimator", "wavelet"))


def _band_counts(h: int, w: int, edges: torch.Tensor) -> np.ndarray:
    rings, corners = spectral.band_masks(h, w, edges)
    counts = torch.cat([rings.sum((-2, -1)), corners.sum()[None]]).double().numpy()
    return np.maximum(counts, 1.0)


@dataclass
class Observation:
    """The numbers a rule sees at one observation step.

    ``mse`` / ``mse_ema``: ``||y − x||² / N`` of the output / its EMA; ``res_band`` /
    ``res_band_ema``: mean power per frequency of the residual ``y − x`` per band (as
    :attr:`Context.band_power`); ``blur``, ``sharp``: Shi et al.'s measures of the output;
    ``wmv``: windowed moving variance of the outputs (nan until the window is full); ``emv``:
    exponential moving variance. A probe fills only what its rules need (others stay nan).
    """

    step: int
    loss: float = math.nan
    mse: float = math.nan
    mse_ema: float = math.nan
    blur: float = math.nan
    sharp: float = math.nan
    wmv: float = math.nan
    emv: float = math.nan
    res_band: np.ndarray | None = None
    res_band_ema: np.ndarray | None = None


FEATURES = ("mse", "mse_ema", "blur", "sharp", "wmv", "emv", "res_band", "res_band_ema")


class Probe:
    """Computes :class:`Observation` s from the fit's outputs (on the fit's device).

    The windowed variance keeps the last ``window`` steps of outputs in **float16** (half
    the memory of float32; for values in [0, 1] float16's 11-bit significand resolves 2⁻¹¹
    ≈ 5e-4 near 1, finer than bf16's 2⁻⁸ or uint8's 1/255, so the variance of outputs that
    change by ~1e-3 between observations is still measured); a window of 100 steps observed
    every 10 holds 10 images. The exponential variance keeps two float32 images.
    """

    def __init__(self, target: torch.Tensor, context: Context, needs: Iterable[str] = FEATURES,
                 window: int = 100, emv_alpha: float = 0.1) -> None:
        self.needs = set(needs)
        unknown = self.needs - set(FEATURES)
        if unknown:
            raise DipscopeError(f"unknown features {sorted(unknown)}")
        self.target = target.detach().float()
        self.context = context
        self.window = window
        self.emv_alpha = emv_alpha
        self._buf: deque[tuple[int, torch.Tensor]] = deque()
        self._emv_mean: torch.Tensor | None = None
        self._emv_var = 0.0
        self._last_step: int | None = None
        self._stack: torch.Tensor | None = None

    def __call__(self, step: int, output: torch.Tensor, ema: torch.Tensor | None = None,
                 loss: float = math.nan) -> Observation:
        x = output.detach().float()
        y = self.target.to(x.device)
        obs = Observation(step=step, loss=loss)
        n = self.needs
        if "mse" in n:
            obs.mse = float(torch.mean((y - x) ** 2))
        if "mse_ema" in n and ema is not None:
            obs.mse_ema = float(torch.mean((y - ema.float()) ** 2))
        if "res_band" in n:
            obs.res_band = self._res_band(y - x)
        if "res_band_ema" in n and ema is not None:
            obs.res_band_ema = self._res_band(y - ema.float())
        if "blur" in n or "sharp" in n:
            grey = to_grey(x)
            obs.blur = perceptual_blur(grey)
            obs.sharp = mlv_sharpness(grey)
        if "wmv" in n:
            obs.wmv = self._wmv(step, x)
        if "emv" in n:
            obs.emv = self._emv(step, x)
        self._last_step = step
        return obs

    def _res_band(self, r: torch.Tensor) -> np.ndarray:
        if self._stack is None or self._stack.device != r.device:
            self._stack = spectral.band_stack(r.shape[-2], r.shape[-1], torch.as_tensor(self.context.edges), r.device)
        p = torch.fft.fft2(r.double(), norm="ortho").abs().square().sum(0)
        energy = torch.einsum("hw,khw->k", p, self._stack).cpu().numpy()
        return energy / (r.shape[0] * self.context.band_count)

    def _wmv(self, step: int, x: torch.Tensor) -> float:
        """``(1/W') Σ_i ||x_i − x̄||² / N`` over the observations of the last ``window`` steps."""
        self._buf.append((step, x.to(torch.float16)))
        while self._buf and self._buf[0][0] <= step - self.window:
            self._buf.popleft()
        if len(self._buf) < 2:
            return math.nan
        spacing = step - self._buf[-2][0]
        if self._buf[0][0] > step - self.window + spacing:  # window not yet full
            return math.nan
        stack = torch.stack([b for _, b in self._buf]).float()
        return float(((stack - stack.mean(0)) ** 2).mean())

    def _emv(self, step: int, x: torch.Tensor) -> float:
        """Exponential moving variance (Wang et al.'s ES-EMV), ``α`` per step, compounded
        over the steps between observations: ``a = 1 − (1 − α)^Δ``,
        ``μ ← μ + a (x − μ)``, ``v ← (1 − a)(v + a ||x − μ_old||²/N)``."""
        if self._emv_mean is None:
            self._emv_mean = x.clone()
            self._emv_var = 0.0
            return math.nan
        gap = max(step - (self._last_step if self._last_step is not None else step - 1), 1)
        a = 1.0 - (1.0 - self.emv_alpha) ** gap
        d = x - self._emv_mean
        self._emv_var = (1 - a) * (self._emv_var + a * float(torch.mean(d ** 2)))
        self._emv_mean += a * d
        return self._emv_var


# ---------------------------------------------------------------------------------------------
# Shi et al.'s blur and sharpness measures
# ---------------------------------------------------------------------------------------------


def to_grey(x: torch.Tensor) -> torch.Tensor:
    """(C, H, W) → (H, W): Shi et al.'s luma weights for RGB, the channel itself for grey."""
    if x.shape[0] == 3:
        return (_GREY[0] * x[0] + _GREY[1] * x[1] + _GREY[2] * x[2]).clamp(0, 1)
    return x.mean(0)


def perceptual_blur(grey: torch.Tensor, size: int = 9) -> float:
    """No-reference perceptual blur of Crété-Roffet et al. (2007), in [0, 1] (1 = blurrier).

    Along each axis: blur the image with a ``size``-tap box filter, take absolute
    neighbour differences of the image ``D_F`` and of the blurred image ``D_B``, and the
    variation the blur removed ``D_V = max(D_F − D_B, 0)``; the blur along the axis is
    ``(ΣD_F − ΣD_V) / ΣD_F``; the result is the larger of the two axes. Borders of
    ``size // 2 + 1`` pixels are left out.
    """
    g = grey.double()[None, None]
    m = size // 2 + 1
    out = []
    for axis in (2, 3):
        kshape = (1, 1, size, 1) if axis == 2 else (1, 1, 1, size)
        pad = (0, 0, size // 2, size // 2) if axis == 2 else (size // 2, size // 2, 0, 0)
        b = F.conv2d(F.pad(g, pad), torch.full(kshape, 1.0 / size, dtype=g.dtype, device=g.device))
        d_f = (g.diff(dim=axis)).abs()[..., m:-m, m:-m]
        d_b = (b.diff(dim=axis)).abs()[..., m:-m, m:-m]
        s_f = float(d_f.sum())
        s_v = float((d_f - d_b).clamp_min(0).sum())
        out.append((s_f - s_v) / s_f if s_f > 0 else 1.0)
    return max(out)


def mlv_sharpness(grey: torch.Tensor, top: int = 1000, alpha: float = -0.01) -> float:
    """Maximum-local-variation sharpness of Bahrami & Kot (2014), as used by Shi et al.

    The MLV map holds, for every interior pixel, the largest absolute difference to its 8
    neighbours; its values sorted in decreasing order are weighted by ``exp(α i)``
    (``i = 1, 2, …``) and the result is the root mean square of the ``top`` largest
    weighted values.
    """
    g = grey.double()
    c = g[1:-1, 1:-1]
    h, w = g.shape
    diffs = [(g[1 + dy:h - 1 + dy, 1 + dx:w - 1 + dx] - c).abs()
             for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    mlv = torch.stack(diffs).amax(0).reshape(-1)
    k = min(top, mlv.numel())
    v = torch.topk(mlv, k).values
    weights = torch.exp(alpha * torch.arange(1, k + 1, dtype=v.dtype, device=v.device))
    return float(torch.sqrt(torch.mean((v * weights) ** 2)))
