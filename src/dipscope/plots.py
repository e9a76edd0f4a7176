"""Shared figure helpers: matplotlib figures written to PNG files.

Figures for files are made outside pyplot (:func:`subplots`): they are never shown, and writing
them chooses no backend (``savefig`` renders a PNG with Agg whatever backend pyplot has), so a
notebook's inline figures are left as they are. Nothing here chooses a backend at import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.colors import Colormap
from matplotlib.figure import Figure

from .images import to_numpy_hwc


def subplots(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] | None = None, **kwargs) -> tuple[Figure, Any]:
    """``matplotlib.pyplot.subplots`` for a figure that goes to a file: the figure and its axes,
    outside pyplot's figure manager (nothing to close, no backend chosen)."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def colormap(name: str) -> Colormap:
    """The registered colour map ``name``."""
    return matplotlib.colormaps[name]


def display_array(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """(H, W) for grey, (H, W, 3) for colour, clipped to [0, 1], ready for ``imshow``."""
    a = to_numpy_hwc(image)
    return np.clip(a[..., 0] if a.shape[-1] == 1 else a, 0, 1)


def fit_curves(losses: np.ndarray, history: Sequence[Mapping[str, float]], path: str | Path, title: str) -> None:
    """Loss per step (log scale) and, when known, PSNR of the raw and EMA outputs."""
    has_psnr = any("psnr" in r for r in history)
    fig, axes = subplots(1, 2 if has_psnr else 1, figsize=(10 if has_psnr else 5, 3.6), squeeze=False)
    ax = axes[0, 0]
    ax.semilogy(np.arange(len(losses)), losses, lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("loss ||A f(z) − y||² / N")
    ax.set_title("loss")
    if has_psnr:
        ax = axes[0, 1]
        steps = [r["step"] for r in history if "psnr" in r]
        ax.plot(steps, [r["psnr"] for r in history if "psnr" in r], label="output")
        if any("psnr_ema" in r for r in history):
            ax.plot([r["step"] for r in history if "psnr_ema" in r],
                    [r["psnr_ema"] for r in history if "psnr_ema" in r], label="EMA")
        ax.set_xlabel("step")
        ax.set_ylabel("PSNR vs clean (dB)")
        ax.set_title("PSNR")
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def image_row(images: Sequence[torch.Tensor | np.ndarray], labels: Sequence[str], path: str | Path,
              title: str) -> None:
    """Images side by side with a label under each."""
    fig, axes = subplots(1, len(images), figsize=(3.2 * len(images), 3.6), squeeze=False)
    for ax, im, lab in zip(axes[0], images, labels):
        a = display_array(im)
        ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        ax.set_xlabel(lab)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")


def band_heatmap(errors: np.ndarray, steps: Sequence[int], edges: np.ndarray, path: str | Path, title: str,
                 tau: float | None = None) -> None:
    """Band × step heatmap of the relative error (log colour), beside per-band curves."""
    from matplotlib.colors import LogNorm

    errors = np.asarray(errors, dtype=float)
    k = errors.shape[1] - 1
    labels = [f"{edges[i]:.3f}–{edges[i + 1]:.3f}" for i in range(k)] + ["corner >0.5"]
    fig, (ax, bx) = subplots(1, 2, figsize=(12, 4.2))
    positive = errors[errors > 0]
    vmin = max(positive.min(), 1e-6) if positive.size else 1e-6
    im = ax.imshow(errors.T, aspect="auto", origin="lower", cmap="viridis",
                   norm=LogNorm(vmin=vmin, vmax=max(errors.max(), vmin * 10)),
                   extent=(steps[0], max(steps[-1], steps[0] + 1), -0.5, k + 0.5), interpolation="nearest")
    ax.set_yticks(range(k + 1))
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xlabel("step")
    ax.set_ylabel("radial frequency band (cycles/pixel)")
    fig.colorbar(im, ax=ax, label="relative error e_k")
    cmap = colormap("plasma")
    for i in range(k + 1):
        bx.semilogy(steps, errors[:, i], color=cmap(i / max(k, 1)), label=labels[i], lw=1.2,
                    ls="--" if i == k else "-")
    if tau is not None:
        bx.axhline(tau, color="k", lw=0.8, ls=":", label=f"τ = {tau}")
    bx.set_xlabel("step")
    bx.set_ylabel("relative error e_k")
    bx.legend(fontsize=6, ncol=2)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def curves(x: Sequence[float] | Mapping[str, Sequence[float]], ys: Mapping[str, Sequence[float]], path: str | Path,
           title: str, xlabel: str, ylabel: str, logy: bool = False, marks: Mapping[str, Sequence[float]] | None = None,
           logx: bool = False) -> None:
    """Several labelled curves on one axis (x shared, or one x per label), with optional marked points."""
    fig, ax = subplots(figsize=(7, 4.2))
    cmap = colormap("viridis")
    for i, (label, y) in enumerate(ys.items()):
        xs = x[label] if isinstance(x, Mapping) else x
        color = cmap(i / max(len(ys) - 1, 1))
        (ax.semilogy if logy else ax.plot)(xs, y, label=label, color=color, lw=1.3)
        if marks and label in marks:
            ax.plot(marks[label], [y[list(xs).index(m)] for m in marks[label]], "o", color=color, ms=4)
    if logx:
        ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel(xlabel)
    _finish(fig, ax, path, title, ylabel)


def _finish(fig: Figure, ax: Axes, path: str | Path, title: str, ylabel: str) -> None:
    """Label, add the legend, save as PNG and close."""
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def bars(labels: Sequence[str], groups: Mapping[str, Sequence[float]], path: str | Path, title: str,
         ylabel: str) -> None:
    """Grouped bars: one group per label, one bar per entry of ``groups``, values written on top."""
    fig, ax = subplots(figsize=(7, 4.2))
    width = 0.8 / max(len(groups), 1)
    x = np.arange(len(labels))
    for i, (name, values) in enumerate(groups.items()):
        rects = ax.bar(x + (i - (len(groups) - 1) / 2) * width, values, width, label=name)
        ax.bar_label(rects, fmt="%.2f", fontsize=7)
    ax.set_xticks(x, labels)
    _finish(fig, ax, path, title, ylabel)


def band_staircase(panels: Mapping[str, tuple[np.ndarray, Sequence[int]]], edges: np.ndarray, path: str | Path,
                   title: str, tau: float) -> None:
    """Claim 1's figure: per panel (e.g. a model), the relative error of every ring over the fit
    (log scale, low frequencies dark, high bright) with the threshold ``tau``; and a last panel
    with each ring's first step below ``tau`` against its centre frequency — the staircase.

    ``panels`` maps a label to ``(errors, steps)``: errors ``(T, K + 1)`` as recorded by
    :class:`~dipscope.callbacks.SpectralObserver` (the corner column is left out), steps ``(T,)``.
    A ring that never falls below ``tau`` is drawn at the last step, hollow.
    """
    edges = np.asarray(edges, dtype=float)
    k = len(edges) - 1
    centres = 0.5 * (edges[:-1] + edges[1:])
    cmap = colormap("plasma")
    fig, axes = subplots(1, len(panels) + 1, figsize=(4.2 * (len(panels) + 1), 3.8), squeeze=False)
    axes = axes[0]
    for i, (label, (errors, steps)) in enumerate(panels.items()):
        errors, steps = np.asarray(errors, dtype=float)[:, :k], np.asarray(steps)
        for band in range(k):
            axes[i].semilogy(steps, errors[:, band], color=cmap(band / max(k - 1, 1)), lw=1.1,
                             label=f"{edges[band]:.3f}–{edges[band + 1]:.3f}")
        axes[i].axhline(tau, color="k", lw=0.8, ls=":")
        axes[i].set_title(label, fontsize=9)
        axes[i].set_xlabel("step")
        below = errors < tau
        first = np.array([steps[np.argmax(below[:, b])] if below[:, b].any() else np.nan for b in range(k)])
        reached = ~np.isnan(first)
        line, = axes[-1].plot(centres[reached], first[reached], "o-", ms=4, label=label)
        axes[-1].plot(centres[~reached], np.full((~reached).sum(), steps[-1]), "o", mfc="none",
                      color=line.get_color(), ms=5)
    axes[0].set_ylabel("relative error per ring")
    axes[0].legend(fontsize=6, title="ring (cycles/pixel)", title_fontsize=6)
    axes[-1].set_xlabel("ring centre (cycles/pixel)")
    axes[-1].set_ylabel(f"first step with error < τ = {tau}")
    axes[-1].set_title("the staircase (hollow: not reached)", fontsize=9)
    axes[-1].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
