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
# # Denoise an image
#
# The Deep Image Prior fits a randomly initialised network `f_θ(z)` to the noisy image `y`,
# and the image it passes through before it fits the noise is the denoised one. This tutorial
# denoises a small crop of scikit-image's bundled "camera" image, lets the default stopping
# rule choose the step without the clean image, and compares the result with the clean image.
#
# The network and step count are kept small so that the notebook runs in seconds on a CPU;
# `dipscope denoise IMAGE --out DIR` runs the same fit at full size.

# %%
from dataclasses import replace

import numpy as np
import torch
from skimage import data

from dipscope import EarlyStopping, GaussianNoise, SkipSpec, preset, psnr
from dipscope.fit import fit

torch.set_num_threads(1)
clean = torch.from_numpy(data.camera()[200:248, 220:268].astype(np.float32) / 255.0)[None]  # (1, 48, 48)
noisy = GaussianNoise(25 / 255, seed=0)(clean, clip=True)  # σ = 25 on the 0–255 scale
print(f"noisy: {psnr(noisy, clean):.2f} dB")

# %% [markdown]
# ## The network and the fit settings
#
# A preset gives an architecture and the fit settings of a reference implementation. Here the
# `dipscope` preset's fit is kept and the network narrowed to 3 levels of 16 channels.

# %%
_, config = preset("dipscope")
spec = SkipSpec(channels_down=(16,) * 3, channels_up=(16,) * 3, channels_skip=(4,) * 3)
config = replace(config, steps=200, device="cpu", precision="fp32", seed=0)

# %% [markdown]
# ## Fit, stopped by the default rule
#
# `EarlyStopping("auto", noisy)` estimates σ from the noisy image and stops the fit without
# the clean image; `clean=` is given only to report PSNR along the way. `config.steps` is the
# maximum: when the rule has not fired by then, its choice is the last output, and
# `choice.reason` says so.

# %%
stopper = EarlyStopping("auto", noisy)
result = fit(spec, noisy, config, clean=clean, callbacks=[stopper])
choice = stopper.choice
chosen = choice.image
print(f"{choice.rule}, step {choice.step}: {psnr(chosen, clean):.2f} dB ({choice.reason})")
print(f"best step {result.best_step}: {result.best_psnr:.2f} dB (needs the clean image)")

# %% [markdown]
# ## Look at it

# %%
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for ax, image, title in zip(axes, [noisy, chosen, clean], ["noisy", "DIP, stopped", "clean"]):
    ax.imshow(image[0].cpu().numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_title(title)
    ax.axis("off")
plt.show()
