"""Noise models ``n`` of the measurement ``y = A(x) + n``, as objects that own their random stream.

Every model takes its standard deviation ``sigma`` on the image's own scale ([0, 1]; the
command line converts the usual 0–255 figures once) and a ``seed``. Its numbers come from a
generator seeded with :func:`dipscope.runtime.derive_seed` ``(seed, stream)``, one stream per
kind of noise, so a noise never repeats the random numbers of a network's weights or input,
nor of another noise drawn from the same seed (after deepinv's ``physics/noise.py``: noises
as modules with their own generator).

* :class:`GaussianNoise` — white, ``n ~ N(0, σ² I)``; ``exact=True`` rescales each channel to
  zero mean and sample std exactly σ;
* :class:`LowFreqNoise` — white noise kept at radial frequencies ``r ≤ f_c``;
* :class:`BandpassNoise` — kept in the ring ``f_low < r ≤ f_high``;
* :class:`MixedNoise` — the sum of independent white and low-frequency noise.

``noise(x)`` returns ``x + n`` (not clipped unless ``clip=True``: clipping a band-limited
``n`` to [0, 1] adds high frequencies); ``noise.sample(shape)`` returns ``n``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ..errors import DipscopeError
from ..runtime import derive_seed


class Noise:
    """A noise model with std ``sigma`` (image scale) drawn from its own stream of ``seed``."""

    stream = "degradation"

    def __init__(self, sigma: float, seed: int = 0) -> None:
        if not (math.isfinite(sigma) and sigma >= 0):
            raise DipscopeError(f"the noise std sigma must be a finite number ≥ 0, not {sigma}")
        self.sigma = float(sigma)
        self.seed = seed

    def generator(self) -> torch.Generator:
        """A fresh generator of this noise's stream: the same numbers at every call."""
        return torch.Generator().manual_seed(derive_seed(self.seed, self.stream))

    def sample(self, shape: Sequence[int]) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, *, clip: bool = False) -> torch.Tensor:
        """``y = x + n`` (float32, on the CPU), clipped to [0, 1] if ``clip``."""
        y = x.float().cpu() + self.sample(x.shape)
        return y.clamp(0.0, 1.0) if clip else y

    def describe(self) -> dict[str, object]:
        return {"kind": type(self).__name__, "sigma": self.sigma, "seed": self.seed,
                **{k: v for k, v in vars(self).items() if k not in ("sigma", "seed") and not k.startswith("_")}}


class GaussianNoise(Noise):
    """White Gaussian noise ``n = σ ε``, ``ε ~ N(0, I)`` (float32).

    With ``exact`` each channel of ``n`` is rescaled to zero mean and sample std exactly σ, so
    that two noises compared with each other give exactly the same noisy PSNR.

    Examples
    --------
    >>> import torch
    >>> clean = torch.full((1, 128, 128), 0.5)
    >>> noisy = GaussianNoise(25 / 255, seed=0)(clean)
    >>> round(float((noisy - clean).std() * 255))
    25
    >>> torch.equal(noisy, GaussianNoise(25 / 255, seed=0)(clean))   # its own stream: same seed, same noise
    True

    """

    stream = "degradation"

    def __init__(self, sigma: float, seed: int = 0, *, exact: bool = False) -> None:
        super().__init__(sigma, seed)
        self.exact = exact

    def sample(self, shape: Sequence[int]) -> torch.Tensor:
        eps = torch.randn(tuple(int(s) for s in shape), generator=self.generator(), dtype=torch.float32)
        if not self.exact:
            return self.sigma * eps
        flat = eps.double().reshape(eps.shape[0], -1)
        flat = flat - flat.mean(dim=1, keepdim=True)
        return (flat / flat.std(dim=1, correction=0)[:, None] * self.sigma).reshape(eps.shape).float()


