"""The fit loop's vocabulary: its settings (:class:`FitConfig`), what an observer sees
(:class:`FitState`), the observer interface (:class:`Callback`) and the outcome (:class:`FitResult`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from ..errors import DipscopeError


#: Fit settings added after runs were first recorded, with the value that reproduces what every
#: run recorded before them did. A finished run whose ``run.json`` lacks one of these is the same
#: run as a task that asks for this value (``dipscope.runs.sweep`` resumes it instead of refitting).
ADDED_SETTINGS: dict[str, object] = {"cuda_graph": False, "flush_denormals": False}


#: The *reference mode*: the original implementation's execution (fp32, NCHW, eager, stock Adam;
#: ``fast=False`` also rules out CUDA graphs). ``replace(config, **REFERENCE_MODE)`` applies it.
REFERENCE_MODE: dict[str, object] = {"precision": "fp32", "channels_last": False, "fast": False, "compile": False}


@dataclass
class FitConfig:
    """Everything about the optimisation that is not the architecture.

    Parameters
    ----------
    steps : number of Adam updates (the maximum, when a callback may stop earlier).
    lr : Adam learning rate.
    input_noise : distribution of ``z``: ``uniform`` (U[0,1)·scale, the original) or ``normal``.
    input_scale : the factor applied to ``z`` (original: 0.1; the study: N(0,1) with 1).
    reg_noise_std : std of the Gaussian perturbation added to ``z`` at every step (0: none).
    ema : EMA factor α of the outputs, or None.
    pixel_batch : for coordinate models, fit random minibatches of this many pixels
        (drawn with replacement, as in the study); None fits all pixels every step.
    observe_every : steps between observations (metrics, callbacks, divergence checks).
    recover_divergence : reload the last good weights on NaN or a loss jump.
    divergence_factor : a loss more than this factor above the last observed one is a
        divergence (the original's 5 dB PSNR drop, i.e. 10^0.5).
    device : ``auto`` (cuda → mps → cpu), ``cpu``, ``cuda[:i]`` or ``mps``.
    precision : ``fp32``, ``bf16`` (autocast, fp32 weights and loss), ``auto`` (bf16 on CUDA
        and on CPUs with native bf16, fp32 elsewhere) or ``fp64`` (slow; for exactness checks).
    channels_last : memory layout of convolutional networks; None picks the faster one
        (:func:`resolve_layout`).
    fast : the fast execution path's tweaks, each the same arithmetic up to float rounding
        (fused Adam; the vectorised backward passes of reflection padding and ×2 bilinear
        upsampling, :mod:`dipscope.models.adjoints`; TF32 and cuDNN autotuning on CUDA).
        :data:`REFERENCE_MODE` (``fast=False, precision="fp32", channels_last=False``, no
        compile) is the original implementation's execution (fp32, NCHW, eager, stock Adam,
        PyTorch's kernels).
    compile : run the network through ``torch.compile`` (off by default: compilation costs
        minutes up front, and a DIP step is not reliably faster for it on a CPU).
    cuda_graph : capture the whole training step (forward, loss, backward, Adam) once as a
        CUDA graph and replay it (:mod:`dipscope.fit.graph`): removes the per-kernel launch
        cost that dominates small networks on a GPU. CUDA only, fast path only, not with
        ``compile`` or pixel minibatches. Off by default; the loop around it gives exactly
        the ordinary loop's numbers.
    flush_denormals : on a CPU, flush subnormal floats (|x| < 1.2e-38) to zero during the fit
        (:func:`dipscope.runtime.flushed_denormals`). Adam's state for a weight whose gradient
        has all but vanished decays into subnormal numbers, which x86 CPUs process through a
        slow microcode path (a collapsed DIP-Linear-2048 fit is the case in point). Values
        that small change no image (Adam divides by √v + 1e-8), but the arithmetic is no longer
        bit-identical, so it is off by default and recorded. Refused (before the first step)
        where it cannot apply: off the CPU, or a CPU torch cannot set to flush. With more than one
        torch thread, worker threads started earlier do not flush (exact there, less speed-up).
    seed : seeds the weights, the input and all noise of the fit.
    """

    steps: int = 3000
    lr: float = 0.01
    input_noise: Literal["uniform", "normal"] = "uniform"
    input_scale: float = 0.1
    reg_noise_std: float = 1.0 / 30.0
    ema: float | None = 0.99
    pixel_batch: int | None = None
    observe_every: int = 10
    recover_divergence: bool = True
    divergence_factor: float = 10 ** 0.5
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool | None = None
    fast: bool = True
    compile: bool = False
    cuda_graph: bool = False
    flush_denormals: bool = False
    seed: int = 0

    def validate(self) -> None:
        if self.steps < 0:
            raise DipscopeError("steps must be ≥ 0")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise DipscopeError(f"the learning rate must be a finite number > 0, not {self.lr}")
        for name in ("input_scale", "reg_noise_std"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise DipscopeError(f"{name} must be a finite number ≥ 0, not {value}")
        if not (self.divergence_factor > 1 and math.isfinite(self.divergence_factor)):
            raise DipscopeError(f"divergence_factor must be a finite number > 1, not {self.divergence_factor}")
        if self.seed < 0:
            raise DipscopeError(f"the seed must be ≥ 0, not {self.seed}")
        if self.input_noise not in ("uniform", "normal"):
            raise DipscopeError(f"unknown input noise {self.input_noise!r}; choose uniform or normal")
        if self.ema is not None and not 0 <= self.ema < 1:
            raise DipscopeError("ema must be in [0, 1)")
        if self.observe_every < 1:
            raise DipscopeError("observe_every must be ≥ 1")
        if self.pixel_batch is not None and self.pixel_batch < 1:
            raise DipscopeError("pixel_batch must be ≥ 1")
        if self.cuda_graph and (self.pixel_batch or self.compile or not self.fast):
            raise DipscopeError("CUDA graphs are part of the fast path: not with --reference, --compile or pixel "
                                "minibatches")


@dataclass
class FitState:
    """What an observer sees at an observation step.

    ``output`` and ``ema`` are (C, H, W) float32 tensors on the fit's device, cropped to the
    image; they are computed only when an observer reads them.
    """

    step: int
    steps: int
    loss: float
    net: torch.nn.Module
    _output_fn: Any = field(repr=False)
    _ema_fn: Any = field(repr=False)
    run: int = 0
    seed: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    _cache: dict[str, torch.Tensor | None] = field(default_factory=dict, repr=False)

    @property
    def output(self) -> torch.Tensor:
        if "output" not in self._cache:
            self._cache["output"] = self._output_fn()
        return self._cache["output"]  # type: ignore[return-value]

    @property
    def ema(self) -> torch.Tensor | None:
        if "ema" not in self._cache:
            self._cache["ema"] = self._ema_fn()
        return self._cache["ema"]


class Callback:
    """Observer of the fit. Override what you need; ``observe`` may return True to stop."""

    every: int = 1  # observe every ``every``-th observation step of the loop

    def on_start(self, state: FitState) -> None:
        pass

    def observe(self, state: FitState) -> bool | None:
        return None

    def on_end(self, state: FitState) -> None:
        pass


@dataclass
class FitResult:
    """Outcome of :func:`fit`. Images are (C, H, W) float32 CPU tensors."""

    final: torch.Tensor
    ema: torch.Tensor | None
    best: torch.Tensor | None
    best_step: int | None
    best_psnr: float | None
    history: list[dict[str, float]]
    losses: np.ndarray
    steps_done: int
    interrupted: bool
    stopped_early: bool
    recoveries: list[int]
    seconds: float
    device: dict[str, Any]
    precision: str
    n_parameters: int
    seed: int = 0
    channels_last: bool = False
    grouped: int = 1
    at_once: int = 1  # runs fitted at the same time as this one, itself included (dipscope.fit.parallel)

    def summary(self) -> dict[str, Any]:
        """JSON-ready scalars of the result (for ``run.json``)."""
        last = self.history[-1] if self.history else {}
        return {
            "steps_done": self.steps_done,
            "interrupted": self.interrupted,
            "stopped_early": self.stopped_early,
            "best_step": self.best_step,
            "best_psnr": self.best_psnr,
            "final_psnr": last.get("psnr_final"),
            "ema_psnr": last.get("psnr_ema_final"),
            "final_loss": float(self.losses[-1]) if len(self.losses) else None,
            "recoveries": self.recoveries,
            "seconds": self.seconds,
            "seconds_per_step": self.seconds / max(self.steps_done, 1),
            "n_parameters": self.n_parameters,
            "seed": self.seed,
            "precision": self.precision,
            "channels_last": self.channels_last,
            "runs_fitted_together": self.grouped,
            "runs_at_once": self.at_once,
        }
