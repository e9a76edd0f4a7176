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

The default (``auto``) is ``spectral-lag`` with σ estimated from the noisy image by the
patch-covariance estimator (:data:`DEFAULT_SIGMA_ESTIMATOR`, ``pca``), returning the EMA of the
outputs at the chosen step. The ``-scaled`` rules wait in proportion to the step at which their
signal came, which makes them sensitive to a σ that is given rather than estimated. How each
rule does against the oracle best step is measured by ``benchmarks/stopping.py`` and reported in
the benchmark pages, not here.
"""

from __future__ import annotations

from .callback import Choice, EarlyStopping
from .outcome import Outcome, outcome, run_choice
from .rules import (DEFAULT_FACTOR, DEFAULT_LAG, DEFAULT_RETURN_EMA, DEFAULT_RULE, RULES, Delayed, DiscrepancyRule,
                    EMVRule, LaggedDiscrepancyRule, LaggedSpectralRule, Rule, ScaledDiscrepancyRule,
                    ScaledSpectralRule, ShiRule, SpectralRule, WMVRule, crossing_band, make_rule, replay)
from .signals import (DEFAULT_SIGMA_ESTIMATOR, FEATURES, SIGMA_ESTIMATORS, Context, Observation, Probe, estimate_sigma, estimate_sigma_pca,
                      estimate_sigma_wavelet, mlv_sharpness, perceptual_blur, to_grey)
from ..errors import DipscopeError

__all__ = ["Choice", "EarlyStopping", "Outcome", "outcome", "run_choice", "DEFAULT_FACTOR", "DEFAULT_LAG", "DEFAULT_RETURN_EMA", "DEFAULT_RULE", "RULES",
           "Delayed", "DiscrepancyRule", "EMVRule", "LaggedDiscrepancyRule", "LaggedSpectralRule", "Rule",
           "ScaledDiscrepancyRule", "ScaledSpectralRule", "ShiRule", "SpectralRule", "WMVRule", "crossing_band",
           "make_rule", "replay", "DEFAULT_SIGMA_ESTIMATOR", "FEATURES", "SIGMA_ESTIMATORS", "Context", "Observation", "Probe", "estimate_sigma",
           "estimate_sigma_pca", "estimate_sigma_wavelet", "mlv_sharpness",
           "perceptual_blur", "to_grey", "DipscopeError"]
