"""The three model families, all built from one spec type each by :func:`build`, and any other.

* :class:`SkipSpec` — the DIP convolutional encoder-decoder (``skip``),
* :class:`LinearSpec` — DIP-Linear-N, its fully connected analogue,
* :class:`ReLUNetSpec` — ReLUNet, a coordinate MLP;
* :class:`NetworkSpec` — a user's ``torch.nn.Module`` (or a callable that makes one) and its input
  (:func:`as_spec` wraps a module given where a spec is expected).

``build(spec, image_shape)`` returns a module mapping the network input of
:func:`input_shape` to an output of shape ``(1, *image_shape)``, where ``image_shape`` is the
(already padded) ``(C, H, W)`` the network must produce.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Union

import torch
from torch import nn

from ..errors import DipscopeError
from .common import count_parameters
from .coord import ReLUNet, ReLUNetSpec, coordinate_grid
from .custom import NetworkSpec, as_spec
from .linear import DIPLinear, LinearSpec
from .skip import SkipSpec, build_skip, use_native_kernels

ModelSpec = Union[SkipSpec, LinearSpec, ReLUNetSpec, NetworkSpec]
FAMILIES: dict[str, type] = {"skip": SkipSpec, "linear": LinearSpec, "relunet": ReLUNetSpec}

__all__ = [
    "FAMILIES", "LinearSpec", "ModelSpec", "NetworkSpec", "ReLUNetSpec", "SkipSpec", "as_spec", "build", "build_group",
    "coordinate_grid", "count_parameters", "estimate_memory", "input_shape", "spec_from_dict", "spec_to_dict",
    "use_native_kernels",
]


def input_shape(spec: ModelSpec, image_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """Shape ``(C_z, H, W)`` of the network input for an output of ``image_shape``."""
    c, h, w = image_shape
    if spec.input_kind == "coordinates":
        return (2, h, w)
    if spec.input_kind == "given":
        return tuple(spec.given_input(image_shape).shape[1:])  # type: ignore[union-attr,return-value]
    return (spec.in_channels or c, h, w)


def build(spec: ModelSpec, image_shape: tuple[int, int, int]) -> nn.Module:
    """Instantiate the network of ``spec`` producing images of shape ``image_shape``.

    Weights are drawn from PyTorch's default initialisation using the global RNG, so
    ``torch.manual_seed`` before ``build`` makes them reproducible.
    """
    c = image_shape[0]
    if isinstance(spec, SkipSpec):
        return build_skip(spec, input_shape(spec, image_shape)[0], c)
    if isinstance(spec, LinearSpec):
        return DIPLinear(spec, input_shape(spec, image_shape), image_shape)
    if isinstance(spec, ReLUNetSpec):
        return ReLUNet(spec, c)
    if isinstance(spec, NetworkSpec):
        return spec.build(image_shape)
    raise DipscopeError(f"unknown model spec {type(spec).__name__}")


def build_group(spec: ModelSpec, image_shape: tuple[int, int, int], nets: list[nn.Module]) -> nn.Module:
    """Fuse R networks of ``spec`` (built by :func:`build`) into one grouped network.

    Only the convolutional family groups: every parameter and buffer of the result holds the
    R networks' tensors stacked along its first axis, so run ``r`` computes exactly what
    ``nets[r]`` computes on its block of input channels.
    """
    if not isinstance(spec, SkipSpec):
        raise DipscopeError(f"only the skip family can fit several runs as one network, not {spec.family}")
    if len(nets) == 1:
        return nets[0]
    grouped = build_skip(spec, input_shape(spec, image_shape)[0], image_shape[0], groups=len(nets))
    with torch.no_grad():
        target = dict(grouped.named_parameters()) | dict(grouped.named_buffers())
        for name, tensor in target.items():
            parts = [dict(n.named_parameters()).get(name, dict(n.named_buffers()).get(name)) for n in nets]
            if tensor.ndim == 0:  # BatchNorm's num_batches_tracked
                tensor.copy_(parts[0])
            else:
                tensor.copy_(torch.cat(parts, dim=0))
    return grouped


def spec_to_dict(spec: ModelSpec) -> dict[str, Any]:
    """A JSON-ready description of ``spec`` (with its family), for ``run.json``."""
    if isinstance(spec, NetworkSpec):
        return spec.describe()
    return {"family": spec.family, **dataclasses.asdict(spec)}


def spec_from_dict(data: dict[str, Any]) -> ModelSpec:
    """Inverse of :func:`spec_to_dict`; lists become tuples."""
    data = dict(data)
    family = data.pop("family", "skip")
    if family not in FAMILIES:
        raise DipscopeError(f"unknown model family {family!r}; choose one of {', '.join(FAMILIES)}")
    fields = {f.name for f in dataclasses.fields(FAMILIES[family])}
    unknown = set(data) - fields
    if unknown:
        raise DipscopeError(f"unknown field(s) for {family}: {', '.join(sorted(unknown))}")
    return FAMILIES[family](**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@functools.lru_cache(maxsize=64)
def estimate_memory(spec: ModelSpec, image_shape: tuple[int, int, int], pixel_batch: int | None = None) -> int:
    """Estimate the bytes one fp32 Adam fit needs, without allocating the network.

    The network is built and run on PyTorch's ``meta`` device; the estimate is
    ``16 · P`` (parameters, gradients and Adam's two moments, fp32) plus ``3 · 4 · A`` where
    ``A`` counts the scalars of every module output in one forward pass (kept for the
    backward pass, their gradients, and working space). It is a planning figure, within a
    factor of about two of the true peak, meant to refuse configurations that cannot fit.
    Cached per (spec, shape, batch): the meta-device pass takes ~1.5 s on a 2-core CPU and every
    run of an ensemble asks the same question. A user's network (:class:`NetworkSpec`) counts
    its parameters only (``16 · P``): it may not run on the meta device.
    """
    if isinstance(spec, NetworkSpec):
        return 16 * count_parameters(spec.build(image_shape))
    with torch.device("meta"):
        net = build(spec, image_shape)
        shape = input_shape(spec, image_shape)
        if pixel_batch and spec.input_kind == "coordinates":
            x = torch.empty(1, shape[0], pixel_batch)
        else:
            x = torch.empty(1, *shape)
        activations = 0

        def hook(_m: nn.Module, _i: object, out: object) -> None:
            nonlocal activations
            if isinstance(out, torch.Tensor):
                activations += out.numel()

        leaves = [m for m in net.modules() if not list(m.children())]
        handles = [m.register_forward_hook(hook) for m in leaves]
        try:
            net(x)
        finally:
            for h in handles:
                h.remove()
    params = sum(p.numel() for p in net.parameters())
    return 16 * params + 12 * activations
