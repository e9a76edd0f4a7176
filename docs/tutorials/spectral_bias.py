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
# # Watch the spectral bias
#
# Fit the Deep Image Prior to a *clean* image and record, every few steps, the relative error
# of the output in each frequency band (ring) of the spectrum,
#
# $$e_k(t) = \frac{\sum_{f \in B_k} |\mathcal F(x_t - x_0)(f)|^2}{\sum_{f \in B_k} |\mathcal F x_0(f)|^2}.$$
#
# The study's first claim is that the low bands fall first. `SpectralObserver` records
# `e_k(t)`; `dipscope.spectral.first_crossing` finds the step at which each band drops below
# a threshold τ, and `spearman_rho` says how well that step follows the band's frequency.

# %%
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import torch
from skimage import data

from dipscope import SkipSpec, SpectralObserver, preset, spectral
from dipscope.fit import fit

torch.set_num_threads(1)
clean = torch.from_numpy(data.camera()[200:248, 220:268].astype(np.float32) / 255.0)[None]  # (1, 48, 48)

# %% [markdown]
# ## Fit the clean image, observed band by band
#
# Four rings plus the corner band beyond Nyquist's circle (`edges=4`). The fit observes every
# 10 steps (`observe_every`), and the observer reads every observation.

# %%
_, config = preset("chakrabarty2019")
spec = SkipSpec(in_channels=None, channels_down=(16,) * 3, channels_up=(16,) * 3, channels_skip=(4,) * 3,
                pad="zero")
config = replace(config, steps=150, lr=0.01, observe_every=10, device="cpu", precision="fp32", seed=0)
observer = SpectralObserver({"clean": clean}, edges=4)
fit(spec, clean, config, callbacks=[observer])
errors = observer.table("clean")  # (observations, bands + 1)
steps = np.asarray(observer.steps)
print(errors.shape)

# %% [markdown]
# ## The per-band error over the steps

# %%
edges = spectral.band_edges(4).numpy()
fig, ax = plt.subplots(figsize=(6, 3.5))
for k in range(errors.shape[1] - 1):
    ax.semilogy(steps, errors[:, k], label=f"{edges[k]:.2f}–{edges[k + 1]:.2f} c/px")
ax.set_xlabel("step")
ax.set_ylabel("relative error $e_k(t)$")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## When does each band fit?
#
# The first step at which `e_k(t) < τ`, per ring (None: not within these steps). With a
# spectral bias the steps rise with the band's frequency, and Spearman's ρ between the band
# index and its step is near 1.

# %%
tau = 0.1
reached = spectral.first_crossing(errors[:, :-1], steps, tau)
print("first step below τ, per band:", reached)
found = [(k, t) for k, t in enumerate(reached) if t is not None]
if len(found) >= 2:
    print("Spearman ρ(band, step):", round(spectral.spearman_rho([k for k, _ in found], [t for _, t in found]), 2))
