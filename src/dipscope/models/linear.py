"""DIP-Linear: the study's fully connected analogue of the DIP encoder-decoder.

Chakrabarty & Maji replace every convolution of the ``skip`` network by a dense layer acting
on the flattened signal, with no skip channels, BatchNorm or upsampling. For ``L`` levels this
is a chain of ``4L + 1`` dense layers

.. math::

    f(z) = \\sigma\\big(W_{4L+1}\\,\\phi(W_{4L} \\cdots \\phi(W_1 \\operatorname{vec}(z)))\\big)

with ``W_1: ℝ^{C_z H W} → ℝ^N``, ``W_{4L+1}: ℝ^N → ℝ^{C H W}``, all others ``N × N``, ``φ`` the
activation and ``σ`` the sigmoid; the output is reshaped to the image. Each dense layer has
no spatial weight sharing, so nothing in it favours smooth outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..errors import DipscopeError
from .common import ACTIVATIONS, activation


@dataclass(frozen=True)
class LinearSpec:
    """DIP-Linear-``width``: ``4·levels + 1`` dense layers of ``width`` units."""

    width: int = 128
    levels: int = 5
    in_channels: int | None = None
    act: str = "leakyrelu"
    sigmoid: bool = True
    family: ClassVar[str] = "linear"
    input_kind: ClassVar[str] = "noise"
    pad_multiple: ClassVar[int] = 1
    min_side: ClassVar[int] = 2

    def __post_init__(self) -> None:
        if self.width < 1 or self.levels < 1:
            raise DipscopeError("DIP-Linear needs width ≥ 1 and levels ≥ 1")
        if self.act.lower() not in ACTIVATIONS:
            raise DipscopeError(f"unknown activation {self.act!r}; choose one of {', '.join(ACTIVATIONS)}")

    def with_levels(self, levels: int) -> "LinearSpec":
        from dataclasses import replace

        return replace(self, levels=levels)


class DIPLinear(nn.Module):
    """Dense encoder-decoder mapping ``z`` of shape (N, C_z, H, W) to (N, C, H, W)."""

    def __init__(self, spec: LinearSpec, in_shape: tuple[int, int, int], out_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.out_shape = tuple(out_shape)
        n_in = in_shape[0] * in_shape[1] * in_shape[2]
        n_out = out_shape[0] * out_shape[1] * out_shape[2]
        sizes = [n_in] + [spec.width] * (4 * spec.levels) + [n_out]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(activation(spec.act))
        if spec.sigmoid:
            layers.append(nn.Sigmoid())
        self.layers = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z.flatten(1)).view(z.shape[0], *self.out_shape)
