"""Building blocks shared by the model families: activations and small helpers."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ..errors import DipscopeError

Activation = Literal["leakyrelu", "relu", "elu", "swish", "none"]
ACTIVATIONS: tuple[str, ...] = ("leakyrelu", "relu", "elu", "swish", "none")


class Swish(nn.Module):
    """``x · sigmoid(x)`` (the original DIP code's "Swish")."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


def activation(name: str) -> nn.Module:
    """Return a fresh activation module: LeakyReLU(0.2), ReLU, ELU, Swish or identity."""
    name = name.lower()
    if name == "leakyrelu":
        return nn.LeakyReLU(0.2, inplace=True)
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "elu":
        return nn.ELU()
    if name == "swish":
        return Swish()
    if name == "none":
        return nn.Identity()
    raise DipscopeError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")


def per_level(value: object, levels: int, name: str) -> tuple:
    """Broadcast a scalar to a per-level tuple, or check a sequence has one entry per level."""
    if isinstance(value, (list, tuple)):
        if len(value) != levels:
            raise DipscopeError(f"{name} has {len(value)} entries but the network has {levels} levels")
        return tuple(value)
    return (value,) * levels


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars in ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
