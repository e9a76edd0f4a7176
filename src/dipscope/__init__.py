"""dipscope: run the Deep Image Prior fast, and measure its spectral bias.

What a notebook imports (each name is loaded on first use, so ``import dipscope`` stays light)::

    from dipscope import denoise, add_noise, read_image, GaussianNoise, preset, fit_runs, EarlyStopping
    from dipscope.fit import fit   # (``dipscope.fit`` is the package of the loop)

* images: :func:`read_image`, :func:`write_image`;
* the measurement: :class:`GaussianNoise`, :class:`LowFreqNoise`, the forward operators
  :class:`Mask`, :class:`Downsample`, :class:`Blur`, and :func:`denoising_pair`
  (:mod:`dipscope.physics`);
* networks: :class:`SkipSpec`, :class:`LinearSpec`, :class:`ReLUNetSpec`, :func:`build`,
  :func:`preset` (:mod:`dipscope.models`, :mod:`dipscope.presets`);
* the loop: :func:`fit_runs`, :class:`FitConfig`, :class:`Callback` (and ``dipscope.fit.fit``:
  the name ``dipscope.fit`` is the loop's package);
* observers: :class:`EarlyStopping`, :class:`SpectralObserver`, :class:`TrajectoryRecorder`,
  :class:`PSNRTracker` (:mod:`dipscope.stopping`, :mod:`dipscope.callbacks`);
* measures: :func:`psnr`, :func:`ssim` (:mod:`dipscope.metrics`), and the spectral functions of
  :mod:`dipscope.spectral`;
* end to end, on NumPy/torch/PIL images: :func:`denoise`, :func:`restore` (any operator, or a
  deepinv physics) and :func:`add_noise`, returning a :class:`Restoration` (what ``dipscope
  denoise`` and ``dipscope restore`` call; :mod:`dipscope.restoration`); any ``torch.nn.Module``
  as the network (:class:`NetworkSpec`);
* deepinv: :class:`DeepImagePrior` (``model(y, physics)``) and :class:`PhysicsOperator`
  (:mod:`dipscope.interop`).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_PUBLIC = {
    "read_image": "images", "write_image": "images",
    "GaussianNoise": "physics", "LowFreqNoise": "physics", "BandpassNoise": "physics", "MixedNoise": "physics",
    "Mask": "physics", "Identity": "physics", "Downsample": "physics", "Blur": "physics",
    "denoising_pair": "physics",
    "SkipSpec": "models", "LinearSpec": "models", "ReLUNetSpec": "models", "NetworkSpec": "models", "build": "models",
    "preset": "presets",
    "fit_runs": "fit", "FitConfig": "fit", "FitResult": "fit", "FitState": "fit", "Callback": "fit",
    "EarlyStopping": "stopping",
    "SpectralObserver": "callbacks", "TrajectoryRecorder": "callbacks", "PSNRTracker": "callbacks",
    "psnr": "metrics", "ssim": "metrics",
    "denoise": "restoration", "restore": "restoration", "add_noise": "restoration", "Restoration": "restoration",
    "DeepImagePrior": "interop", "PhysicsOperator": "interop",
    "DipscopeError": "errors",
}

__all__ = ["__version__", *sorted(_PUBLIC)]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module 'dipscope' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))
