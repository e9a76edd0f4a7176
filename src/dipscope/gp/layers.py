"""The GP layers: each one describes a layer *and* gives its maps (after neural-tangents' stax,
where one layer description yields both the finite network and its infinite-width kernel).

Every layer has

* ``kernel(K, shape, signal, width)`` — the NNGP map on a full kernel ``(*shape, *shape)``
  (:mod:`.ops` holds the maths), returning the new kernel and spatial shape;
* ``stationary(k, shape, signal, width)`` — the same map on a stationary kernel ``k(τ)``
  (circular lags), and ``stationary_reason()`` — why it has none (None if it has);
* ``sample(x, C, signal, gen)`` — the layer with fresh random weights for every network of a
  batch ``x`` of shape ``(S, channels, *shape)`` (the Monte-Carlo check);
* ``out_width(width)`` and ``parameters(c_in, C, dims)`` — channel bookkeeping.

:func:`kernel_map`, :func:`stationary_map` and :func:`sample` run a layer list through these; a
:class:`Concat` runs its branches through them. ``width`` is the relative channel count of the
layer's input (only :class:`Concat`'s branch weights depend on it); ``signal`` is the spatial
shape of the network's input (a dense output layer maps back onto it).

Why one module of ~380 lines: six layer kinds with their four maps each; splitting it would
separate a layer's kernel from its finite sample, which is the point of keeping them together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Union

import torch
import torch.nn.functional as F

from ..errors import DipscopeError
from . import ops

Pad = Literal["zero", "reflection", "circular"]
ResampleKind = Literal["nearest", "linear", "avg", "decimate"]
Shape = tuple[int, ...]
_PAD = {"zero": "constant", "reflection": "reflect", "circular": "circular"}


def channels(width_factor: float, C: int, fixed: int | None = None) -> int:
    """Channels of a finite layer: ``fixed`` if set, else ``width_factor · C`` (at least 1)."""
    return fixed if fixed is not None else max(1, round(width_factor * C))


def _strided(k: torch.Tensor, shape: Shape, s: int) -> tuple[torch.Tensor, Shape]:
    if any(n % s for n in shape):
        raise DipscopeError(f"the stationary path needs sizes divisible by {s}, not {shape}")
    return k[tuple(slice(None, None, s) for _ in shape)], tuple(n // s for n in shape)


class _KeepsChannels:
    """Defaults of a layer that adds no parameters, keeps the channel count and keeps a
    stationary kernel stationary (activations, resampling, normalisation)."""

    def stationary_reason(self) -> str | None:
        return None

    def out_width(self, width: float) -> float:
        return width

    def parameters(self, c_in: int, C: int, dims: int) -> tuple[int, int]:
        return 0, c_in


@dataclass(frozen=True)
class Conv:
    """Convolution with an odd ``size``-tap filter per axis, 'same' padding, optional stride.

    Weights ``N(0, σ_w²/(C_in·|U|))``, bias ``N(0, σ_b²)``; ``width`` multiplies the network width
    for the output channels, ``channels`` (if set) fixes them (the output layer: 1).
    Kernel: ``K' = (σ_w²/|U|) Σ_u K(t₁+u, t₂+u) + σ_b²``; stationary: ``k' = σ_w² k(s·τ) + σ_b²``
    (every tap sees the same lag, so the filter size drops out).
    """

    size: int = 3
    stride: int = 1
    pad: Pad = "zero"
    sigma_w2: float = 2.0
    sigma_b2: float = 0.0
    width: float = 1.0
    channels: int | None = None

    def __post_init__(self) -> None:
        if self.size < 1 or self.size % 2 == 0:
            raise DipscopeError(f"GP convolutions need an odd filter size, not {self.size}")
        if self.stride < 1:
            raise DipscopeError("stride must be at least 1")
        if self.pad not in ("zero", "reflection", "circular"):
            raise DipscopeError(f"unknown padding {self.pad!r}; choose zero, reflection or circular")

    def kernel(self, K: torch.Tensor, shape: Shape, signal: Shape, width: float) -> tuple[torch.Tensor, Shape]:
        return ops.conv(K, shape, self.size, self.stride, self.pad, self.sigma_w2, self.sigma_b2)

    def stationary_reason(self) -> str | None:
        return f"{self.pad} padding is not translation invariant" if self.pad != "circular" and self.size > 1 else None

    def stationary(self, k: torch.Tensor, shape: Shape, signal: Shape, width: float) -> tuple[torch.Tensor, Shape]:
        k, shape = _strided(k, shape, self.stride)
        return self.sigma_w2 * k + self.sigma_b2, shape

    def sample(self, x: torch.Tensor, C: int, signal: Shape, gen: torch.Generator) -> torch.Tensor:
        S, c_in = x.shape[:2]
        c_out = channels(self.width, C, self.channels)
        d = x.ndim - 2
        k = self.size
        std = math.sqrt(self.sigma_w2 / (c_in * k ** d))
        w = torch.randn((S * c_out, c_in) + (k,) * d, generator=gen, dtype=x.dtype) * std
        p = (k - 1) // 2
        xs = x.reshape((1, S * c_in) + x.shape[2:])
        if p > 0:
            xs = F.pad(xs, [p] * (2 * d), mode=_PAD[self.pad])
        conv = F.conv1d if d == 1 else F.conv2d
        y = conv(xs, w, stride=self.stride, groups=S)
        y = y.reshape((S, c_out) + y.shape[2:])
        if self.sigma_b2 > 0:
            y = y + torch.randn((S, c_out) + (1,) * d, generator=gen, dtype=x.dtype) * math.sqrt(self.sigma_b2)
        return y

    def out_width(self, width: float) -> float:
        return self.width if self.channels is None else float(self.channels)

    def parameters(self, c_in: int, C: int, dims: int) -> tuple[int, int]:
        c_out = channels(self.width, C, self.channels)
        return c_in * c_out * self.size ** dims + (c_out if self.sigma_b2 > 0 else 0), c_out


@dataclass(frozen=True)
class Act(_KeepsChannels):
    """Point-wise activation: ``relu``, ``leakyrelu`` (negative slope ``alpha``) or ``identity``.
    Kernel: the arc-cosine map for ReLU, ``(1 − α)² V_ReLU + α K`` for LeakyReLU."""

    name: str = "relu"
    alpha: float = 0.2

    def __post_init__(self) -> None:
        if self.name not in ("relu", "leakyrelu", "identity"):
            raise DipscopeError(f"the GP kernel supports relu, leakyrelu and identity, not {self.name!r}")

    def kernel(self, K: torch.Tensor, shape: Shape, signal: Shape, width: float) -> tuple[torch.Tensor, Shape]:
        if self.name == "relu":
            return ops.relu(K, shape), shape
        if self.name == "leakyrelu":
            return ops.leaky_relu(K, shape, self.alpha), shape
        return K, shape

    def stationary(self, k: torch.Tensor, shape: Shape, signal: Shape, width: float) -> tuple[torch.Tensor, Shape]:
        if self.name == "identity":
            return k, shape
        k0 = k.reshape(-1)[0]
        c = (k / k0).clamp(-1, 1)
        theta = torch.arccos(c)
        v = k0 * (torch.sin(theta) + (math.pi - theta) * c) / (2 * math.pi)
        return (v if self.name == "relu" else (1 - self.alpha) ** 2 * v + self.alpha * k), shape

    def sample(self, x: torch.Tensor, C: int, signal: Shape, gen: torch.Generator) -> torch.Tensor:
        if self.name == "relu":
            return F.relu(x)
        if self.name == "leakyrelu":
            return F.leaky_relu(x, self.alpha)
        return x


@dataclass(frozen=True)
class Resample(_KeepsChannels):
    """Fixed linear resampling by ``factor`` per axis: ``nearest``/``linear`` upsampling
    (PyTorch's ``align_corners=False``), ``avg`` pooling or ``decimate`` (keep every s-th sample).
    Kernel: ``K' = A K Aᵀ`` with the resampling matrix ``A`` per axis."""

    kind: ResampleKind = "nearest"
    factor: int = 2

    def __post_init__(self) -> None:
        if self.kind not in ("nearest", "linear", "avg", "decimate"):
            raise DipscopeError(f"unknown resampling {self.kind!r}; choose nearest, linear, avg or decimate")
        if self.factor < 1:
            raise DipscopeError("resampling factor must be at least 1")

    def kernel(self, K: torch.Tensor, shape: Shape, signal: Shape, width: float) -> tuple[torch.Tensor, Shape]:
        mats = [ops.resample_matrix(n, self.kind, self.factor) for n in shape]
        return ops.apply_separable(K, mats), tuple(int(A.shape[0]) for A in mats)

    def stationary_reason(self) -> str | None:
        return f"{self.kind} upsampling makes the kernel cyclo-stationary" if self.kind in ("nearest", "linear") else None

    def stationary(self, k: torch.Tensor, shape: Shape, signal: Shape, width: float) -> tuple[torch.Tensor, Shape]:
        s, d = self.factor, len(shape)
        if any(n % s for n in shape):  # before the rolls below
            raise DipscopeError(f"the stationary path needs sizes divisible by {s}, not {shape}")
        if self.kind == "avg":  # k'(τ) = s⁻ᵈ Σ_{a,b} k(sτ + a − b)
            acc = torch.zeros_like(k)
            for off in torch.cartesian_prod(*[torch.arange(-(s - 1), s)] * d).reshape(-1, d):
                weight = math.prod(s - abs(int(o)) for o in off)
                acc += weight * torch.roll(k, shifts=tuple(-int(o) for o in off), dims=tuple(range(d)))
            k = acc / s ** (2 * d)
        return _strided(k, shape, s)

    def sample(self, x: torch.Tensor, C: int, signal: Shape, gen: torch.Generator) -> torch.Tensor:
        d, s = x.ndim - 2, self.factor
        if self.kind == "nearest":
            return F.interpolate(x, scale_factor=s, mode="nearest")
        if self.kind == "linear":
            return F.interpolate(x, scale_factor=s, mode="linear" if d == 1 else "bilinear", align_corners=False)
        if self.kind == "avg":
            return (F.avg_pool1d if d == 1 else F.avg_pool2d)(x, s, s)
        return x[(slice(None), slice(None)) + (slice(None, None, s),) * d]


@dataclass(frozen=True)
class Norm(_KeepsChannels):
    """BatchNorm on a batch of one (each channel normalised over its own map), γ = 1, β = 0.
    Kernel: centring exactly, scaling approximately (:func:`.ops.batchnorm`)."""

    eps: float = 1e-5

    def kernel(self, K: torch.Tensor, shape: Shape, signal: Shape, width: float) -> tuple[torch.Tensor, Shape]:
        return ops.batchnorm(K, shape, self.eps), shape

    def stationary(self, k: torch.Tensor, shape: Shape, signal: Shape, width: float) -> tuple[torch.Tensor, Shape]:
        kc = k - k.mean()
        return kc / (kc.reshape(-1)[0] + self.eps), shape

    def sample(self, x: torch.Tensor, C: int, signal: Shape, gen: torch.Generator) -> torch.Tensor:
        dims = tuple(range(2, x.ndim))
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, keepdim=True, unbiased=False)
        return (x - mean) / torch.sqrt(var + self.eps)


