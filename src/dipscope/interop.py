"""deepinv interoperability: a deepinv ``Physics`` as dipscope's forward operator, and dipscope's
DIP as a reconstructor a deepinv pipeline can call.

* :class:`PhysicsOperator` wraps any object with deepinv's ``physics.A(x)`` (a
  ``deepinv.physics.Physics``, or anything shaped like one) as a dipscope
  :class:`~dipscope.physics.Operator`, so :func:`dipscope.fit.fit` minimises
  ``||A(f_θ(z)) − y||²`` with deepinv's ``A``. The network's output shape is taken from
  ``physics.A_adjoint`` of a zero measurement where deepinv gives one (super-resolution,
  tomography), else it is the measurement's (give ``domain_shape`` when the physics lives on
  another device than the CPU).
* :class:`DeepImagePrior` is a ``torch.nn.Module`` with deepinv's reconstructor signature
  ``model(y, physics) -> x̂`` for a batch ``y`` (B, C, H, W): each item is fitted with dipscope's
  loop (its preset, divergence recovery, the stopping rule given) and the restored image
  returned.

deepinv itself is optional (``pip install 'dipscope[deepinv]'``, keeping the pinned torch):
nothing here imports it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import torch

from .errors import DipscopeError
from .fit import FitConfig, fit
from .models import ModelSpec
from .physics.operators import Operator
from .presets import preset


class PhysicsOperator(Operator):
    """``A(x) = physics.A(x)`` for a deepinv physics (or any object with an ``A`` method)."""

    def __init__(self, physics: Any, domain_shape: Sequence[int] | None = None) -> None:
        if not callable(getattr(physics, "A", None)):
            raise DipscopeError(f"{type(physics).__name__} has no A(x) method: not a deepinv physics")
        self.physics = physics
        self._domain = tuple(domain_shape) if domain_shape is not None else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.physics.A(x)

    def domain_shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        if self._domain is not None:
            return self._domain
        adjoint = getattr(self.physics, "A_adjoint", None)
        if callable(adjoint):
            with torch.no_grad():
                return tuple(adjoint(torch.zeros(1, *shape)).shape[1:])
        return tuple(shape)

    def to(self, device: torch.device) -> "PhysicsOperator":
        """The caller's physics is not moved: put it on the fit's device (``config.device``)."""
        return self


class DeepImagePrior(torch.nn.Module):
    """dipscope's DIP as a deepinv reconstructor: ``x̂ = model(y, physics)``.

    Parameters
    ----------
    spec, config : the architecture and fit settings (default: the ``ulyanov2018`` preset).
    stop : early stopping of every fit: ``auto`` (the default rule, with σ estimated from
        ``y``, comparing ``physics.A(x_t)`` with ``y``), ``none`` (run ``config.steps`` and
        return the last output, or its EMA), or a rule name of :mod:`dipscope.stopping`. Use
        ``none`` for noiseless measurements and for masks (inpainting): no rule reads a mask's
        zeros yet.

    The fit runs on ``config.device``; the physics must be there too (it is not moved), and it
    is applied whole to each item of the batch (give a batch of one when its parameters, e.g.
    a mask, differ per item).
    """

    def __init__(self, spec: ModelSpec | None = None, config: FitConfig | None = None, stop: str = "auto") -> None:
        super().__init__()
        default_spec, default_config = preset("ulyanov2018")
        self.spec = spec or default_spec
        self.config = config or default_config
        self.stop = stop
        self.results: list[Any] = []  # the FitResult of every item of the last call

    def forward(self, y: torch.Tensor, physics: Any, **_: Any) -> torch.Tensor:
        from .stopping import EarlyStopping, run_choice

        if y.ndim != 4:
            raise DipscopeError(f"y must be a (B, C, H, W) batch, got shape {tuple(y.shape)}")
        adjoint = getattr(physics, "A_adjoint", None)
        with torch.no_grad():  # the network's output shape, asked of the physics on y's device
            domain = tuple(adjoint(torch.zeros_like(y[:1])).shape[1:]) if callable(adjoint) else tuple(y.shape[1:])
        operator = PhysicsOperator(physics, domain_shape=domain)
        outputs, self.results = [], []
        for item in y.detach():
            stopper = None if self.stop == "none" else EarlyStopping(self.stop, item, operator=operator)
            result = fit(self.spec, item, replace(self.config), operator=operator,
                         callbacks=[stopper] if stopper is not None else [], ssim=False)
            self.results.append(result)
            outputs.append(run_choice(stopper, result, return_ema=True)[0])
        return torch.stack(outputs).to(y.device)
