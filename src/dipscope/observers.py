"""Observers that plug into the fit loop and record spectral measurements every k steps."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from . import spectral
from .fit import Callback, FitState
from .runs.rundir import write_csv


class SpectralObserver(Callback):
    """Per-band relative error ``e_k(t)`` of the output against one or more references.

    For each named reference ``x_ref`` (e.g. ``{"clean": x0, "target": y}``) it records, at
    every ``every``-th observation of the fit,

    .. math:: e_k(t) = \\frac{\\sum_{f∈B_k} |\\mathcal F(x_t − x_{ref})(f)|^2}{\\sum_{f∈B_k} |\\mathcal F x_{ref}(f)|^2}

    averaged over channels (``K`` rings + the corner band, see :mod:`dipscope.spectral`), and the
    low-error radius ``r(t)`` for threshold ``tau``. Only these numbers are kept, not the
    trajectory. :meth:`save` writes ``spectral.npz`` and a long-format ``spectral.csv``.
    """

    def __init__(self, references: Mapping[str, torch.Tensor], edges: spectral.EdgesLike = None,
                 tau: float = 0.1, every: int = 1, with_ema: bool = False) -> None:
        self.references = {k: v.detach() for k, v in references.items()}
        self.edges = spectral._resolve_edges(edges)
        self.tau = tau
        self.every = every
        self.with_ema = with_ema
        self.steps: list[int] = []
        self.errors: dict[str, list[torch.Tensor]] = {k: [] for k in self._keys()}

    def _keys(self) -> list[str]:
        keys = list(self.references)
        return keys + [f"ema/{k}" for k in keys] if self.with_ema else keys

    def observe(self, state: FitState) -> None:
        self.steps.append(state.step)
        outputs = {"": state.output}
        if self.with_ema and state.ema is not None:
            outputs["ema/"] = state.ema
        for prefix, out in outputs.items():
            for name, ref in self.references.items():
                e = spectral.band_relative_error(out, ref.to(out.device), self.edges)
                self.errors[prefix + name].append(e.cpu())

    def table(self, reference: str) -> np.ndarray:
        """``e_k(t)`` as an array (T, K + 1); the last column is the corner band."""
        rows = self.errors[reference]
        return torch.stack(rows).numpy() if rows else np.zeros((0, len(self.edges)))

    def radius(self, reference: str) -> np.ndarray:
        """Low-error radius ``r(t)`` (cycles/pixel) against ``reference``."""
        t = self.table(reference)
        return spectral.low_error_radius(torch.from_numpy(t), self.edges, self.tau).reshape(-1).numpy() if len(t) else t

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        arrays: dict[str, np.ndarray] = {"steps": np.asarray(self.steps), "edges": self.edges.numpy(),
                                         "tau": np.asarray(self.tau)}
        rows = []
        for key in self.errors:
            table = self.table(key)
            arrays[f"errors/{key}"] = table
            arrays[f"radius/{key}"] = self.radius(key)
            for i, step in enumerate(self.steps[:len(table)]):
                for k, value in enumerate(table[i]):
                    band = "corner" if k == table.shape[1] - 1 else str(k)
                    rows.append({"step": step, "reference": key, "band": band, "error": float(value)})
        np.savez_compressed(directory / "spectral.npz", **arrays)
        write_csv(directory / "spectral.csv", rows)
