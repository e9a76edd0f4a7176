"""Monte-Carlo check of the kernels: random finite-width networks of a spec, in PyTorch.

Each sample is a fresh network of width ``C`` (every weight ``N(0, σ_w²/fan_in)``, every bias
``N(0, σ_b²)``) applied to a fresh input (``C_in = input_width·C`` channels of the spec's
input). ``S`` samples are computed together as one grouped network, in chunks. The empirical
covariance ``K̂ = (1/S) Σ_s f_s f_sᵀ`` (the prior mean is zero) estimates the kernel; it differs
from the NNGP by Monte-Carlo noise (``∝ S^{-1/2}``) and a finite-width bias (``∝ 1/C``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import DipscopeError
from . import ops
from .analysis import correlation, stationarize
from .layers import Layer, channels, parameters, sample
from .spec import GPSpec

@dataclass
class MonteCarlo:
    """Empirical covariance ``K`` (float64, ``(*out, *out)``) of ``samples`` networks of ``width``,
    and the stationarised correlations ``c(τ ≤ max_lag)`` of ``batches`` equal sub-batches
    (their spread estimates the Monte-Carlo standard error of ``c``)."""

    K: torch.Tensor
    samples: int
    width: int
    batch_c: np.ndarray

    def c(self, max_lag: int | None = None) -> np.ndarray:
        return correlation(stationarize(self.K, max_lag))

    def standard_error(self) -> np.ndarray:
        """Batch-means standard error of ``c(τ)`` (``std over batches / √batches``)."""
        b = len(self.batch_c)
        return self.batch_c.std(axis=0, ddof=1) / math.sqrt(b)


def forward(layers: tuple[Layer, ...], x: torch.Tensor, C: int, signal: tuple[int, ...],
            gen: torch.Generator) -> torch.Tensor:
    """Apply ``layers`` with fresh random weights per sample (the batch axis indexes networks);
    each layer draws its own weights (:meth:`~dipscope.gp.layers.Conv.sample` …)."""
    return sample(layers, x, C, signal, gen)


def _inputs(spec: GPSpec, S: int, c_in: int, shape: tuple[int, ...], gen: torch.Generator,
            dtype: torch.dtype) -> torch.Tensor:
    if spec.input == "coords":
        axes = torch.meshgrid(*[torch.linspace(0, 1, s, dtype=dtype) for s in shape], indexing="ij")
        return torch.stack(axes)[None].expand((S, len(shape)) + shape)
    z = torch.randn((S, c_in) + shape, generator=gen, dtype=dtype)
    if spec.input == "smooth" and spec.input_sigma > 0:
        mats = [ops.gaussian_circulant(n, spec.input_sigma).to(dtype) for n in shape]
        for a, G in enumerate(mats):
            z = torch.movedim(torch.tensordot(z, G, dims=([2 + a], [1])), -1, 2 + a)
    return z


def monte_carlo(spec: GPSpec, shape: int | tuple[int, ...], width: int = 64, samples: int = 2000,
                seed: int = 0, chunk: int = 250, batches: int = 10, max_lag: int | None = None,
                dtype: torch.dtype = torch.float32) -> MonteCarlo:
    """Empirical output covariance of ``samples`` random networks of ``spec`` with width ``width``.

    Networks and inputs are drawn from ``torch.Generator().manual_seed(seed)`` in chunks of
    ``chunk`` networks (computed in ``dtype``, accumulated in float64). The correlations of
    ``batches`` equal sub-batches are kept for the standard error (lags ``≤ max_lag``).
    """
    shape = (shape,) * spec.dims if isinstance(shape, int) else tuple(shape)
    if samples < batches or samples % batches:
        raise DipscopeError(f"samples ({samples}) must be a positive multiple of batches ({batches})")
    gen = torch.Generator().manual_seed(seed)
    c_in = len(shape) if spec.input == "coords" else channels(spec.input_width, width)
    per_batch = samples // batches
    K_sum: torch.Tensor | None = None
    batch_K: list[torch.Tensor] = []
    cur: torch.Tensor | None = None
    done = 0
    with torch.no_grad():
        while done < samples:
            take = min(chunk, samples - done, per_batch - done % per_batch)
            x = _inputs(spec, take, c_in, shape, gen, dtype)
            f = forward(spec.layers, x, width, shape, gen)
            if f.shape[1] != 1:
                raise DipscopeError(f"{spec.name} ends with {f.shape[1]} channels; end with a 1-channel layer")
            flat = f.reshape(take, -1).to(torch.float64)
            part = flat.T @ flat
            cur = part if cur is None else cur + part
            done += take
            if done % per_batch == 0:
                batch_K.append(cur / per_batch)
                K_sum = cur if K_sum is None else K_sum + cur
                cur = None
    assert K_sum is not None
    out = tuple(f.shape[2:])
    K = (K_sum / samples).reshape(out + out)
    batch_c = np.stack([correlation(stationarize(k.reshape(out + out), max_lag)) for k in batch_K])
    return MonteCarlo(K, samples, width, batch_c)


def parameter_count(spec: GPSpec, width: int, in_channels: int) -> int:
    """Number of weights and biases of the finite network (for checking spec mappings)."""
    return parameters(spec.layers, in_channels, width, spec.dims)[0]


def network_samples(spec: GPSpec, shape: int | tuple[int, ...], width: int = 64, count: int = 3,
                    seed: int = 0) -> np.ndarray:
    """Outputs ``(count, *out)`` of ``count`` random finite networks (each on its own input)."""
    shape = (shape,) * spec.dims if isinstance(shape, int) else tuple(shape)
    gen = torch.Generator().manual_seed(seed)
    c_in = len(shape) if spec.input == "coords" else channels(spec.input_width, width)
    with torch.no_grad():
        f = forward(spec.layers, _inputs(spec, count, c_in, shape, gen, torch.float64), width, shape, gen)
    return f[:, 0].numpy()
