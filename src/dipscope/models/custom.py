"""Any network: a user's ``torch.nn.Module`` as a model spec the fit loop and the experiments take.

:class:`NetworkSpec` wraps

* an ``nn.Module`` — every run starts from a copy of its weights as given (the seed changes the
  input and its noise, not the weights), or
* a callable ``make(shape) -> nn.Module`` for an output of ``shape`` = (C, H, W) — called once
  per run after seeding torch's global generator with the run's ``weights`` stream, so each
  seed draws its own weights;

and its input ``z``: ``"noise"`` (the fit's input noise with ``in_channels`` channels, as the
DIP), ``"coordinates"`` (the (1, 2, H, W) pixel grid, as a coordinate MLP), a tensor
(1, C_z, H, W) or (C_z, H, W), or a callable ``make_input(shape) -> tensor``. The network maps
the input to (1, C, H, W); ``pad_multiple`` pads the image's sides up to a multiple first (for
encoder-decoders that halve the resolution), and the output is cropped back.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from ..errors import DipscopeError


@dataclass(frozen=True, eq=False)
class NetworkSpec:
    """A user's network (module or factory) and its input; see the module docstring."""

    network: nn.Module | Callable[[tuple[int, int, int]], nn.Module]
    input: Any = "noise"
    in_channels: int = 32
    pad_multiple: int = 1
    name: str = field(default="")
    family: ClassVar[str] = "custom"
    min_side: ClassVar[int] = 2

    def __post_init__(self) -> None:
        if not (isinstance(self.network, nn.Module) or callable(self.network)):
            raise DipscopeError(f"network must be a torch.nn.Module or a callable that makes one, not "
                                f"{type(self.network).__name__}")
        given = isinstance(self.input, torch.Tensor) or callable(self.input)
        if not given and self.input not in ("noise", "coordinates"):
            raise DipscopeError(f"input must be 'noise', 'coordinates', a tensor or a callable, not {self.input!r}")
        if isinstance(self.input, torch.Tensor) and self.input.ndim not in (3, 4):
            raise DipscopeError(f"input must be (1, C_z, H, W) or (C_z, H, W), got shape {tuple(self.input.shape)}")
        if self.in_channels < 1 or self.pad_multiple < 1:
            raise DipscopeError("in_channels and pad_multiple must be ≥ 1")
        if not self.name:
            label = self.network if isinstance(self.network, nn.Module) else None
            object.__setattr__(self, "name", type(label).__name__ if label is not None
                               else getattr(self.network, "__name__", "network"))

    @property
    def input_kind(self) -> str:
        """``noise`` or ``coordinates`` (drawn by the loop), or ``given``."""
        return self.input if isinstance(self.input, str) else "given"

    def with_levels(self, levels: int) -> "NetworkSpec":
        return self  # a user's network has no levels dipscope can change

    def build(self, image_shape: tuple[int, int, int]) -> nn.Module:
        """The network of one run, for an output of ``image_shape``."""
        if isinstance(self.network, nn.Module):
            return copy.deepcopy(self.network)
        net = self.network(tuple(image_shape))
        if not isinstance(net, nn.Module):
            raise DipscopeError(f"network({tuple(image_shape)}) returned {type(net).__name__}, not a torch.nn.Module")
        return net

    def given_input(self, image_shape: tuple[int, int, int]) -> torch.Tensor:
        """The input ``z`` (1, C_z, H, W) of a ``given`` input."""
        z = self.input(tuple(image_shape)) if callable(self.input) else self.input
        z = torch.as_tensor(z).detach().float().cpu()
        return z[None] if z.ndim == 3 else z

    def describe(self) -> dict[str, Any]:
        """JSON-ready: its name, the module's class, the kind of input."""
        network = self.network if isinstance(self.network, nn.Module) else None
        return {"family": self.family, "name": self.name,
                "module": type(network).__name__ if network is not None else "factory",
                "input": self.input_kind, "in_channels": self.in_channels, "pad_multiple": self.pad_multiple}


def as_spec(network: Any) -> Any:
    """``network`` as a model spec: a spec as it is; an ``nn.Module`` or a factory wrapped in a
    :class:`NetworkSpec` with the default (noise) input."""
    if isinstance(network, nn.Module) or (callable(network) and not hasattr(network, "family")):
        return NetworkSpec(network)
    return network
