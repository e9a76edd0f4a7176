"""Forward operators ``A`` of the measurement model ``y = A(x) + n``.

The fit loop minimises ``||A(f_θ(z)) − y||²``; the operator is the only thing that changes
between inverse problems (after deepinv's ``physics`` objects). Operators here act pixel-wise,
so they can also be restricted to a random subset of pixels for minibatch fitting.
"""

from __future__ import annotations

import torch


class Operator:
    """Base class: ``A(x)`` for a batch ``x`` of shape (N, C, *spatial)."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def restrict(self, index: torch.Tensor) -> "Operator":
        """The operator acting on pixels ``index`` of the flattened image only."""
        raise NotImplementedError

    def to(self, device: torch.device) -> "Operator":
        return self


class Identity(Operator):
    """``A = I``: denoising."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def restrict(self, index: torch.Tensor) -> "Identity":
        return self


class Mask(Operator):
    """``A(x) = m ⊙ x`` with a fixed 0/1 mask ``m`` of shape (C or 1, H, W): inpainting."""

    def __init__(self, mask: torch.Tensor) -> None:
        self.mask = mask.float()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask.reshape(self.mask.shape[0], *x.shape[2:])

    def restrict(self, index: torch.Tensor) -> "Mask":
        return Mask(self.mask.flatten(1)[:, index])

    def to(self, device: torch.device) -> "Mask":
        return Mask(self.mask.to(device))
