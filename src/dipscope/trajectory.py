"""Trajectory snapshots ``x_{t}`` for t = 0, k, 2k, … kept compactly in memory or on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch

from .fit import Callback, FitState

_DTYPES = {"float32": np.float32, "float16": np.float16, "uint8": np.uint8}


class TrajectoryRecorder(Callback):
    """Record the output (and optionally the EMA) at every ``every``-th observation.

    Snapshots are stored as ``float16`` by default (max error 2⁻¹¹ on [0, 1]: far below
    any 8-bit quantisation), ``uint8`` (the image as a PNG would hold it) or ``float32``.
    With ``path`` they are streamed to a ``.npy`` file per snapshot batch on disk instead of
    held in memory; :meth:`save` writes ``trajectory.npz`` either way.
    """

    def __init__(self, every: int = 1, dtype: Literal["float32", "float16", "uint8"] = "float16",
                 with_ema: bool = False, path: str | Path | None = None) -> None:
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}")
        self.every = every
        self.dtype = dtype
        self.with_ema = with_ema
        self.path = Path(path) if path is not None else None
        self.steps: list[int] = []
        self._frames: list[np.ndarray] = []
        self._ema: list[np.ndarray] = []
        self._files: list[Path] = []

    def _pack(self, x: torch.Tensor) -> np.ndarray:
        a = x.detach().float().cpu().numpy()
        if self.dtype == "uint8":
            return np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)
        return a.astype(_DTYPES[self.dtype])

    def observe(self, state: FitState) -> None:
        self.steps.append(state.step)
        frame = self._pack(state.output)
        if self.path is not None:
            self.path.mkdir(parents=True, exist_ok=True)
            file = self.path / f"frame_{state.step:08d}.npy"
            np.save(file, frame)
            self._files.append(file)
        else:
            self._frames.append(frame)
        if self.with_ema and state.ema is not None:
            self._ema.append(self._pack(state.ema))

    def frames(self) -> np.ndarray:
        """All snapshots as a float32 array (T, C, H, W) in [0, 1]."""
        raw = [np.load(f) for f in self._files] if self.path is not None else self._frames
        if not raw:
            return np.zeros((0,), np.float32)
        a = np.stack(raw).astype(np.float32)
        return a / 255.0 if self.dtype == "uint8" else a

    def save(self, file: str | Path) -> None:
        """Write ``steps`` and ``frames`` (and ``ema``) to a compressed ``.npz``."""
        raw = [np.load(f) for f in self._files] if self.path is not None else self._frames
        arrays = {"steps": np.asarray(self.steps), "frames": np.stack(raw) if raw else np.zeros(0)}
        if self._ema:
            arrays["ema"] = np.stack(self._ema)
        np.savez_compressed(file, **arrays)


def trajectory_distance(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> np.ndarray:
    """``d(t) = ||x¹_t − x²_t||²`` for two trajectories (T, C, H, W) of equal length."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"trajectories differ in shape: {a.shape} vs {b.shape}")
    return ((a - b) ** 2).reshape(a.shape[0], -1).sum(axis=1)
