"""Every reusable observer of the fit loop (:class:`dipscope.fit.Callback` subclasses).

* :class:`ProgressBar` — a terminal progress bar with the loss and PSNR;
* :class:`PSNRTracker` — the PSNR of the output (and EMA) against a clean image, and the best
  snapshot (the study's oracle measure);
* :class:`SpectralObserver` — the per-band relative error ``e_k(t)`` against references;
* :class:`BandFitObserver` — how much of a noise is reproduced in chosen frequency bands;
* :class:`HFObserver` — the high-frequency power fraction of the output;
* :class:`SnapshotSaver` — the output at chosen steps; :class:`TrajectoryRecorder` — at every
  observation, compactly.

Each keeps only what it measures; the measures themselves are pure functions of
:mod:`dipscope.spectral` and :mod:`dipscope.metrics`.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Literal, Mapping, Sequence

import numpy as np
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from . import spectral
from .files import write_csv
from .fit import Callback, FitState
from .images import to_uint8
from .metrics import psnr


class ProgressBar(Callback):
    """A rich progress bar showing the loss and, when known, the PSNR; its length is the fit's
    maximum number of steps, read from the loop at the start. Runs fitted at once may share
    one bar: it shows the latest observation of any of them and stops when the last one ends."""

    def __init__(self, description: str, console: Console | None = None) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=console or Console(stderr=True), transient=False,
        )
        self.task = self.progress.add_task(description, total=None, info="")
        self._lock = threading.Lock()
        self._active = 0

    def on_start(self, state: FitState) -> None:
        with self._lock:
            self._active += 1
            if self._active > 1:
                return
            self.progress.update(self.task, total=state.steps)
            self.progress.console.print(f"fitting {self.progress.tasks[0].description}: at most {state.steps} steps "
                                        "(Ctrl-C or SIGTERM stops it and keeps the outputs reached)")
            self.progress.start()

    def observe(self, state: FitState) -> None:
        info = f"loss {state.loss:.2e}"
        if "psnr" in state.metrics:
            info += f"  PSNR {state.metrics['psnr']:.2f} dB"
        if "psnr_ema" in state.metrics:
            info += f" (EMA {state.metrics['psnr_ema']:.2f})"
        with self._lock:
            self.progress.update(self.task, completed=state.step, info=info)

    def on_end(self, state: FitState) -> None:
        with self._lock:
            self._active -= 1
            self.progress.update(self.task, completed=state.step)
            if self._active == 0:
                self.progress.stop()


class PSNRTracker(Callback):
    """Records the PSNR of the output (and its EMA) against ``clean`` at every observation and
    keeps the best snapshot; ``crop`` ignores a border of that many pixels."""

    def __init__(self, clean: torch.Tensor, crop: int = 0) -> None:
        self.clean = clean
        self.crop = crop
        self.rows: list[dict[str, float]] = []
        self.best: tuple[float, int, torch.Tensor] | None = None

    def observe(self, state: FitState) -> None:
        out = state.output.detach().float().cpu()
        value = psnr(out, self.clean, border=self.crop)
        row = {"step": state.step, "loss": state.loss, "psnr": value}
        if state.ema is not None:
            row["psnr_ema"] = psnr(state.ema.detach().float().cpu(), self.clean, border=self.crop)
        self.rows.append(row)
        if self.best is None or value > self.best[0]:
            self.best = (value, state.step, out.clone())


class SpectralObserver(Callback):
    """Per-band relative error ``e_k(t)`` of the output against one or more references.

    For each named reference ``x_ref`` (e.g. ``{"clean": x0, "target": y}``) it records, at
    every ``every``-th observation of the fit,

    .. math:: e_k(t) = \\frac{\\sum_{f∈B_k} |\\mathcal F(x_t − x_{ref})(f)|^2}{\\sum_{f∈B_k} |\\mathcal F x_{ref}(f)|^2}

    averaged over channels (``K`` rings + the corner band, see :mod:`dipscope.spectral`), and the
    low-error radius ``r(t)`` for threshold ``tau``. With ``magnitude=True`` it also records the
    phase-free error of the Fourier magnitudes (:func:`dipscope.spectral.band_magnitude_error`)
    under the key ``magnitude/<name>``. Only these numbers are kept, not the trajectory.
    :meth:`save` writes ``spectral.npz`` and a long-format ``spectral.csv``.
    """

    def __init__(self, references: Mapping[str, torch.Tensor], edges: spectral.EdgesLike = None,
                 tau: float = 0.1, every: int = 1, with_ema: bool = False, magnitude: bool = False) -> None:
        self.references = {k: v.detach() for k, v in references.items()}
        self.edges = spectral.resolve_edges(edges)
        self.tau = tau
        self.every = every
        self.with_ema = with_ema
        self.magnitude = magnitude
        self.steps: list[int] = []
        self.errors: dict[str, list[torch.Tensor]] = {k: [] for k in self._keys()}

    def _keys(self) -> list[str]:
        keys = list(self.references)
        if self.magnitude:
            keys += [f"magnitude/{k}" for k in self.references]
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
                if self.magnitude:
                    m = spectral.band_magnitude_error(out, ref.to(out.device), self.edges)
                    self.errors[f"{prefix}magnitude/{name}"].append(m.cpu())

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


class BandFitObserver(Callback):
    """Per observation and band ``B``: ``ρ_B = Σ_B|F(x_t − y)|² / Σ_B|F n|²`` (noise not yet
    reproduced), and the relative errors against the clean image and the target."""

    def __init__(self, clean: torch.Tensor, target: torch.Tensor, bands: dict[str, torch.Tensor]) -> None:
        self.clean = clean.double()
        self.target = target.double()
        self.bands = {k: m.to(torch.float64) for k, m in bands.items()}
        p_noise = spectral.power_spectrum(self.target - self.clean).sum(dim=0)
        p_clean = spectral.power_spectrum(self.clean).sum(dim=0)
        p_target = spectral.power_spectrum(self.target).sum(dim=0)
        self.energy = {k: {"noise": float((p_noise * m).sum()), "clean": float((p_clean * m).sum()),
                           "target": float((p_target * m).sum())} for k, m in self.bands.items()}
        self.rows: list[dict[str, float]] = []

    def observe(self, state: FitState) -> None:
        out = state.output.detach().double().cpu()
        res = spectral.power_spectrum(out - self.target).sum(dim=0)
        err = spectral.power_spectrum(out - self.clean).sum(dim=0)
        row: dict[str, float] = {"step": state.step}
        for k, m in self.bands.items():
            e = self.energy[k]
            r_res, r_err = float((res * m).sum()), float((err * m).sum())
            # a band the noise does not reach (e.g. the texture band for low-frequency noise): undefined
            noisy_band = e["noise"] > 1e-9 * max(e["target"], 1e-300)
            row[f"{k}/noise_left"] = r_res / e["noise"] if noisy_band else math.nan
            row[f"{k}/error_clean"] = r_err / e["clean"] if e["clean"] > 0 else math.nan
            row[f"{k}/error_target"] = r_res / e["target"] if e["target"] > 0 else math.nan
        self.rows.append(row)

    def first_below(self, column: str, tau: float) -> int | None:
        return next((int(r["step"]) for r in self.rows if r[column] < tau), None)


class HFObserver(Callback):
    """The output's high-frequency power fraction :func:`dipscope.spectral.hf_fraction` at every observation."""

    def __init__(self, cutoff: float) -> None:
        self.cutoff = cutoff
        self.rows: list[dict[str, float]] = []

    def observe(self, state: FitState) -> None:
        self.rows.append({"step": state.step, "hf_fraction": spectral.hf_fraction(state.output, self.cutoff)})


