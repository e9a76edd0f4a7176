"""Spectral measurements of images and of DIP trajectories.

Everything here is a pure function on arrays. Images are ``(C, H, W)``; trajectories and other
batches of snapshots are ``(T, C, H, W)``. Torch tensors and NumPy arrays are both accepted; they
are converted to ``torch.float64`` (keeping a tensor's device) and results are ``torch.float64``
tensors unless a function says otherwise.

Frequency conventions
---------------------
Frequencies are in cycles/pixel. For an ``H x W`` grid the discrete frequencies are
``f_y = torch.fft.fftfreq(H)`` (rows) and ``f_x = torch.fft.fftfreq(W)`` (columns), laid out in
the unshifted FFT order, and the radial frequency is

.. math:: r(f_x, f_y) = \\sqrt{f_x^2 + f_y^2}, \\qquad 0 \\le r \\le \\tfrac{\\sqrt 2}{2}.

Nyquist is ``0.5``. The disc ``r <= 0.5`` is split into ``K`` rings by edges
``0 = e_0 < e_1 < ... < e_K = 0.5``; the frequencies with ``r > 0.5`` (the corners of the square
frequency domain, reached only along diagonals) form a separate *corner* band, reported as the
last entry ``K`` of every per-band result. Fourier transforms use ``norm="ortho"``, so that
Parseval's identity reads :math:`\\sum_p |x(p)|^2 = \\sum_f |\\mathcal F x(f)|^2`.

The package: :mod:`~dipscope.spectral.bands` (radial frequency, rings), :mod:`~dipscope.spectral.spectra`
(power spectra, per-band errors of the complex coefficients and of their magnitudes, low-error radius) and :mod:`~dipscope.spectral.measures`
(frequency-band correspondence, statistics over trajectories, high-frequency fraction, texture band).
"""

from .bands import ArrayLike, EdgesLike, band_edges, band_masks, band_stack, radial_frequency, resolve_edges
from .measures import (first_crossing, frequency_band_correspondence, hf_fraction, spearman_rho, texture_band,
                       windowed)
from .spectra import (band_energy, band_magnitude_error, band_relative_error, low_error_radius, power_spectrum,
                      radial_power_spectrum)

__all__ = [
    "radial_frequency", "band_edges", "band_masks", "power_spectrum", "radial_power_spectrum", "band_energy",
    "band_relative_error", "band_magnitude_error", "low_error_radius", "frequency_band_correspondence", "spearman_rho", "first_crossing",
    "windowed", "hf_fraction", "texture_band", "ArrayLike", "EdgesLike", "resolve_edges", "band_stack",
]