class _BandNoise(Noise):
    """White noise kept at radial frequencies ``low < r ≤ high`` (``0 ≤ r`` when ``closed_low``)."""

    low: float
    high: float
    closed_low: bool

    def __init__(self, sigma: float, seed: int = 0, *, exact: bool = False) -> None:
        super().__init__(sigma, seed)
        self.exact = exact

    def sample(self, shape: Sequence[int]) -> torch.Tensor:
        """Filtered white noise, scaled so its std is σ (in expectation, or exactly if ``exact``)."""
        if len(shape) < 2 or any(int(s) < 1 for s in shape):
            raise DipscopeError(f"the noise shape must be (..., H, W) with positive sides, got {tuple(shape)}")
        h, w = int(shape[-2]), int(shape[-1])
        fy = torch.fft.fftfreq(h, dtype=torch.float64)
        fx = torch.fft.fftfreq(w, dtype=torch.float64)
        r = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
        mask = (r <= self.high) & ((r >= self.low) if self.closed_low else (r > self.low))
        kept = int(mask.sum())
        if kept == 0:
            raise DipscopeError(f"no frequency of a {h}×{w} grid lies in the band ({self.low:g}, {self.high:g}] "
                                "cycles/pixel; widen the band or use a larger image")
        white = torch.randn(tuple(int(s) for s in shape), generator=self.generator(), dtype=torch.float64)
        filtered = torch.fft.ifft2(torch.fft.fft2(white, norm="ortho") * mask, norm="ortho").real
        if self.exact:
            flat = filtered.reshape(-1, h * w)
            flat = flat - flat.mean(dim=1, keepdim=True)
            std = flat.std(dim=1, correction=0)
            if bool((std < 1e-12).any()):
                raise DipscopeError("the band holds only the DC term: the noise is constant and has no std to set")
            filtered = (flat / std[:, None] * self.sigma).reshape(filtered.shape)
        else:
            # With the unitary DFT, unit white noise has unit power at every frequency, so the
            # filtered field has variance kept / (H·W) per pixel (in expectation).
            filtered = filtered * (self.sigma * math.sqrt(h * w / kept))
        return filtered.float()


class LowFreqNoise(_BandNoise):
    """Band-limited ("low-frequency") Gaussian noise: white noise ``w`` filtered to ``r ≤ f_c``
    (cycles/pixel, DC included) with an ideal low-pass on the unitary DFT, per 2-D slice:

    .. math:: n = \\mathcal F^{-1}\\big[\\mathbf 1\\{r(f) \\le f_c\\}\\,\\mathcal F w\\big] \\cdot
              \\sigma \\sqrt{HW / |\\{f : r(f) \\le f_c\\}|},

    a stationary (periodic) Gaussian field with ``E[n_p²] = σ²``. Only about ``π f_c² H W``
    coefficients are kept, so one realisation's sample std scatters around σ (by
    ~``1/√(π f_c² HW)``); ``exact=True`` rescales each slice to zero mean and sample std
    exactly σ (removing the DC term).
    """

    stream = "lowfreq_noise"
    closed_low = True
    low = 0.0

    def __init__(self, sigma: float, fc: float = 1 / 32, seed: int = 0, *, exact: bool = False) -> None:
        if not 0 < fc <= 0.5 * math.sqrt(2):
            raise DipscopeError("the cutoff fc must be in (0, √2/2] cycles/pixel")
        super().__init__(sigma, seed, exact=exact)
        self.fc = self.high = fc


class BandpassNoise(_BandNoise):
    """Gaussian noise of std σ confined to the ring ``f_low < r ≤ f_high`` (cycles/pixel), as
    :class:`LowFreqNoise` with the ring's ideal band-pass mask in place of the disc."""

    stream = "bandpass_noise"
    closed_low = False

    def __init__(self, sigma: float, f_low: float, f_high: float, seed: int = 0, *, exact: bool = False) -> None:
        if not 0 <= f_low < f_high:
            raise DipscopeError("the band needs 0 ≤ f_low < f_high (cycles/pixel)")
        super().__init__(sigma, seed, exact=exact)
        self.low, self.high = f_low, f_high


class MixedNoise(Noise):
    """White noise of std ``sigma_white`` plus independent low-frequency noise of std
    ``sigma_low`` (cutoff ``fc``): total variance ``σ_w² + σ_l²``. Each part draws from its own
    stream of the same seed."""

    def __init__(self, sigma_white: float, sigma_low: float, fc: float = 1 / 32, seed: int = 0) -> None:
        self.white = GaussianNoise(sigma_white, seed)
        self.low = LowFreqNoise(sigma_low, fc, seed)
        super().__init__(math.hypot(sigma_white, sigma_low), seed)

    def sample(self, shape: Sequence[int]) -> torch.Tensor:
        return self.white.sample(shape) + self.low.sample(shape)

    def describe(self) -> dict[str, object]:
        return {"kind": "MixedNoise", "white": self.white.describe(), "low": self.low.describe()}