class SnapshotSaver(Callback):
    """Keeps the output (C, H, W, on the CPU) at the given steps (multiples of the observation
    interval; others are never seen)."""

    def __init__(self, steps: Sequence[int]) -> None:
        self.wanted = set(int(s) for s in steps)
        self.images: dict[int, np.ndarray] = {}

    def observe(self, state: FitState) -> None:
        if state.step in self.wanted:
            self.images[state.step] = state.output.detach().float().cpu().numpy().copy()

    def on_end(self, state: FitState) -> None:
        if state.step in self.wanted and state.step not in self.images:
            self.images[state.step] = state.output.detach().float().cpu().numpy().copy()

    def save(self, path: Path) -> None:
        steps = sorted(self.images)
        np.savez_compressed(path, steps=np.array(steps, dtype=np.int64),
                            images=np.stack([self.images[s] for s in steps]) if steps else np.zeros((0,)))


def load_snapshots(directory: Path) -> dict[int, np.ndarray]:
    path = directory / "snapshots.npz"
    if not path.is_file():
        return {}
    data = np.load(path)
    return {int(s): im for s, im in zip(data["steps"], data["images"])}


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
        if self.dtype == "uint8":  # as a PNG would hold it, back in (C, H, W)
            q = to_uint8(x)
            return q[None] if q.ndim == 2 else np.moveaxis(q, -1, 0).copy()
        return x.detach().float().cpu().numpy().astype(_DTYPES[self.dtype])

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
