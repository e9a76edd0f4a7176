"""The Deep Image Prior encoder-decoder with skip connections (Ulyanov et al., CVPR 2018).

Level ``i`` (``i = 0`` outermost) of the network maps its input ``h_i`` to

.. math::

    g_i(h_i) = U_i\\big(\\,[\\,S_i(h_i)\\;;\\;\\mathrm{up}_{s_i}(D_i(h_i) \\to g_{i+1})\\,]\\big)

where ``D_i`` is a strided (or pooled) convolution by factor ``s_i`` followed by a
convolution, ``S_i`` a 1×1 skip convolution with few channels, ``up`` a fixed ×``s_i``
upsampling, ``[;]`` channel concatenation and ``U_i`` a convolution followed by a 1×1
convolution; every convolution is followed by BatchNorm and the activation. The output is a
1×1 convolution and a sigmoid.

The module tree is the same as the original implementation's ``models/skip.py`` (the same
nested ``nn.Sequential``/``Concat`` layout, a separate ``ReflectionPad2d`` before each
convolution with reflection padding), so the parameter tensors appear in the same order with
the same shapes and the original weights load one-to-one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

import torch
from torch import nn

from ..errors import DipscopeError
from . import adjoints
from .common import ACTIVATIONS, activation, per_level

Upsample = Literal["nearest", "bilinear", "transposed"]
Downsample = Literal["stride", "avg", "max"]
Padding = Literal["zero", "reflection"]


@dataclass(frozen=True)
class SkipSpec:
    """Architecture of the DIP encoder-decoder (``skip`` in the original code).

    Per-level values may be a single value (used at every level) or a tuple with one entry
    per level, outermost first. ``in_channels=None`` means "as many as the image has".
    """

    channels_down: tuple[int, ...] = (128,) * 5
    channels_up: tuple[int, ...] = (128,) * 5
    channels_skip: tuple[int, ...] = (4,) * 5
    in_channels: int | None = 32
    filter_down: int | tuple[int, ...] = 3
    filter_up: int | tuple[int, ...] = 3
    filter_skip: int = 1
    upsample: Upsample | tuple[Upsample, ...] = "bilinear"
    downsample: Downsample | tuple[Downsample, ...] = "stride"
    factor: int | tuple[int, ...] = 2
    pad: Padding = "reflection"
    act: str = "leakyrelu"
    batchnorm: bool = True
    sigmoid: bool = True
    bias: bool = True
    conv1x1_up: bool = True
    family: ClassVar[str] = "skip"
    input_kind: ClassVar[str] = "noise"

    def __post_init__(self) -> None:
        n = len(self.channels_down)
        if n == 0 or len(self.channels_up) != n or len(self.channels_skip) != n:
            raise DipscopeError(
                "channels_down, channels_up and channels_skip need one entry per level "
                f"(got {len(self.channels_down)}, {len(self.channels_up)}, {len(self.channels_skip)})"
            )
        for name in ("filter_down", "filter_up", "upsample", "downsample", "factor"):
            per_level(getattr(self, name), n, name)
        if any(f < 2 for f in self.factors):
            raise DipscopeError("every level's stride/upsampling factor must be at least 2")
        for u in per_level(self.upsample, n, "upsample"):
            if u not in ("nearest", "bilinear", "transposed"):
                raise DipscopeError(f"unknown upsampling {u!r}; choose nearest, bilinear or transposed")
        for d in per_level(self.downsample, n, "downsample"):
            if d not in ("stride", "avg", "max"):
                raise DipscopeError(f"unknown downsampling {d!r}; choose stride, avg or max")
        if self.pad not in ("zero", "reflection"):
            raise DipscopeError(f"unknown padding {self.pad!r}; choose zero or reflection")
        if self.act.lower() not in ACTIVATIONS:
            raise DipscopeError(f"unknown activation {self.act!r}; choose one of {', '.join(ACTIVATIONS)}")

    @property
    def levels(self) -> int:
        return len(self.channels_down)

    @property
    def factors(self) -> tuple[int, ...]:
        return per_level(self.factor, self.levels, "factor")

    @property
    def pad_multiple(self) -> int:
        """Input sides must be multiples of this (the product of the level factors)."""
        return math.prod(self.factors)

    @property
    def min_side(self) -> int:
        """Smallest image side: BatchNorm needs at least a 2×2 map at the deepest level."""
        return 2 * self.pad_multiple

    def with_levels(self, levels: int) -> "SkipSpec":
        """The same architecture truncated (or extended with the last level) to ``levels``."""
        if levels < 1:
            raise DipscopeError("--levels must be at least 1")

        def cut(v: object) -> object:
            if not isinstance(v, tuple):
                return v
            return v[:levels] + (v[-1],) * max(0, levels - len(v))

        return replace(
            self,
            **{
                name: cut(getattr(self, name))
                for name in ("channels_down", "channels_up", "channels_skip", "filter_down",
                             "filter_up", "upsample", "downsample", "factor")
            },
        )


class Concat(nn.Module):
    """Concatenate the branches' outputs along channels (centre-cropped to a common size).

    With ``groups = R`` (R runs fitted as one grouped network) every branch output holds R
    equal blocks of channels, one per run, and the blocks are interleaved so that run ``r``'s
    channels stay contiguous: ``[a_1 b_1 … a_R b_R]``.
    """

    def __init__(self, dim: int, *branches: nn.Module, groups: int = 1) -> None:
        super().__init__()
        self.dim = dim
        self.groups = groups
        for i, branch in enumerate(branches):
            self.add_module(str(i), branch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self._modules.values()]
        h = min(o.shape[2] for o in outs)
        w = min(o.shape[3] for o in outs)
        if any(o.shape[2] != h or o.shape[3] != w for o in outs):
            outs = [
                o[:, :, (o.shape[2] - h) // 2:(o.shape[2] - h) // 2 + h,
                  (o.shape[3] - w) // 2:(o.shape[3] - w) // 2 + w]
                for o in outs
            ]
        if self.groups == 1:
            return torch.cat(outs, dim=self.dim)
        g = self.groups
        parts = [o.unflatten(1, (g, o.shape[1] // g)) for o in outs]
        return torch.cat(parts, dim=2).flatten(1, 2)


#: dtypes for which padding and upsampling take the vectorised backward passes below
#: (bf16 keeps PyTorch's kernels, which accumulate in fp32).
FAST_DTYPES = (torch.float32, torch.float64)


class ReflectionPad(nn.ReflectionPad2d):
    """``nn.ReflectionPad2d`` that pads in its input's dtype under autocast, and whose backward
    pass is the vectorised adjoint of :func:`dipscope.models.adjoints.reflection_pad` (fp32 and
    fp64 inputs, unless :attr:`native`; :func:`use_native_kernels` sets it).

    CPU autocast runs reflection padding in fp32, so on the bf16 path every padded convolution
    would cast its bf16 input to fp32, pad it and cast it back for the convolution — two copies
    of the map each way (forward and backward) for nothing: padding only moves values, so
    padding in bf16 gives the same forward numbers (the backward sums a border pixel's two
    gradient contributions in the bf16 kernel instead of in fp32: a rounding difference).
    """

    native: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kind = x.device.type
        if kind in ("cpu", "cuda") and torch.is_autocast_enabled(kind):
            with torch.autocast(kind, enabled=False):
                return self._pad(x)
        return self._pad(x)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        p = self.padding[0]
        if not self.native and x.dtype in FAST_DTYPES and len(set(self.padding)) == 1 and x.requires_grad:
            return adjoints.reflection_pad(x, p)
        return super().forward(x)


def _channels_last(grad: torch.Tensor) -> torch.Tensor:
    return grad.contiguous(memory_format=torch.channels_last)


class FixedUpsample(nn.Upsample):
    """``nn.Upsample`` with a faster backward pass: ×2 bilinear upsampling (``align_corners=False``)
    of fp32/fp64 maps uses the vectorised adjoint of
    :func:`dipscope.models.adjoints.upsample2_bilinear` (unless :attr:`native`), and
    every other case gets a channels-last gradient when its input is channels-last.

    The upsampled map is concatenated with the skip branch, so the gradient that comes back is
    a channel slice of a channels-last tensor — contiguous in no layout — and PyTorch's CPU
    bilinear backward then falls back to a slow NCHW path. Handing it a channels-last copy is the
    same arithmetic.
    """

    native: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.native and self.mode == "bilinear" and self.scale_factor in (2, 2.0, (2.0, 2.0)) \
                and self.align_corners is False and x.dtype in FAST_DTYPES and x.dim() == 4 and x.requires_grad:
            return adjoints.upsample2_bilinear(x)
        y = super().forward(x)
        if y.requires_grad and x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
                and not x.is_contiguous():
            y.register_hook(_channels_last)
        return y


def use_native_kernels(net: nn.Module) -> nn.Module:
    """Give every padding and upsampling layer of ``net`` PyTorch's own backward kernels (the
    reference mode's execution); returns ``net``."""
    for m in net.modules():
        if isinstance(m, (ReflectionPad, FixedUpsample)):
            m.native = True
    return net