@dataclass(frozen=True)
class Dense:
    """A dense layer over the whole (flattened channels × positions) input.

    ``to_signal=False``: a hidden layer of ``width·C`` units (kept as channels of a 1-sample
    map); ``to_signal=True``: the output layer, one channel over the whole signal. Distinct
    units have independent weights, so the output kernel is white: ``σ_w²·mean K(t, t) + σ_b²``
    on the diagonal, ``σ_b²`` elsewhere.
    """

    to_signal: bool = False
    sigma_w2: float = 2.0
    sigma_b2: float = 0.0
    width: float = 1.0

    def kernel(self, K: torch.Tensor, shape: Shape, signal: Shape, width: float) -> tuple[torch.Tensor, Shape]:
        out = signal if self.to_signal else (1,) * len(shape)
        return ops.dense(K, shape, out, self.sigma_w2, self.sigma_b2), out

    def stationary_reason(self) -> str | None:
        return None

    def stationary(self, k: torch.Tensor, shape: Shape, signal: Shape, width: float) -> tuple[torch.Tensor, Shape]:
        d = len(shape)
        level = self.sigma_w2 * k.reshape(-1)[0]
        out = signal if self.to_signal else (1,) * d
        k = torch.full(out, self.sigma_b2, dtype=k.dtype)
        k[(0,) * d] += level
        return k, out

    def sample(self, x: torch.Tensor, C: int, signal: Shape, gen: torch.Generator) -> torch.Tensor:
        S = x.shape[0]
        flat = x.reshape(S, -1)
        fan_in = flat.shape[1]
        out = math.prod(signal) if self.to_signal else channels(self.width, C)
        w = torch.randn(S, out, fan_in, generator=gen, dtype=x.dtype) * math.sqrt(self.sigma_w2 / fan_in)
        y = torch.bmm(w, flat[:, :, None])[:, :, 0]
        if self.sigma_b2 > 0:
            y = y + torch.randn(S, out, generator=gen, dtype=x.dtype) * math.sqrt(self.sigma_b2)
        d = len(signal)
        return y.reshape((S, 1) + signal) if self.to_signal else y.reshape((S, out) + (1,) * d)

    def out_width(self, width: float) -> float:
        return 1.0 if self.to_signal else self.width

    def parameters(self, c_in: int, C: int, dims: int) -> tuple[int, int]:
        raise DipscopeError("parameter_count does not handle dense layers")


