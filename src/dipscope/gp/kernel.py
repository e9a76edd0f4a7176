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

The input channels are treated as infinitely many too (the first layer then sees their exact
average covariance); with finitely many random input channels the true prior is a mixture
whose covariance differs at order ``1/C_in``.
"""

from __future__ import annotations

import math

import torch

from ..errors import DipscopeError
from . import ops
from .spec import Act, Concat, Conv, Dense, GPSpec, Layer, Norm, Resample, concat_weights, out_width

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
    K, _ = _propagate(spec.layers, K, shape, shape, 1.0)
    return K


def _shape(spec: GPSpec, shape: int | tuple[int, ...]) -> tuple[int, ...]:
    shape = (shape,) * spec.dims if isinstance(shape, int) else tuple(shape)
    if len(shape) != spec.dims or min(shape) < 1:
        raise DipscopeError(f"{spec.dims}-D network needs a shape of {spec.dims} positive sizes, not {shape}")
    return shape


def _propagate(layers: tuple[Layer, ...], K: torch.Tensor, shape: tuple[int, ...], signal: tuple[int, ...],
               width: float) -> tuple[torch.Tensor, tuple[int, ...]]:
    for layer in layers:
        if isinstance(layer, Conv):
            K, shape = ops.conv(K, shape, layer.size, layer.stride, layer.pad, layer.sigma_w2, layer.sigma_b2)
        elif isinstance(layer, Act):
            if layer.name == "relu":
                K = ops.relu(K, shape)
            elif layer.name == "leakyrelu":
                K = ops.leaky_relu(K, shape, layer.alpha)
        elif isinstance(layer, Resample):
            mats = [ops.resample_matrix(n, layer.kind, layer.factor) for n in shape]
            K = ops.apply_separable(K, mats)
            shape = tuple(int(A.shape[0]) for A in mats)
        elif isinstance(layer, Norm):
            K = ops.batchnorm(K, shape, layer.eps)
        elif isinstance(layer, Dense):
            out = signal if layer.to_signal else (1,) * len(shape)
            K, shape = ops.dense(K, shape, out, layer.sigma_w2, layer.sigma_b2), out
        elif isinstance(layer, Concat):
            parts = [_propagate(b, K, shape, signal, width) for b in layer.branches]
            shapes = {s for _, s in parts}
            if len(shapes) != 1:
                raise DipscopeError(f"concatenated branches end in different shapes {sorted(shapes)}; "
                                    "make the length a multiple of the product of the factors")
            K = sum(p * k for p, (k, _) in zip(concat_weights(layer, width), parts))
            shape = shapes.pop()
        width = out_width((layer,), width)
    return K, shape


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

    def check(layers: tuple[Layer, ...]) -> str | None:
        for layer in layers:
            if isinstance(layer, Conv) and layer.pad != "circular" and layer.size > 1:
                return f"{layer.pad} padding is not translation invariant"
            if isinstance(layer, Resample) and layer.kind in ("nearest", "linear"):
                return f"{layer.kind} upsampling makes the kernel cyclo-stationary"
            if isinstance(layer, Concat):
                for b in layer.branches:
                    if (r := check(b)) is not None:
                        return r
        return None

    return check(spec.layers)


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
    return _stationary(spec.layers, k, shape, 1.0)


def _stationary(layers: tuple[Layer, ...], k: torch.Tensor, shape: tuple[int, ...], width: float,
                signal: tuple[int, ...] | None = None) -> torch.Tensor:
    d = len(shape)
    signal = signal or shape
    for layer in layers:
        if isinstance(layer, (Conv, Resample)):
            s = layer.stride if isinstance(layer, Conv) else layer.factor
            if any(n % s for n in shape):
                raise DipscopeError(f"the stationary path needs sizes divisible by {s}, not {shape}")
            if isinstance(layer, Resample) and layer.kind == "avg":
                acc = torch.zeros_like(k)
                for off in torch.cartesian_prod(*[torch.arange(-(s - 1), s)] * d).reshape(-1, d):
                    weight = math.prod(s - abs(int(o)) for o in off)
                    acc += weight * torch.roll(k, shifts=tuple(-int(o) for o in off), dims=tuple(range(d)))
                k = acc / s ** (2 * d)
            k = k[tuple(slice(None, None, s) for _ in range(d))]
            shape = tuple(n // s for n in shape)
            if isinstance(layer, Conv):
                k = layer.sigma_w2 * k + layer.sigma_b2
        elif isinstance(layer, Act) and layer.name != "identity":
            k0 = k.reshape(-1)[0]
            c = (k / k0).clamp(-1, 1)
            theta = torch.arccos(c)
            v = k0 * (torch.sin(theta) + (math.pi - theta) * c) / (2 * math.pi)
            k = v if layer.name == "relu" else (1 - layer.alpha) ** 2 * v + layer.alpha * k
        elif isinstance(layer, Norm):
            kc = k - k.mean()
            k = kc / (kc.reshape(-1)[0] + layer.eps)
        elif isinstance(layer, Dense):
            level = layer.sigma_w2 * k.reshape(-1)[0]
            shape = signal if layer.to_signal else (1,) * d
            k = torch.full(shape, layer.sigma_b2, dtype=k.dtype)
            k[(0,) * d] += level
        elif isinstance(layer, Concat):
            k = sum(p * _stationary(b, k, shape, width, signal)
                    for p, b in zip(concat_weights(layer, width), layer.branches))
            shape = tuple(k.shape)
        width = out_width((layer,), width)
    return k
