"""Early stopping of the DIP fit without a clean reference.

One small interface serves the fit loop and offline evaluation alike:

* a :class:`Probe` turns what the loop shows every ``k`` steps (the output ``x_t``, its EMA,
  the noisy target ``y``) into a few numbers — an :class:`Observation`;
* a :class:`Rule` reads the stream of observations and says, at each one, whether to stop,
  and which step's image to return (:attr:`Rule.candidate`, always the current step or an
  earlier one);
* :class:`EarlyStopping` is the :class:`~dipscope.fit.Callback` that runs a probe and a rule
  inside :func:`~dipscope.fit.fit`, keeps the image of the rule's candidate step (the raw
  output and its EMA) and hands it back as :attr:`EarlyStopping.choice`.

Because rules see only observations, a recorded stream of observations (what
``benchmarks/stopping.py`` stores per run) can be replayed through any rule with
:func:`replay` — adding a rule does not mean refitting.

Windows and patiences are given in *steps* and converted with the steps of the observations
themselves, so a rule behaves the same whether the loop observes every step or every
``k``-th step (then a window of ``W`` steps holds ``W / k`` observations).

Rules (names for :func:`make_rule` and ``dipscope denoise --stop``):

``wmv``
    ES-WMV of Wang et al. (TMLR 2023): variance of the outputs over a sliding window of
    ``W = 100`` steps; stop when it has not reached a new minimum for ``P = 1000`` steps;
    return the output at the minimum.
``emv``
    ES-EMV, the same with an exponential moving variance (``α = 0.1`` per step).
``shi``
    Shi et al. (IJCV 2022): the ratio of a perceptual blur measure to a sharpness measure
    of the output; stop when the means of the ratio over the last two windows of ``n = 100``
    steps differ by less than ``ε = 0.01``.
``discrepancy``
    Morozov's discrepancy principle: stop when ``||y − x_t||² / N ≤ σ²``.
``spectral``
    Ours: the discrepancy principle applied in the frequency band where the signal stops
    dominating the noise (see :class:`SpectralRule`).
``discrepancy-lag``, ``spectral-lag``
    Those two, then ``DEFAULT_LAG = 200`` more steps (:class:`Delayed`): made for returning the
    EMA of the outputs, which lags the outputs by about ``α / (1 − α) = 100`` steps.
``discrepancy-scaled``, ``spectral-scaled``
    Those two fire at step ``t``; stop at ``DEFAULT_FACTOR · t`` (= 2t): a wait that scales with
    the fit's own pace (:class:`Delayed` with ``factor``).

The default (``auto``) is ``discrepancy-lag`` with σ estimated from the noisy image, returning
the EMA. It was chosen on the reduced CPU benchmark (15 fits, ``benchmarks/STOPPING.md``) by the
largest mean gap to the oracle over σ ∈ {15, 25, 50} on the cbm3d9 crops, counting both σ
estimated and σ given (``--stop-sigma``): 0.65 dB, against 0.58 for ``spectral-lag`` (a tie within
the spread of 3 runs; the simpler rule kept). The ``-scaled`` rules do better with σ estimated
but fall apart when σ is given (up to 4 dB at σ = 50), so they are offered, not the default.
The full-size, 2-seed benchmark (GPU) has not been run.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import spectral
from .errors import DipscopeError
from .fit import Callback, FitState

_GREY = (0.2989, 0.5870, 0.1140)  # Shi et al.'s rgb2gray weights

# ---------------------------------------------------------------------------------------------
# context and observations
# ---------------------------------------------------------------------------------------------


_DB2_HI = (-0.48296291314469025, 0.836516303737469, -0.22414386804185735, -0.12940952255092145)


def estimate_sigma(target: torch.Tensor) -> float:
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

    ``sigma`` is on the [0, 1] scale: the given one, else :func:`estimate_sigma` of ``y``.
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

    @classmethod
    def from_target(cls, target: torch.Tensor, sigma: float | None = None, bands: int = 8) -> "Context":
        """``sigma`` on the [0, 1] scale (None: estimate it from ``target``)."""
        t = target.detach().float().cpu()
        est = estimate_sigma(t)
        edges = spectral.band_edges(bands)
        counts = _band_counts(t.shape[-2], t.shape[-1], edges)
        power = spectral.band_energy(t, edges).sum(0).numpy() / (t.shape[0] * counts)
        return cls(sigma=float(sigma) if sigma is not None else est, sigma_given=sigma is not None,
                   sigma_estimated=est, band_power=power, band_count=counts, edges=edges.numpy(),
                   shape=tuple(t.shape))

    def with_sigma(self, sigma: float | None) -> "Context":
        """The same context with another noise level (None: the estimated one)."""
        return Context(sigma=self.sigma_estimated if sigma is None else float(sigma), sigma_given=sigma is not None,
                       sigma_estimated=self.sigma_estimated, band_power=self.band_power,
                       band_count=self.band_count, edges=self.edges, shape=self.shape)

    def to_dict(self) -> dict[str, Any]:
        return {"sigma": self.sigma, "sigma_given": self.sigma_given, "sigma_estimated": self.sigma_estimated,
                "band_power": self.band_power.tolist(), "band_count": self.band_count.tolist(),
                "edges": self.edges.tolist(), "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Context":
        return cls(sigma=d["sigma"], sigma_given=d["sigma_given"], sigma_estimated=d["sigma_estimated"],
                   band_power=np.asarray(d["band_power"]), band_count=np.asarray(d["band_count"]),
                   edges=np.asarray(d["edges"]), shape=tuple(d["shape"]))


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
            self._stack = spectral._band_stack(r.shape[-2], r.shape[-1], torch.as_tensor(self.context.edges), r.device)
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


# ---------------------------------------------------------------------------------------------
# rules
# ---------------------------------------------------------------------------------------------


class Rule:
    """A stopping rule: :meth:`reset` before a fit, :meth:`update` at every observation.

    ``update`` returns True to stop. :attr:`candidate` is the step whose image the rule
    returns (set only to the current step of an update, so a caller can keep that image);
    ``None`` means the last observed step. :meth:`finish` is called when the fit ended
    without the rule stopping it.
    """

    name = "rule"
    needs: tuple[str, ...] = ()

    def reset(self, context: Context) -> None:
        self.context = context
        self.candidate: int | None = None
        self.stopped_at: int | None = None
        self.last_step: int | None = None

    def update(self, obs: Observation) -> bool:
        raise NotImplementedError

    def finish(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **{k: v for k, v in vars(self).items()
                                      if isinstance(v, (int, float, str, bool)) and not k.startswith("_")
                                      and k not in ("candidate", "stopped_at", "last_step")}}


class WMVRule(Rule):
    """ES-WMV (Wang et al., "Early stopping for deep image prior", TMLR 2023).

    With ``VAR_t = (1/W) Σ_{w<W} ||x_{t−w} − x̄_t||² / N`` the variance of the outputs over
    the window of the last ``window`` steps (:class:`Probe`, float16 window), track its
    minimum; stop when no new minimum has come for ``patience`` steps and return the output
    at the minimum. Defaults: ``W = 100``, ``P = 1000`` (the paper's, in steps).
    """

    name = "wmv"
    needs = ("wmv",)
    feature = "wmv"

    def __init__(self, window: int = 100, patience: int = 1000) -> None:
        self.window = window
        self.patience = patience

    def reset(self, context: Context) -> None:
        super().reset(context)
        self._best = math.inf

    def update(self, obs: Observation) -> bool:
        v = getattr(obs, self.feature)
        if math.isfinite(v) and v < self._best:
            self._best, self.candidate = v, obs.step
        self.last_step = obs.step
        if self.candidate is not None and obs.step - self.candidate >= self.patience:
            self.stopped_at = obs.step
            return True
        return False


class EMVRule(WMVRule):
    """ES-EMV (Wang et al.): as :class:`WMVRule` with the exponential moving variance
    (``α = 0.1`` per step, :class:`Probe`); needs no window of images."""

    name = "emv"
    needs = ("emv",)
    feature = "emv"

    def __init__(self, alpha: float = 0.1, patience: int = 1000) -> None:
        self.alpha = alpha
        self.patience = patience


class ShiRule(Rule):
    """Blur/sharpness-ratio criterion of Shi et al. (IJCV 2022, "Measuring and controlling the
    spectral bias of the deep image prior").

    At every observation ``ρ_t = blur(x_t) / sharpness(x_t)`` (:func:`perceptual_blur`,
    :func:`mlv_sharpness`, on grey). Once ``t > 2n``, stop when the mean of ``ρ`` over the
    steps ``[t − 2n, t − n)`` and over ``[t − n, t]`` differ by less than ``ε``; return the
    current output. Their defaults: ``n = 100`` steps, ``ε = 0.01``.
    """

    name = "shi"
    needs = ("blur", "sharp")

    def __init__(self, n: int = 100, epsilon: float = 0.01) -> None:
        self.n = n
        self.epsilon = epsilon

    def reset(self, context: Context) -> None:
        super().reset(context)
        self._hist: deque[tuple[int, float]] = deque()

    def update(self, obs: Observation) -> bool:
        t = obs.step
        self.candidate = self.last_step = t
        ratio = obs.blur / obs.sharp if obs.sharp > 0 else math.inf
        self._hist.append((t, ratio))
        while self._hist and self._hist[0][0] < t - 2 * self.n:
            self._hist.popleft()
        if t <= 2 * self.n:
            return False
        old = [r for s, r in self._hist if s < t - self.n]
        new = [r for s, r in self._hist if s >= t - self.n]
        if old and new and abs(np.mean(old) - np.mean(new)) < self.epsilon:
            self.stopped_at = t
            return True
        return False


class DiscrepancyRule(Rule):
    """Morozov's discrepancy principle: stop at the first step with
    ``||y − x_t||² / N ≤ τ σ²`` and return that output (``σ`` from the context: the given
    noise level, else scikit-image's estimate; ``τ = 1``). ``on="ema"`` tests the EMA's
    residual instead."""

    name = "discrepancy"

    def __init__(self, tau: float = 1.0, on: str = "output") -> None:
        if on not in ("output", "ema"):
            raise DipscopeError("on must be output or ema")
        self.tau = tau
        self.on = on
        self.needs = ("mse",) if on == "output" else ("mse_ema",)

    def update(self, obs: Observation) -> bool:
        self.candidate = self.last_step = obs.step
        value = obs.mse if self.on == "output" else obs.mse_ema
        if math.isfinite(value) and value <= self.tau * self.context.sigma ** 2:
            self.stopped_at = obs.step
            return True
        return False


class SpectralRule(Rule):
    """Ours: the discrepancy principle in the band where signal and noise cross.

    Reasoning. The study's picture is that DIP fits ``y`` like a low-pass filter whose radius
    widens with the steps: low bands are fitted first — signal *and* noise — and high bands
    last. For a filter that passes bands ``k ≤ k'`` and stops the rest, the error against the
    clean image is ``Σ_{k≤k'} N_k + Σ_{k>k'} S_k`` (noise passed, signal lost), which is least
    when the cut sits where the clean image's power per frequency ``S_k`` falls to the noise
    power ``σ²`` — Wiener's crossing. Neither ``S_k`` nor the filter is known, but both show
    in measurable spectra: the noisy image has ``P_k(y) = S_k + σ²`` per frequency (white
    noise is flat with the unitary FFT), and the residual ``y − x_t`` has, in a band the fit
    has learnt exactly up to the clean image, power ``σ²`` — the noise left behind. So:

    1. the *crossing band* ``k*`` is the last band, counting up from 0, in which the signal
       still dominates: ``P_j(y) ≥ (1 + snr) σ²`` for all ``j ≤ k*`` (``snr = 1``: signal
       power ≥ noise power);
    2. stop at the first step at which the residual's power per frequency in band ``k*`` has
       come down to the noise floor, ``res_{k*}(t) ≤ τ σ²``, and return that output.

    Compared with the plain discrepancy principle, which waits for the residual over *all*
    bands to reach ``σ²`` — averaging low bands that are already over-fitted with high bands
    that are not fitted at all, so its stop depends on how much high-frequency signal the
    image has — this tests the one band where the trade-off between losing signal and
    fitting noise is decided. ``σ`` is the given noise level, else scikit-image's estimate.
    """

    name = "spectral"
    needs = ("res_band",)

    def __init__(self, snr: float = 1.0, tau: float = 1.0, on: str = "output") -> None:
        if on not in ("output", "ema"):
            raise DipscopeError("on must be output or ema")
        self.snr = snr
        self.tau = tau
        self.on = on
        self.needs = ("res_band",) if on == "output" else ("res_band_ema",)

    def reset(self, context: Context) -> None:
        super().reset(context)
        self.band = crossing_band(context, self.snr)

    def update(self, obs: Observation) -> bool:
        self.candidate = self.last_step = obs.step
        res = obs.res_band if self.on == "output" else obs.res_band_ema
        if res is not None and res[self.band] <= self.tau * self.context.sigma ** 2:
            self.stopped_at = obs.step
            return True
        return False


class Delayed(Rule):
    """Another rule, then ``delay`` more steps: when ``rule`` fires at step ``t``, keep fitting
    until ``t + delay`` and return that step's image.

    Meant for returning the EMA of the outputs: the EMA ``x̄_t = α x̄_{t−1} + (1 − α) x_t``
    averages the outputs of roughly the last ``1 / (1 − α)`` steps (mean lag ``α / (1 − α)``
    ≈ 100 steps at ``α = 0.99``), so the EMA that best represents the outputs around ``t`` is
    the one about ``delay = α / (1 − α)`` steps later.

    With ``factor`` ≠ 1 the wait scales with the fit's own pace: stop at ``factor·t + delay``.
    A fit that reaches the noise level late (low σ, a smooth image) also fits the remaining
    detail slowly, so the best EMA lies further after ``t`` than for a fast fit (measured in
    ``benchmarks/STOPPING.md``: the best fixed delay grew from 200 to 300 steps when σ fell from
    50 to 15).
    """

    def __init__(self, rule: Rule, delay: int = 100, factor: float = 1.0) -> None:
        if delay < 0 or factor < 1.0:
            raise DipscopeError("a delayed rule needs delay ≥ 0 and factor ≥ 1")
        self.inner = rule
        self.delay = delay
        self.factor = factor
        self.name = f"{rule.name}+{delay}" if factor == 1.0 else f"{rule.name}×{factor:g}+{delay}"
        self.needs = rule.needs

    def reset(self, context: Context) -> None:
        super().reset(context)
        self.inner.reset(context)
        self.fired_at: int | None = None

    def update(self, obs: Observation) -> bool:
        self.candidate = self.last_step = obs.step
        if self.fired_at is None and self.inner.update(obs):
            self.fired_at = obs.step
        if self.fired_at is not None and obs.step >= self.factor * self.fired_at + self.delay:
            self.stopped_at = obs.step
            return True
        return False

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "delay": self.delay, "factor": self.factor, "inner": self.inner.describe()}


def crossing_band(context: Context, snr: float = 1.0) -> int:
    """The last ring ``k`` (counting up from 0) with ``P_j(y) ≥ (1 + snr) σ²`` for every
    ``j ≤ k``; 0 when even ring 0 fails."""
    power = context.band_power[:-1]  # rings only, not the corner band
    ok = power >= (1.0 + snr) * context.sigma ** 2
    k = 0
    while k + 1 < len(ok) and ok[k + 1]:
        k += 1
    return k


#: Steps the ``-lag`` rules wait after their inner rule fires (see :class:`Delayed`).
DEFAULT_LAG = 200


class LaggedDiscrepancyRule(Delayed):
    """The discrepancy principle, then ``delay`` more steps, for returning the EMA
    (:class:`DiscrepancyRule`, :class:`Delayed`)."""

    def __init__(self, tau: float = 1.0, delay: int = DEFAULT_LAG) -> None:
        super().__init__(DiscrepancyRule(tau=tau), delay)
        self.name = "discrepancy-lag"


class LaggedSpectralRule(Delayed):
    """The spectral rule, then ``delay`` more steps, for returning the EMA
    (:class:`SpectralRule`, :class:`Delayed`)."""

    def __init__(self, snr: float = 1.0, tau: float = 1.0, delay: int = DEFAULT_LAG) -> None:
        super().__init__(SpectralRule(snr=snr, tau=tau), delay)
        self.name = "spectral-lag"


#: How much longer than its inner rule's step a ``-scaled`` rule fits (see :class:`Delayed`).
DEFAULT_FACTOR = 2.0


class ScaledDiscrepancyRule(Delayed):
    """The discrepancy principle fires at step ``t``; stop at ``factor·t`` (+ ``delay``) and
    return that step's image — a wait proportional to the fit's pace (:class:`Delayed`)."""

    def __init__(self, tau: float = 1.0, factor: float = DEFAULT_FACTOR, delay: int = 0) -> None:
        super().__init__(DiscrepancyRule(tau=tau), delay, factor)
        self.name = "discrepancy-scaled"


class ScaledSpectralRule(Delayed):
    """The spectral rule fires at step ``t``; stop at ``factor·t`` (+ ``delay``) (:class:`Delayed`)."""

    def __init__(self, snr: float = 1.0, tau: float = 1.0, factor: float = DEFAULT_FACTOR, delay: int = 0) -> None:
        super().__init__(SpectralRule(snr=snr, tau=tau), delay, factor)
        self.name = "spectral-scaled"


RULES: dict[str, type[Rule]] = {
    "wmv": WMVRule, "emv": EMVRule, "shi": ShiRule, "discrepancy": DiscrepancyRule, "spectral": SpectralRule,
    "discrepancy-lag": LaggedDiscrepancyRule, "spectral-lag": LaggedSpectralRule,
    "discrepancy-scaled": ScaledDiscrepancyRule, "spectral-scaled": ScaledSpectralRule,
}
#: What ``--stop auto`` uses (chosen on the benchmark, see ``benchmarks/STOPPING.md``).
DEFAULT_RULE = "discrepancy-lag"
#: Whether ``--stop auto`` returns the EMA of the outputs at the rule's step (where the fit keeps one).
DEFAULT_RETURN_EMA = True


def make_rule(name: str, **params: Any) -> Rule:
    """A rule by name (``auto`` = :data:`DEFAULT_RULE`) with optional parameters."""
    key = DEFAULT_RULE if name == "auto" else name
    if key not in RULES:
        raise DipscopeError(f"unknown stopping rule {name!r}; choose auto, none or one of {', '.join(RULES)}")
    return RULES[key](**params)


# ---------------------------------------------------------------------------------------------
# the callback, and offline replay
# ---------------------------------------------------------------------------------------------


@dataclass
class Choice:
    """The image a stopping rule returns, and how it was chosen."""

    rule: str
    step: int
    image: torch.Tensor
    source: str  # "ema" or "output"
    stopped_at: int | None
    sigma: float
    sigma_given: bool
    output: torch.Tensor = field(repr=False, default=None)  # type: ignore[assignment]
    ema: torch.Tensor | None = field(repr=False, default=None)

    def summary(self) -> dict[str, Any]:
        return {"rule": self.rule, "step": self.step, "source": self.source, "stopped_at": self.stopped_at,
                "stopped_early": self.stopped_at is not None, "sigma_255": 255.0 * self.sigma,
                "sigma_given": self.sigma_given}


class EarlyStopping(Callback):
    """Runs ``rule`` inside the fit; asks the loop to stop when the rule says so.

    ``sigma`` (0–255 scale) is the noise level if known, else it is estimated from
    ``target``. After the fit, :attr:`choice` holds the rule's image: the EMA at the rule's
    step when ``return_ema`` and the fit keeps an EMA, else the raw output.
    """

    def __init__(self, rule: Rule | str, target: torch.Tensor, sigma: float | None = None,
                 return_ema: bool = DEFAULT_RETURN_EMA, every: int = 1) -> None:
        self.rule = make_rule(rule) if isinstance(rule, str) else rule
        self.target = target
        self.sigma = None if sigma is None else sigma / 255.0
        self.return_ema = return_ema
        self.every = every
        self.choice: Choice | None = None

    def on_start(self, state: FitState) -> None:
        self.context = Context.from_target(self.target, self.sigma)
        self.probe = Probe(self.target, self.context, needs=self.rule.needs)
        self.rule.reset(self.context)
        self._kept: tuple[int, torch.Tensor, torch.Tensor | None] | None = None
        self._stopped = False
        self._first = True
        self.choice = None

    def observe(self, state: FitState) -> bool:
        if self._stopped:
            return True
        if self._first:
            self._first = False
            if state.ema is None and isinstance(self.rule, Delayed):
                self.rule.delay = 0  # the lag is for the EMA; without one there is nothing to wait for
        obs = self.probe(state.step, state.output, state.ema, state.loss)
        stop = self.rule.update(obs)
        if self.rule.candidate == state.step:
            ema = state.ema
            self._kept = (state.step, state.output.detach().float().cpu().clone(),
                          None if ema is None else ema.detach().float().cpu().clone())
        self._stopped = bool(stop)
        return self._stopped

    def on_end(self, state: FitState) -> None:
        if not self._stopped:
            self.rule.finish()
        if self._kept is None or (self.rule.candidate is None and self._kept[0] != state.step):
            ema = state.ema
            self._kept = (state.step, state.output.detach().float().cpu().clone(),
                          None if ema is None else ema.detach().float().cpu().clone())
        step, out, ema = self._kept
        use_ema = self.return_ema and ema is not None
        self.choice = Choice(rule=self.rule.name, step=step, image=ema if use_ema else out,
                             source="ema" if use_ema else "output", stopped_at=self.rule.stopped_at,
                             sigma=self.context.sigma, sigma_given=self.context.sigma_given, output=out, ema=ema)


def replay(rule: Rule, context: Context, observations: Sequence[Observation]) -> tuple[int, int | None]:
    """Run ``rule`` over recorded observations; returns (chosen step, step it stopped at or None)."""
    rule.reset(context)
    for obs in observations:
        if rule.update(obs):
            break
    else:
        rule.finish()
    chosen = rule.candidate if rule.candidate is not None else (observations[-1].step if observations else 0)
    return chosen, rule.stopped_at