@dataclass(frozen=True)
class Concat:
    """Channel concatenation of branches applied to the same input (DIP's skip connections).
    Kernel: ``K' = Σ_i p_i K_i`` as the next layer sees it, with the branches' channel
    fractions ``p_i`` (its weights are i.i.d. over all input channels)."""

    branches: tuple[tuple["Layer", ...], ...] = ()

    def __post_init__(self) -> None:
        if len(self.branches) < 1:
            raise DipscopeError("Concat needs at least one branch")

    def weights(self, width: float) -> list[float]:
        """Channel fractions ``p_i = C_i / Σ C_j`` of the branches (the kernel weights)."""
        widths = [out_width(b, width) for b in self.branches]
        return [w / sum(widths) for w in widths]

    def kernel(self, K: torch.Tensor, shape: Shape, signal: Shape, width: float) -> tuple[torch.Tensor, Shape]:
        parts = [kernel_map(b, K, shape, signal, width) for b in self.branches]
        shapes = {s for _, s in parts}
        if len(shapes) != 1:
            raise DipscopeError(f"concatenated branches end in different shapes {sorted(shapes)}; "
                                "make the length a multiple of the product of the factors")
        return sum(p * k for p, (k, _) in zip(self.weights(width), parts)), shapes.pop()

    def stationary_reason(self) -> str | None:
        return next((r for b in self.branches if (r := stationary_reason(b)) is not None), None)

    def stationary(self, k: torch.Tensor, shape: Shape, signal: Shape, width: float) -> tuple[torch.Tensor, Shape]:
        k = sum(p * stationary_map(b, k, shape, signal, width)[0] for p, b in zip(self.weights(width), self.branches))
        return k, tuple(k.shape)

    def sample(self, x: torch.Tensor, C: int, signal: Shape, gen: torch.Generator) -> torch.Tensor:
        return torch.cat([sample(b, x, C, signal, gen) for b in self.branches], dim=1)

    def out_width(self, width: float) -> float:
        return sum(out_width(b, width) for b in self.branches)

    def parameters(self, c_in: int, C: int, dims: int) -> tuple[int, int]:
        parts = [parameters(b, c_in, C, dims) for b in self.branches]
        return sum(p for p, _ in parts), sum(c for _, c in parts)


