"""The measurement model ``y = A(x) + n``: forward operators, noise models and the resampling
of the study's data pipeline.

* :mod:`~dipscope.physics.operators` — ``A``: :class:`Identity` (denoising), :class:`Mask`
  (inpainting);
* :mod:`~dipscope.physics.noise` — ``n``: :class:`GaussianNoise`, :class:`LowFreqNoise`,
  :class:`BandpassNoise`, :class:`MixedNoise`, each with σ on the image's [0, 1] scale and its
  own random stream;
* :mod:`~dipscope.physics.resize` — :func:`downsample` (``study``, ``area``, ``antialias``,
  ``study-distorted``), :func:`quantize8` and the benchmark's :func:`denoising_pair`.
"""

from .noise import BandpassNoise, GaussianNoise, LowFreqNoise, MixedNoise, Noise
from .operators import Identity, Mask, Operator
from .resize import RESIZES, denoising_pair, downsample, quantize8

__all__ = ["BandpassNoise", "GaussianNoise", "Identity", "LowFreqNoise", "Mask", "MixedNoise", "Noise", "Operator",
           "RESIZES", "denoising_pair", "downsample", "quantize8"]