def _conv(c_in: int, c_out: int, k: int, stride: int, spec: SkipSpec, downsample: str = "stride",
          groups: int = 1) -> nn.Sequential:
    """Convolution as the original builds it: [reflection pad] conv [pool] (×``groups`` runs)."""
    pool: nn.Module | None = None
    if stride != 1 and downsample != "stride":
        pool = nn.AvgPool2d(stride, stride) if downsample == "avg" else nn.MaxPool2d(stride, stride)
        stride = 1
    pad = (k - 1) // 2
    layers: list[nn.Module] = []
    if spec.pad == "reflection" and pad > 0:
        layers.append(ReflectionPad(pad))
        pad = 0
    layers.append(nn.Conv2d(c_in * groups, c_out * groups, k, stride, padding=pad, bias=spec.bias, groups=groups))
    if pool is not None:
        layers.append(pool)
    return nn.Sequential(*layers)


def _norm_act(channels: int, spec: SkipSpec, groups: int = 1) -> list[nn.Module]:
    return ([nn.BatchNorm2d(channels * groups)] if spec.batchnorm else []) + [activation(spec.act)]


def build_skip(spec: SkipSpec, in_channels: int, out_channels: int, groups: int = 1) -> nn.Sequential:
    """Build the encoder-decoder for ``in_channels`` input and ``out_channels`` output maps.

    ``groups = R > 1`` builds R independent copies as one network of grouped convolutions
    (input and output channels are R consecutive blocks, one per copy). BatchNorm on a batch of
    one normalises each channel over its own map, so grouping it is exact too.
    """
    g = groups
    n = spec.levels
    f_down = per_level(spec.filter_down, n, "filter_down")
    f_up = per_level(spec.filter_up, n, "filter_up")
    ups = per_level(spec.upsample, n, "upsample")
    downs = per_level(spec.downsample, n, "downsample")
    factors = spec.factors

    model = nn.Sequential()
    current = model
    depth = in_channels
    for i in range(n):
        deeper, skip = nn.Sequential(), nn.Sequential()
        current.append(Concat(1, skip, deeper, groups=g) if spec.channels_skip[i] else deeper)
        k = spec.channels_up[i + 1] if i < n - 1 else spec.channels_down[i]
        if spec.batchnorm:
            current.append(nn.BatchNorm2d((spec.channels_skip[i] + k) * g))
        if spec.channels_skip[i]:
            skip.append(_conv(depth, spec.channels_skip[i], spec.filter_skip, 1, spec, groups=g))
            for m in _norm_act(spec.channels_skip[i], spec, g):
                skip.append(m)
        deeper.append(_conv(depth, spec.channels_down[i], f_down[i], factors[i], spec, downs[i], g))
        for m in _norm_act(spec.channels_down[i], spec, g):
            deeper.append(m)
        deeper.append(_conv(spec.channels_down[i], spec.channels_down[i], f_down[i], 1, spec, groups=g))
        for m in _norm_act(spec.channels_down[i], spec, g):
            deeper.append(m)
        inner = nn.Sequential()
        if i < n - 1:
            deeper.append(inner)
        if ups[i] == "transposed":
            deeper.append(nn.ConvTranspose2d(k * g, k * g, factors[i], factors[i], bias=spec.bias, groups=g))
        else:
            align = False if ups[i] == "bilinear" else None
            deeper.append(FixedUpsample(scale_factor=factors[i], mode=ups[i], align_corners=align))
        current.append(_conv(spec.channels_skip[i] + k, spec.channels_up[i], f_up[i], 1, spec, groups=g))
        for m in _norm_act(spec.channels_up[i], spec, g):
            current.append(m)
        if spec.conv1x1_up:
            current.append(_conv(spec.channels_up[i], spec.channels_up[i], 1, 1, spec, groups=g))
            for m in _norm_act(spec.channels_up[i], spec, g):
                current.append(m)
        depth = spec.channels_down[i]
        current = inner
    model.append(_conv(spec.channels_up[0], out_channels, 1, 1, spec, groups=g))
    if spec.sigmoid:
        model.append(nn.Sigmoid())
    return model