Layer = Union[Conv, Act, Resample, Norm, Dense, Concat]


# --- a layer list through the layers' maps -------------------------------------------------------

def kernel_map(layers: tuple[Layer, ...], K: torch.Tensor, shape: Shape, signal: Shape,
               width: float) -> tuple[torch.Tensor, Shape]:
    """The NNGP kernel after ``layers``, and its spatial shape."""
    return _through(layers, "kernel", K, shape, signal, width)


def stationary_reason(layers: tuple[Layer, ...]) -> str | None:
    """Why ``layers`` have no stationary kernel (None if they have one)."""
    return next((r for layer in layers if (r := layer.stationary_reason()) is not None), None)


def stationary_map(layers: tuple[Layer, ...], k: torch.Tensor, shape: Shape, signal: Shape,
                   width: float) -> tuple[torch.Tensor, Shape]:
    """The stationary kernel ``k(τ)`` after ``layers``, and its spatial shape."""
    return _through(layers, "stationary", k, shape, signal, width)


def _through(layers: tuple[Layer, ...], kind: str, K: torch.Tensor, shape: Shape, signal: Shape,
             width: float) -> tuple[torch.Tensor, Shape]:
    """Run a kernel through each layer's ``kind`` map (``kernel`` or ``stationary``)."""
    for layer in layers:
        K, shape = getattr(layer, kind)(K, shape, signal, width)
        width = layer.out_width(width)
    return K, shape


def sample(layers: tuple[Layer, ...], x: torch.Tensor, C: int, signal: Shape, gen: torch.Generator) -> torch.Tensor:
    """``layers`` with fresh random weights per sample (the batch axis indexes networks)."""
    for layer in layers:
        x = layer.sample(x, C, signal, gen)
    return x


def out_width(layers: tuple[Layer, ...], width: float) -> float:
    """Relative channel count after ``layers`` for an input of relative ``width``."""
    for layer in layers:
        width = layer.out_width(width)
    return width


def parameters(layers: tuple[Layer, ...], c_in: int, C: int, dims: int) -> tuple[int, int]:
    """Weights and biases of the finite layers (width ``C``), and the output channels."""
    total = 0
    for layer in layers:
        count, c_in = layer.parameters(c_in, C, dims)
        total += count
    return total, c_in
