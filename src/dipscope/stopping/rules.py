"""Stopping rules: each reads a stream of :class:`~dipscope.stopping.signals.Observation` and
says when to stop and which step's image to return; :data:`RULES` names them, :func:`make_rule`
builds one, :func:`replay` runs one over recorded observations."""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Sequence

import numpy as np

from ..errors import DipscopeError
from .signals import Context, Observation


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
    fitting noise is decided. ``σ`` is the given noise level, else estimated from ``y``
    (:func:`~dipscope.stopping.signals.estimate_sigma`).
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
DEFAULT_RULE = "spectral-lag"
#: Whether ``--stop auto`` returns the EMA of the outputs at the rule's step (where the fit keeps one).
DEFAULT_RETURN_EMA = True


def make_rule(name: str, **params: Any) -> Rule:
    """A rule by name (``auto`` = :data:`DEFAULT_RULE`) with optional parameters."""
    key = DEFAULT_RULE if name == "auto" else name
    if key not in RULES:
        raise DipscopeError(f"unknown stopping rule {name!r}; choose auto, none or one of {', '.join(RULES)}")
    return RULES[key](**params)


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
