"""The report's plots, drawn on matplotlib ``Figure`` objects and rendered by the Agg canvas
(:func:`~dipscope.report.page.plot_png`): no pyplot, so no global backend is chosen or changed."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from .page import plot_png

_STOP = {"color": "#c0392b", "lw": 1.6, "ls": "--"}


def fit_curves(loss_steps: Sequence[int], losses: Sequence[float], psnr: Mapping[str, tuple[list[int], list[float]]],
               stop_step: int | None, stop_label: str) -> str:
    """The loss per step (log scale) and, when given, the PSNR curves, with the stopping step
    marked on both (a dashed vertical line, and a point on each PSNR curve); a PNG ``data:`` URI.

    ``psnr`` maps a curve's label to its ``(steps, values)``.
    """
    from matplotlib.figure import Figure

    panels = 2 if psnr else 1
    fig = Figure(figsize=(5.2 * panels, 3.4), dpi=100, layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    ax = axes[0]
    ax.semilogy(loss_steps, losses, lw=0.9, color="#2f5d8a", label="loss")
    ax.set(xlabel="step", ylabel="loss ||A f(z) − y||² / N", title="loss")
    for ax in axes:
        if stop_step is not None:
            ax.axvline(stop_step, **_STOP, label=stop_label)
    if psnr:
        ax = axes[1]
        for label, (steps, values) in psnr.items():
            (line,) = ax.plot(steps, values, lw=1.2, label=label)
            if stop_step is not None and stop_step in steps:
                ax.plot([stop_step], [values[steps.index(stop_step)]], "o", color=line.get_color(), ms=5)
        ax.set(xlabel="step", ylabel="PSNR against the clean image (dB)", title="PSNR")
    for ax in axes:
        ax.legend(fontsize=8)
    return plot_png(fig)


def band_errors(steps: Sequence[int], errors: np.ndarray, band_labels: Sequence[str], stop_step: int | None,
                stop_label: str, tau: float | None = None) -> str:
    """Per-band relative error ``e_k(t)``: a band × step heatmap (log colour) beside one curve
    per band, the stopping step marked on both; a PNG ``data:`` URI. ``errors`` is ``(T, bands)``."""
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    errors = np.asarray(errors, dtype=float)
    bands = errors.shape[1]
    fig = Figure(figsize=(11.5, 4.0), dpi=100, layout="constrained")
    ax, bx = fig.subplots(1, 2)
    positive = errors[errors > 0]
    low = max(float(positive.min()), 1e-6) if positive.size else 1e-6
    high = max(float(errors.max()), low * 10)
    extent = (steps[0], max(steps[-1], steps[0] + 1), -0.5, bands - 0.5)
    im = ax.imshow(errors.T, aspect="auto", origin="lower", cmap="viridis", norm=LogNorm(vmin=low, vmax=high),
                   extent=extent, interpolation="nearest")
    ax.set_yticks(range(bands), band_labels, fontsize=7)
    ax.set(xlabel="step", ylabel="radial frequency band (cycles/pixel)", title="relative error per band")
    fig.colorbar(im, ax=ax, label="e_k (log scale)")
    cmap = colormaps["plasma"]
    for k in range(bands):
        bx.semilogy(steps, errors[:, k], color=cmap(k / max(bands - 1, 1)), lw=1.1, label=band_labels[k])
    if tau is not None:
        bx.axhline(tau, color="k", lw=0.8, ls=":", label=f"τ = {tau:g}")
    for axis in (ax, bx):
        if stop_step is not None:
            axis.axvline(stop_step, **_STOP, label=stop_label if axis is bx else None)
    bx.set(xlabel="step", ylabel="relative error e_k", title="each band over the fit")
    bx.legend(fontsize=6, ncol=2)
    return plot_png(fig)
