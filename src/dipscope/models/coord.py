"""ReLUNet: a coordinate MLP (the study's fully connected, pixel-wise baseline).

The network maps a pixel's coordinates ``p = (u, v) ∈ [0, 1]²`` to its colour,

.. math::

    f(p) = \\sigma\\big(W_D\\,\\mathrm{ReLU}(W_{D-1} \\cdots \\mathrm{ReLU}(W_1\\,\\gamma(p)))\\big)

with ``D`` linear layers (the study: D = 10, 256 hidden units) and ``γ`` either the identity
or random Fourier features ``γ(p) = [\\sin 2πBp, \\cos 2πBp]`` with ``B ~ N(0, s²)`` (Tancik et
al., 2020). It acts on each pixel independently: the only link between pixels is the shared
weights, not a convolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..errors import DipscopeError


@dataclass(frozen=True)
class ReLUNetSpec:
    """Coordinate MLP: ``depth`` linear layers of ``hidden`` units, optional Fourier features."""

    hidden: int = 256
    depth: int = 10
    fourier_features: int = 0
    fourier_scale: float = 10.0
    sigmoid: bool = True
    family: ClassVar[str] = "relunet"
    input_kind: ClassVar[str] = "coordinates"
    pad_multiple: ClassVar[int] = 1
    min_side: ClassVar[int] = 2

    def __post_init__(self) -> None:
        if self.depth < 2 or self.hidden < 1 or self.fourier_features < 0:
            raise DipscopeError("ReLUNet needs depth ≥ 2, hidden ≥ 1 and fourier_features ≥ 0")

    def with_levels(self, levels: int) -> "ReLUNetSpec":
        return self  # a coordinate MLP has no resolution levels

    @property
    def in_features(self) -> int:
        return 2 * self.fourier_features if self.fourier_features else 2


class ReLUNet(nn.Module):
    """Pixel-wise MLP on a channels-first coordinate tensor (N, 2, *spatial) → (N, C, *spatial)."""

    def __init__(self, spec: ReLUNetSpec, out_channels: int) -> None:
        super().__init__()
        if spec.fourier_features:
            self.register_buffer("freqs", torch.randn(spec.fourier_features, 2) * spec.fourier_scale)
        else:
            self.freqs = None
        sizes = [spec.in_features] + [spec.hidden] * (spec.depth - 1) + [out_channels]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.sigmoid = spec.sigmoid

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        h = coords.movedim(1, -1)
        if self.freqs is not None:
            proj = 2 * math.pi * h @ self.freqs.T
            h = torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)
        for i, layer in enumerate(self.linears):
            h = layer(h)
            if i < len(self.linears) - 1:
                h = torch.relu(h)
        if self.sigmoid:
            h = torch.sigmoid(h)
        return h.movedim(-1, 1)


def coordinate_grid(height: int, width: int) -> torch.Tensor:
    """(1, 2, H, W) grid of (row / (H−1), column / (W−1)) in [0, 1], as the study's ``gen_dataset``."""
    u = torch.linspace(0.0, 1.0, height)
    v = torch.linspace(0.0, 1.0, width)
    uu, vv = torch.meshgrid(u, v, indexing="ij")
    return torch.stack([uu, vv])[None]
