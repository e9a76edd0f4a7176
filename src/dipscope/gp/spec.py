"""Layer-list architecture spec read by both the infinite-width kernels and the finite networks
(the layers themselves, each with its kernel map and its random sample, are in :mod:`.layers`).

A :class:`GPSpec` is a sequence of layers acting on a signal of ``dims`` spatial dimensions
(1-D signals or 2-D images) with many channels. The same spec builds

* the NNGP kernel ``K(t₁, t₂)`` (:func:`dipscope.gp.kernel`), and
* random finite networks of width ``C`` (:func:`dipscope.gp.monte_carlo`),

and :func:`from_skip` maps the DIP encoder-decoder (:class:`~dipscope.models.SkipSpec`) onto it,
so the kernel is computed from the very spec that builds the network. Channel counts are
*relative* (``width`` multiplies the network width ``C``); only their ratios enter the kernel,
through the weights of :class:`Concat`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ..errors import DipscopeError
from .layers import Act, Concat, Conv, Dense, Layer, Norm, Pad, Resample, ResampleKind  # noqa: F401 - the spec vocabulary

if TYPE_CHECKING:
    from ..models.skip import SkipSpec

InputKind = Literal["white", "smooth", "coords"]


@dataclass(frozen=True)
class GPSpec:
    """A network for the GP: input kind, spatial dimensions and layers.

    Input (per channel, unit variance): ``white`` noise ``K = δ``; ``smooth``: white noise
    convolved (circularly) with a Gaussian of std ``input_sigma`` pixels per axis and rescaled
    to unit variance, so ``σ`` is a *width* (Cheng et al.'s convention), not an amplitude;
    ``coords``: the pixel coordinates in [0, 1]^dims (ReLUNet's input). ``input_width``
    multiplies ``C`` for the number of noise channels in finite networks.
    """

    layers: tuple[Layer, ...]
    dims: int = 1
    input: InputKind = "white"
    input_sigma: float = 0.0
    input_width: float = 1.0
    name: str = field(default="net", compare=False)

    def __post_init__(self) -> None:
        if self.dims not in (1, 2):
            raise DipscopeError("GP networks are 1-D or 2-D")
        if self.input not in ("white", "smooth", "coords"):
            raise DipscopeError(f"unknown input {self.input!r}; choose white, smooth or coords")
        if self.input == "smooth" and self.input_sigma < 0:
            raise DipscopeError("input_sigma must be ≥ 0")


def conv_relu(depth: int, size: int = 3, dims: int = 1, pad: Pad = "zero", input: InputKind = "white",
              input_sigma: float = 0.0, act: str = "relu", sigma_b2: float = 0.0) -> GPSpec:
    """``depth`` × [conv ``size``, act] then a 1×1 output convolution (Cheng et al.'s 1-D nets)."""
    layers: list[Layer] = []
    for _ in range(depth):
        layers += [Conv(size, pad=pad, sigma_b2=sigma_b2), Act(act)]
    layers.append(Conv(1, pad=pad, sigma_b2=sigma_b2, channels=1))
    return GPSpec(tuple(layers), dims=dims, input=input, input_sigma=input_sigma,
                  name=f"conv{size}-{act}×{depth}")


def dense_net(levels: int, act: str = "relu", dims: int = 1, sigma_b2: float = 0.0) -> GPSpec:
    """DIP-Linear: ``4·levels`` hidden dense layers and a dense output layer over the signal."""
    layers: list[Layer] = []
    for _ in range(4 * levels):
        layers += [Dense(sigma_b2=sigma_b2), Act(act)]
    layers.append(Dense(to_signal=True, sigma_b2=sigma_b2))
    return GPSpec(tuple(layers), dims=dims, name=f"dense-{levels}")


def coord_mlp(depth: int = 10, dims: int = 1, sigma_b2: float = 0.1) -> GPSpec:
    """ReLUNet: ``depth`` pixel-wise (1×1) layers on the coordinates, ReLU between them."""
    layers: list[Layer] = []
    for _ in range(depth - 1):
        layers += [Conv(1, sigma_b2=sigma_b2), Act("relu")]
    layers.append(Conv(1, sigma_b2=sigma_b2, channels=1))
    return GPSpec(tuple(layers), dims=dims, input="coords", name=f"relunet-{depth}")


def from_skip(spec: "SkipSpec", dims: int = 1, sigma_w2: float = 2.0, sigma_b2: float = 0.0,
              input: InputKind = "white", input_sigma: float = 0.0) -> GPSpec:
    """The GP layer list of the DIP encoder-decoder ``spec`` (see :mod:`dipscope.models.skip`).

    Level ``i``: ``Concat(skip_i, deeper_i)``, [BN], conv ``filter_up``, [BN], act, [1×1 conv,
    [BN], act]; ``skip_i`` = conv ``filter_skip``, [BN], act; ``deeper_i`` = strided conv (or conv
    + average pooling), [BN], act, conv, [BN], act, level ``i+1``, upsampling. The output is a
    1×1 convolution to one channel; the final sigmoid is left out (the kernel is that of the
    pre-sigmoid output). Channel counts enter as ratios to ``channels_down[0]``. All weights get
    variance ``σ_w²/fan_in`` (PyTorch's default initialisation is ``σ_w² = 1/3``; for ReLU and
    LeakyReLU without biases the *correlation* does not depend on ``σ_w²``). Max pooling,
    transposed convolutions, ELU and Swish have no kernel here and raise :class:`DipscopeError`.
    """
    from ..models.common import per_level

    n = spec.levels
    acts = {"relu": Act("relu"), "leakyrelu": Act("leakyrelu", 0.2), "none": Act("identity")}
    if spec.act.lower() not in acts:
        raise DipscopeError(f"no GP kernel for activation {spec.act!r}; use relu, leakyrelu or none")
    act = acts[spec.act.lower()]
    pad: Pad = "zero" if spec.pad == "zero" else "reflection"
    c0 = float(spec.channels_down[0])
    f_down = per_level(spec.filter_down, n, "filter_down")
    f_up = per_level(spec.filter_up, n, "filter_up")
    ups = per_level(spec.upsample, n, "upsample")
    downs = per_level(spec.downsample, n, "downsample")
    norm: tuple[Layer, ...] = (Norm(),) if spec.batchnorm else ()
    b2 = sigma_b2 if spec.bias else 0.0

    def conv(size: int, width: float, stride: int = 1) -> Conv:
        return Conv(size, stride, pad, sigma_w2, b2, width)

    def level(i: int) -> tuple[Layer, ...]:
        if ups[i] == "transposed":
            raise DipscopeError("no GP kernel for transposed-convolution upsampling; use nearest or bilinear")
        if downs[i] == "max":
            raise DipscopeError("no GP kernel for max pooling; use stride or avg")
        s = spec.factors[i]
        down: tuple[Layer, ...]
        if downs[i] == "stride":
            down = (conv(f_down[i], spec.channels_down[i] / c0, s),)
        else:
            down = (conv(f_down[i], spec.channels_down[i] / c0), Resample("avg", s))
        deeper = (*down, *norm, act, conv(f_down[i], spec.channels_down[i] / c0), *norm, act,
                  *(level(i + 1) if i < n - 1 else ()),
                  Resample("nearest" if ups[i] == "nearest" else "linear", s))
        first: tuple[Layer, ...]
        if spec.channels_skip[i]:
            skip = (conv(spec.filter_skip, spec.channels_skip[i] / c0), *norm, act)
            first = (Concat((skip, deeper)),)
        else:
            first = deeper
        up = (*norm, conv(f_up[i], spec.channels_up[i] / c0), *norm, act)
        if spec.conv1x1_up:
            up += (conv(1, spec.channels_up[i] / c0), *norm, act)
        return first + up

    layers = level(0) + (Conv(1, 1, pad, sigma_w2, b2, channels=1),)
    return GPSpec(layers, dims=dims, input=input, input_sigma=input_sigma,
                  input_width=spec.in_channels / c0 if spec.in_channels else 1.0,
                  name=f"skip-{n}-{ups[0]}")

