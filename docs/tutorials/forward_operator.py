# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Your own forward operator
#
# The fit minimises `||A(f_θ(z)) − y||²` for any forward operator `A` that PyTorch can
# differentiate. `dipscope.physics` ships masks, the Lanczos downsampler and blurs; this
# tutorial writes a new one: a 2×2 box average, the simplest camera that loses resolution.
#
# An operator subclasses `dipscope.physics.Operator` and gives
#
# * `__call__(x)`: the measurement of a batch `x`, shaped (N, C, H, W);
# * `domain_shape(shape)`: the (C, H, W) of the image whose measurement has `shape` — here
#   twice as large, so the network's output is the high-resolution image.

# %%
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from skimage import data

from dipscope import SkipSpec, preset, psnr
from dipscope.fit import fit
from dipscope.physics import Operator

torch.set_num_threads(1)


class BoxDownsample(Operator):
    """``A(x)``: the mean of each ``factor × factor`` block."""

    def __init__(self, factor: int) -> None:
        self.factor = factor

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, self.factor)

    def domain_shape(self, shape):
        channels, height, width = shape
        return (channels, height * self.factor, width * self.factor)


# %% [markdown]
# ## The measurement
#
# A 48×48 crop of "camera", shrunk to 24×24 by the operator itself.

# %%
clean = torch.from_numpy(data.camera()[200:248, 220:268].astype(np.float32) / 255.0)[None]  # (1, 48, 48)
A = BoxDownsample(2)
low = A(clean[None])[0]  # (1, 24, 24)
print(tuple(low.shape), "→", A.domain_shape(tuple(low.shape)))

# %% [markdown]
# ## Fit through the operator
#
# `clean=` is the high-resolution reference, used only to report PSNR.

# %%
_, config = preset("ulyanov2018-superres")
spec = SkipSpec(channels_down=(16,) * 3, channels_up=(16,) * 3, channels_skip=(4,) * 3)
config = replace(config, steps=150, device="cpu", precision="fp32", seed=0)
result = fit(spec, low, config, operator=A, clean=clean)
nearest = low.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
print(f"DIP: {psnr(result.final, clean):.2f} dB, pixel repetition: {psnr(nearest, clean):.2f} dB")
print(f"data term: {float(((A(result.final[None])[0] - low) ** 2).mean()):.2e}")

# %% [markdown]
# ## Look at it

# %%
fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for ax, image, title in zip(axes, [nearest, result.final, clean], ["measurement (repeated)", "DIP", "clean"]):
    ax.imshow(image[0].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_title(title)
    ax.axis("off")
plt.show()
