"""NNGP kernels of a :class:`~dipscope.gp.spec.GPSpec`: full matrices and a stationary fast path.

As every width → ∞ with weights ``N(0, σ_w²/fan_in)``, each channel of every layer is an
independent zero-mean Gaussian process (Neal 1996; Lee et al. 2018; Novak et al. 2019; Cheng
et al. 2019 for DIP). Its covariance follows the layers one by one (see :mod:`.ops`):

* convolution: ``K' = (σ_w²/|U|) Σ_u V(t₁+u, t₂+u) + σ_b²``;
* activation: ``V = E[φ(u)φ(v)]`` (arc-cosine for ReLU, ``(1−α)²V_ReLU + αK`` for LeakyReLU);
* fixed linear resampling ``A``: ``K' = A K Aᵀ``;
* concatenation of branches with channel fractions ``p_i``: ``K' = Σ_i p_i K_i`` as seen by
  the next layer (whose weights are i.i.d. over all input channels);
* BatchNorm (batch of one): centring exactly, scaling approximately (:func:`.ops.batchnorm`).

Each layer of :mod:`.layers` owns its map (and its stationary form); this module sets up the
input kernel and runs a spec's layers through them.

The input channels are treated as infinitely many too (the first layer then sees their exact
average covariance); with finitely many random input channels the true prior is a mixture
whose covariance differs at order ``1/C_in``.
"""

from __future__ import annotations

import math

import torch

from ..errors import DipscopeError
from . import ops
from .layers import kernel_map, stationary_map
from .layers import stationary_reason as layer_reason
from .spec import GPSpec

MAX_POSITIONS = 4096


def kernel(spec: GPSpec, shape: int | tuple[int, ...], device: str | torch.device = "cpu") -> torch.Tensor:
    """The output kernel ``K(t₁, t₂)`` (float64) of ``spec`` for an input of spatial ``shape``.

    Returns a tensor of shape ``(*out, *out)`` (``out`` is the output's spatial shape; for an
    encoder-decoder it equals ``shape``). Full matrices are kept for up to 4096 positions (a
    1-D signal of 4096 samples, a 64×64 image: 128 MiB per matrix).
    """
    shape = _shape(spec, shape)
    if math.prod(shape) > MAX_POSITIONS:
        raise DipscopeError(f"full GP kernels are limited to {MAX_POSITIONS} positions, not {math.prod(shape)}; "
                            "use stationary_kernel for a circular network")
    K = ops.input_kernel(spec.input, shape, spec.input_sigma).to(device)
    K, _ = kernel_map(spec.layers, K, shape, shape, 1.0)
    return K


def _shape(spec: GPSpec, shape: int | tuple[int, ...]) -> tuple[int, ...]:
    shape = (shape,) * spec.dims if isinstance(shape, int) else tuple(shape)
    if len(shape) != spec.dims or min(shape) < 1:
        raise DipscopeError(f"{spec.dims}-D network needs a shape of {spec.dims} positive sizes, not {shape}")
    return shape


# ----------------------------------------------------------------------------- fast path
def stationary_reason(spec: GPSpec) -> str | None:
    """Why ``spec`` has no stationary kernel (``None`` if it has one).

    Stationary: white or smoothed (circular) input; circular convolutions; point-wise
    activations; average pooling and decimation; BatchNorm; concatenation; dense layers.
    Upsampling (nearest and linear make the kernel periodic in position, not stationary),
    zero or reflection padding, and coordinate inputs break it.
    """
    if spec.input == "coords":
        return "coordinate inputs are not stationary"
    return layer_reason(spec.layers)


def stationary_kernel(spec: GPSpec, shape: int | tuple[int, ...]) -> torch.Tensor:
    """``k(τ)`` with ``K(t, t+τ) = k(τ)`` (circular lags, shape = output shape), in O(N) memory.

    On a circular stationary input every map keeps ``K`` a function of the lag only:
    convolution ``k' = σ_w² v(s·τ) + σ_b²`` (the filter size drops out: every tap sees the same
    lag), activations act on ``(k(0), k(τ))``, average pooling ``k'(τ) = s⁻ᵈ Σ_{a,b} k(sτ + a − b)``,
    decimation ``k(sτ)``, BatchNorm ``(k − mean k)/(k(0) − mean k)``. Needs sizes divisible by
    every stride. Raises :class:`DipscopeError` when :func:`stationary_reason` says why not.
    """
    reason = stationary_reason(spec)
    if reason is not None:
        raise DipscopeError(f"{spec.name} has no stationary kernel: {reason}")
    shape = _shape(spec, shape)
    e = torch.zeros(shape, dtype=ops.DTYPE)
    e[(0,) * len(shape)] = 1.0
    k = e.clone()
    if spec.input == "smooth" and spec.input_sigma > 0:
        for a, n in enumerate(shape):
            g = ops.gaussian_circulant(n, spec.input_sigma)[:, 0]
            auto = torch.fft.ifft(torch.fft.fft(g).abs() ** 2).real
            k = k.movedim(a, -1)
            k = torch.fft.ifft(torch.fft.fft(k) * torch.fft.fft(auto)).real
            k = k.movedim(-1, a)
    return stationary_map(spec.layers, k, shape, shape, 1.0)[0]
