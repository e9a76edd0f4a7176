"""DIP as a Gaussian process: infinite-width (NNGP) kernels from an architecture spec.

As the channel counts of a network with random normal weights grow, its output at
initialisation becomes a zero-mean Gaussian process whose covariance ``K(t₁, t₂)`` is
shaped by the convolutions, non-linearities and resampling layers (Cheng et al., CVPR 2019,
"A Bayesian perspective on the deep image prior"). This package computes ``K`` layer by layer
in float64 from a :class:`GPSpec` — the same layer list that builds random finite networks
for the Monte-Carlo check, and onto which :func:`from_skip` maps DIP's
:class:`~dipscope.models.SkipSpec`.

>>> from dipscope import gp
>>> spec = gp.conv_relu(depth=2)
>>> K = gp.kernel(spec, 128)                      # (128, 128) float64
>>> c = gp.correlation(gp.stationarize(K, 16))    # c(τ), τ = 0 … 16
>>> K.shape
torch.Size([128, 128])
>>> float(c[0])
1.0
>>> mc = gp.monte_carlo(spec, 128, width=32, samples=300)   # random finite networks
>>> bool(abs(mc.c(16) - c).max() < 0.1)                    # analytic vs empirical
True
"""

from .analysis import correlation, floor_level, half_width, sample_prior, spectrum, stationarize
from .kernel import kernel, stationary_kernel, stationary_reason
from .mc import MonteCarlo, monte_carlo, network_samples, parameter_count
from .spec import (Act, Concat, Conv, Dense, GPSpec, Layer, Norm, Resample, conv_relu, coord_mlp, dense_net,
                   from_skip)

__all__ = [
    "Act", "Concat", "Conv", "Dense", "GPSpec", "Layer", "MonteCarlo", "Norm", "Resample", "conv_relu",
    "coord_mlp", "correlation", "dense_net", "floor_level", "from_skip", "half_width", "kernel", "monte_carlo",
    "network_samples", "parameter_count", "sample_prior", "spectrum", "stationarize", "stationary_kernel",
    "stationary_reason",
]
