"""Named settings: the reference implementations', and dipscope's own denoising default.

* ``ulyanov2018`` — the original DIP denoising notebook (Ulyanov et al., CVPR 2018): input
  depth 32, U[0, 0.1) input, 5 levels of 128/128/4 channels, bilinear upsampling, reflection
  padding, Adam lr 0.01, 3000 steps, input noise 1/30, EMA 0.99.
* ``chakrabarty2019`` — the study's scripts (Chakrabarty & Maji): input N(0, 1) with as many
  channels as the image, 256/256/4 channels, zero padding, bilinear, lr 0.001, 1000 steps,
  snapshots every 10 steps, no input noise, no EMA and no divergence recovery (the scripts
  have none).

* ``ulyanov2018-inpaint`` — the original inpainting notebook's text-inpainting setting (its
  ``kate.png`` and ``peppers.png``): input depth 32, U[0, 0.1) input, 5 levels of 128/128/128
  channels (skip connections as wide as the trunk), **nearest** upsampling, reflection padding,
  lr 0.01, 6 001 steps, input noise 0.03, no EMA (the notebook returns the last output).
* ``ulyanov2018-superres`` — the original super-resolution notebook at ×4: the denoising
  network (5 levels of 128/128/4, bilinear, reflection), input depth 32 at the *high*
  resolution, lr 0.01, 2 000 steps, input noise 0.03, no EMA (the notebook returns the last
  output; at ×8 it runs 4 000 steps with input noise 0.05).

* ``dipscope`` — dipscope's denoising default: the ``ulyanov2018`` fit (input, lr, input
  noise, EMA) with a 48-channel trunk instead of 128 (5 levels of 48/48/4), fitted as an
  ensemble of :func:`default_runs` = 3 seeds whose stopped images are averaged (fitted at once on
  a multi-core CPU). The mean of ``R`` runs averages out the part of each run's error that is
  its own (its initialisation and input), while each narrow run costs a fraction of a 128-channel
  one; the measurements behind the choice are in the benchmark pages.

Each preset gives settings for the three model families; DIP-Linear shares the DIP fit
settings, ReLUNet uses the study's ReLUNet script (lr 1e-3, 2048-pixel minibatches, 30 000
steps, snapshots every 100 steps) in every preset.
"""

from __future__ import annotations

from dataclasses import replace

from .errors import DipscopeError
from .fit import FitConfig
from .models import LinearSpec, ModelSpec, ReLUNetSpec, SkipSpec

PRESETS = ("dipscope", "ulyanov2018", "chakrabarty2019", "ulyanov2018-inpaint", "ulyanov2018-superres")

#: The skip trunk's width in the ``dipscope`` preset (``ulyanov2018``: 128).
DIPSCOPE_WIDTH = 48
#: Seeds fitted and averaged by default, per preset (1 where not named).
DEFAULT_RUNS = {"dipscope": 3}

_RELUNET_FIT = FitConfig(
    steps=30_000, lr=1e-3, reg_noise_std=0.0, ema=None, pixel_batch=2048, observe_every=100,
)


def preset(name: str, family: str = "skip", linear_width: int = 128) -> tuple[ModelSpec, FitConfig]:
    """The (architecture, fit settings) of preset ``name`` for model ``family``.

    Examples
    --------
    >>> spec, config = preset("ulyanov2018")
    >>> spec.channels_down, config.steps, config.lr, config.ema
    ((128, 128, 128, 128, 128), 3000, 0.01, 0.99)
    >>> preset("dipscope")[0].channels_down
    (48, 48, 48, 48, 48)
    >>> preset("chakrabarty2019", family="linear")[0].width
    128

    """
    if name in ("ulyanov2018", "dipscope"):
        fit = FitConfig(steps=3000, lr=0.01, input_noise="uniform", input_scale=0.1,
                        reg_noise_std=1.0 / 30.0, ema=0.99, observe_every=10)
        width = DIPSCOPE_WIDTH if name == "dipscope" else 128
        skip = SkipSpec(in_channels=32, pad="reflection", upsample="bilinear", channels_down=(width,) * 5,
                        channels_up=(width,) * 5)
        linear = LinearSpec(width=linear_width, in_channels=32)
    elif name == "chakrabarty2019":
        fit = FitConfig(steps=1000, lr=0.001, input_noise="normal", input_scale=1.0,
                        reg_noise_std=0.0, ema=None, observe_every=10, recover_divergence=False)
        skip = SkipSpec(in_channels=None, channels_down=(256,) * 5, channels_up=(256,) * 5,
                        channels_skip=(4,) * 5, pad="zero", upsample="bilinear")
        linear = LinearSpec(width=linear_width, in_channels=None)
    elif name in ("ulyanov2018-inpaint", "ulyanov2018-superres"):
        inpaint = name.endswith("inpaint")
        fit = FitConfig(steps=6001 if inpaint else 2000, lr=0.01, input_noise="uniform", input_scale=0.1,
                        reg_noise_std=0.03, ema=None, observe_every=10)
        skip = SkipSpec(in_channels=32, pad="reflection", upsample="nearest" if inpaint else "bilinear",
                        channels_skip=(128,) * 5 if inpaint else (4,) * 5)
        linear = LinearSpec(width=linear_width, in_channels=32)
    else:
        raise DipscopeError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    if family == "skip":
        return skip, fit
    if family == "linear":
        return linear, fit
    if family == "relunet":
        return ReLUNetSpec(), replace(_RELUNET_FIT)
    raise DipscopeError(f"unknown model {family!r}; choose skip, linear or relunet")


def default_runs(name: str, family: str = "skip") -> int:
    """How many seeds ``name`` fits and averages when the user does not say (``--runs``): the
    preset's :data:`DEFAULT_RUNS` for the DIP (skip) network, 1 for every other model."""
    return DEFAULT_RUNS.get(name, 1) if family == "skip" else 1
