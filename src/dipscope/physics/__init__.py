"""The measurement model ``y = A(x) + n``: forward operators, noise models and the resampling
of the study's data pipeline.

* :mod:`~dipscope.physics.operators` — ``A``: :class:`Identity` (denoising), :class:`Mask`
  (inpainting), :class:`Downsample` (super-resolution), :class:`Blur` (deblurring);
* :mod:`~dipscope.physics.kernels` — their filters: :func:`lanczos_taps`, :func:`gaussian_kernel`,
  :func:`box_kernel`, :func:`parse_blur`;
* :mod:`~dipscope.physics.noise` — ``n``: :class:`GaussianNoise`, :class:`LowFreqNoise`,
  :class:`BandpassNoise`, :class:`MixedNoise`, each with σ on the image's [0, 1] scale and its
  own random stream;
* :mod:`~dipscope.physics.resize` — :func:`downsample` (``study``, ``area``, ``antialias``,
  ``study-distorted``), :func:`quantize8` and the benchmark's :func:`denoising_pair`.
"""

from .kernels import BLUR_KINDS, box_kernel, gaussian_kernel, lanczos_taps, parse_blur
from .noise import BandpassNoise, GaussianNoise, LowFreqNoise, MixedNoise, Noise
from .operators import Blur, Downsample, Identity, Mask, Operator
from .resize import RESIZES, denoising_pair, downsample, quantize8

__all__ = ["BLUR_KINDS", "BandpassNoise", "Blur", "Downsample", "GaussianNoise", "Identity", "LowFreqNoise", "Mask",
           "MixedNoise", "Noise", "Operator", "RESIZES", "box_kernel", "denoising_pair", "downsample",
           "gaussian_kernel", "lanczos_taps", "parse_blur", "quantize8"]
