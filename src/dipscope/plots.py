"""Shared figure helpers (matplotlib, Agg backend, PNG output)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def _hwc(image: torch.Tensor | np.ndarray) -> np.ndarray:
    a = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    return np.clip(a, 0, 1)


def fit_curves(losses: np.ndarray, history: Sequence[Mapping[str, float]], path: str | Path, title: str) -> None:
    """Loss per step (log scale) and, when known, PSNR of the raw and EMA outputs."""
    has_psnr = any("psnr" in r for r in history)
    fig, axes = plt.subplots(1, 2 if has_psnr else 1, figsize=(10 if has_psnr else 5, 3.6), squeeze=False)
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
    plt.close(fig)


def image_row(images: Sequence[torch.Tensor | np.ndarray], labels: Sequence[str], path: str | Path,
              title: str) -> None:
    """Images side by side with a label under each."""
    fig, axes = plt.subplots(1, len(images), figsize=(3.2 * len(images), 3.6), squeeze=False)
    for ax, im, lab in zip(axes[0], images, labels):
        a = _hwc(im)
        ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
        ax.set_xlabel(lab)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
