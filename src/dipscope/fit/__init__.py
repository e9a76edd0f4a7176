"""The fitting engine: one optimisation loop, observed through callbacks.

Given a measurement ``y`` (C, H, W), a forward operator ``A`` and an architecture spec, the
loop minimises the Deep Image Prior objective

.. math::

    \\min_θ \\; \\lVert A(f_θ(z)) − y \\rVert^2 / N

by Adam, with ``z`` a fixed random input (or the pixel coordinates for a coordinate MLP).
Step ``t`` of the trajectory is ``x_t = f_{θ_t}(z)``, the output *before* the ``t``-th update,
so step 0 is the network at initialisation.

Options of the original implementation are all here: input-noise regularisation
(``z + σ_r ε`` at every step), an exponential moving average of the outputs
(``x̄_t = α x̄_{t−1} + (1 − α) x_t``), and divergence recovery (when the loss becomes NaN or
jumps by more than a factor, the last good weights are reloaded). The network's sides are
padded up to its multiple and its output cropped back, so any H×W works; the loss is taken
on the crop only (each side must still be at least twice that multiple: BatchNorm needs a
2×2 map at the deepest level).

Observers (:class:`Callback`) see a :class:`FitState` every ``k`` steps and may ask the loop to
stop. The loop itself reads values back from the device only at those observation steps.

The package: :mod:`~dipscope.fit.types` (settings, state, callback interface, result),
:mod:`~dipscope.fit.setup` (checks, device settings, networks and inputs, optimiser),
:mod:`~dipscope.fit.recovery` (divergence recovery) and :mod:`~dipscope.fit.loop` (the loop).
The loop itself records the loss and, given a clean image, PSNR/SSIM and the best output
(:meth:`GroupFit.record`); stopping rules, spectra, snapshots and progress display are observers
(:mod:`dipscope.callbacks`, :mod:`dipscope.stopping`).
"""

from .loop import GroupFit, RunBook, fit, fit_runs
from .recovery import DivergenceGuard
from .setup import (available_memory, check_inputs, check_memory, enable_fast_math, make_optimizer, network_input,
                    padded_shape, resolve_layout)
from .types import REFERENCE_MODE, Callback, FitConfig, FitResult, FitState

__all__ = ["REFERENCE_MODE", "Callback", "DivergenceGuard", "FitConfig", "FitResult", "FitState", "GroupFit", "RunBook",
           "available_memory", "check_inputs", "check_memory", "enable_fast_math", "fit", "fit_runs",
           "make_optimizer", "network_input", "padded_shape", "resolve_layout"]
