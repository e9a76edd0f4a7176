"""Claim 2 — two DIP runs from different seeds "converge twice".

Fit the same image from two seeds and record ``d(t) = ||x¹_t − x²_t||²`` (and its split over
frequency bands). After a centred moving median over ``smooth`` snapshots
(:func:`smooth_median`), the *first meeting point* is the first local minimum of ``d`` that ``d``
then clearly rises from (:func:`convergence_points`); the *peak* is the maximum after it; the
*final approach* is the minimum after the peak. The study's claims, measured here: the first meeting point is a
low-frequency version of the image, and the more high-frequency pattern the image holds, the
higher the peak after it.

Inputs are image files, ``set:triangle`` (the study's images, from a local copy) or
``pattern:F1,F2,…`` (our generator, :func:`dipscope.degrade.pattern_image`, side fractions
F). Images are never downsampled: their fine lines sit at the Nyquist frequency.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .. import spectral
from ..callbacks import TrajectoryRecorder
from ..fit import fit_runs
from ..images import write_image
from ..metrics import trajectory_distance
from ..plots import curves
from ..runs import Task, require_complete
from ..runs.executors import ExecutorOptions
from ..runs.rundir import write_csv
from .base import Experiment
from .common import describe, fmt, load_inputs, markdown_table, model_choice, recoveries_text


@dataclass
class TrajectoryConfig:
    images: Sequence[str]
    model: str = "dip"
    profile: str = "cpu"
    runs: int = 2
    seed: int = 0
    smooth: int = 5
    bands: int = 8
    channels: int | None = None
    steps: int | None = None
    pattern_size: int | None = None
    data_dir: str | None = None
    device: str = "auto"
    recover_divergence: bool = False
    precision: str = "auto"
    networks: Mapping[str, Any] = field(default_factory=dict)  # user networks by name, for ``model`` to name

    @property
    def size(self) -> int:
        """Side of generated pattern images: 256 as the study's, 64 for the smoke profile."""
        return self.pattern_size or (64 if self.profile == "smoke" else 256)


def common_steps(first: TrajectoryRecorder, second: TrajectoryRecorder) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two recorded trajectories at the steps both hold, and those steps.

    A run that diverges at an observation step is reset to its last good weights and not
    observed there (:func:`dipscope.fit.fit`), so two runs can miss different steps; comparing
    them frame by frame would then pair different steps."""
    at_a = {t: i for i, t in enumerate(first.steps)}
    at_b = {t: i for i, t in enumerate(second.steps)}
    shared = sorted(at_a.keys() & at_b.keys())
    return (first.frames()[[at_a[t] for t in shared]], second.frames()[[at_b[t] for t in shared]],
            np.asarray(shared, dtype=int))


def smooth_median(d: np.ndarray, window: int) -> np.ndarray:
    """Centred moving median over ``window`` snapshots.

    Before the first snapshot the window sees ``d[0]`` repeated (before any step, the two runs
    are where they started); near the last it holds only the snapshots there are (the future is
    unknown: repeating the last value would let a spike in the last snapshot become the median).
    """
    d = np.asarray(d, dtype=float)
    if window <= 1:
        return d
    half = window // 2
    padded = np.concatenate([np.full(half, d[0]), d])
    return np.array([np.median(padded[i:i + window]) for i in range(len(d))])


#: How far ``d`` must climb above a minimum, relative to the minimum, for it to count as the
#: first meeting point (0.25: to 1.25 times the minimum).
MIN_RISE = 0.25


def convergence_points(d: np.ndarray, min_rise: float = MIN_RISE) -> dict[str, int | None]:
    """Indices of the first meeting point, the peak after it and the minimum after that peak.

    The first meeting point is the first local minimum ``i`` — ``d`` falls into it and, after a
    plateau at ``d[i]`` if any, rises — from which ``d`` climbs to at least
    ``(1 + min_rise) · d[i]`` before it falls below ``d[i]`` again. Shallower dips are the
    jitter of the first Adam steps or of the median filter, not a meeting and parting of the two
    runs; a plateau followed by a further fall is no minimum at all. The peak is the maximum of
    ``d`` after the first meeting point; the final approach is the minimum after the peak (None
    while ``d`` is still rising at the last step). All three are None where ``d`` only falls (up
    to such dips): within the steps run, the runs meet once.
    """
    d = np.asarray(d, dtype=float)
    n = len(d)
    i = 1
    while i < n - 1:
        if d[i] < d[i - 1]:
            j = i
            while j + 1 < n and d[j + 1] == d[i]:  # the plateau at d[i]
                j += 1
            if j + 1 < n and d[j + 1] > d[i]:
                k = j + 1
                while k < n and d[k] >= d[i]:
                    k += 1
                if d[j + 1:k].max() >= (1.0 + min_rise) * d[i]:
                    peak = i + int(np.argmax(d[i:]))
                    final = peak + int(np.argmin(d[peak:])) if peak < n - 1 else None
                    return {"first_min": i, "peak": peak, "final_min": final}
            i = j + 1
        else:
            i += 1
    return {"first_min": None, "peak": None, "final_min": None}


def _settings(cfg: TrajectoryConfig):
    spec, config = model_choice(cfg.model, cfg.profile, cfg.networks, recover=cfg.recover_divergence)
    if cfg.profile == "cpu" and cfg.model == "dip":
        spec = replace(spec, channels_down=(32,) * 5, channels_up=(32,) * 5)
    if cfg.channels is not None and cfg.model == "dip":
        n = spec.levels
        spec = replace(spec, channels_down=(cfg.channels,) * n, channels_up=(cfg.channels,) * n)
    if cfg.steps is not None:
        config = replace(config, steps=cfg.steps)
    return spec, replace(config, device=cfg.device, precision=cfg.precision)


def _task(name: str, image: torch.Tensor, cfg: TrajectoryConfig) -> Task:
    spec, config = _settings(cfg)
    seeds = [cfg.seed + i for i in range(cfg.runs)]

    def work(directory: Path) -> dict[str, Any]:
        recorders = [TrajectoryRecorder(every=1, dtype="float16") for _ in seeds]
        results = fit_runs(spec, image, config, seeds=seeds, callbacks=[[r] for r in recorders], ssim=False)
        require_complete(*results)
        a, b, steps = common_steps(recorders[0], recorders[1])
        d = trajectory_distance(a, b)
        per_band = (spectral.band_energy(torch.from_numpy(a - b), cfg.bands).sum(dim=1)).numpy()
        ds = smooth_median(d, cfg.smooth)
        points = convergence_points(ds)
        rows = [{"step": int(s), "d": float(v), "d_smoothed": float(w),
                 **{f"band_{k}": float(e) for k, e in enumerate(per_band[i])}}
                for i, (s, v, w) in enumerate(zip(steps, d, ds))]
        write_csv(directory / "distance.csv", rows)
        summary: dict[str, Any] = {"image": name, "steps": steps.tolist(), "d_smoothed": ds.tolist(),
                                   "recoveries": [r.recoveries for r in results[:2]]}
        for key, idx in points.items():
            summary[f"{key}_step"] = None if idx is None else int(steps[idx])
            summary[f"{key}_d"] = None if idx is None else float(ds[idx])
        if points["first_min"] is not None:
            i = points["first_min"]
            write_image(directory / "first_meeting_run1.png", torch.from_numpy(a[i]))
            write_image(directory / "first_meeting_run2.png", torch.from_numpy(b[i]))
            freq, p_target = spectral.radial_power_spectrum(image)
            _, p1 = spectral.radial_power_spectrum(torch.from_numpy(a[i]))
            _, p2 = spectral.radial_power_spectrum(torch.from_numpy(b[i]))
            curves(freq.numpy(), {"target": p_target.numpy(), f"run 1 at step {steps[i]}": p1.numpy(),
                                  f"run 2 at step {steps[i]}": p2.numpy()},
                   directory / "first_meeting_spectra.png", f"{name}: spectra at the first meeting point",
                   "radial frequency (cycles/pixel)", "mean power", logy=True)
            high = freq.numpy() > 0.25
            summary["first_meeting_high_power_ratio"] = float(
                (p1.numpy()[high].sum() + p2.numpy()[high].sum()) / (2 * p_target.numpy()[high].sum()))
        if points["peak"] is not None and points["first_min"] is not None:
            summary["rise"] = float(ds[points["peak"]] - ds[points["first_min"]])
            summary["rise_ratio"] = float(ds[points["peak"]] / max(ds[points["first_min"]], 1e-12))
        else:
            summary["rise"], summary["rise_ratio"] = 0.0, 1.0
        write_image(directory / "final_run1.png", torch.from_numpy(a[-1]))
        return summary

    return Task(f"{cfg.model}/{name}", work, {"image": name, "seeds": seeds, **describe(spec, config),
                                              "smooth": cfg.smooth, "bands": cfg.bands})


def second_convergence(summary: Mapping[str, Any]) -> str:
    """``yes`` where ``d`` falls after its peak below the first meeting's distance, ``no (d final / d first)``
    where the window ends above it, ``–`` where there was no first meeting."""
    first, final = summary.get("first_min_d"), summary.get("final_min_d")
    if first is None or final is None:
        return "–"
    return "yes" if final < first else f"no ({final / first:.2f}×)"


def pattern_fraction(name: str) -> float | None:
    """The pattern fraction encoded in an input's name (``triangle-0.5``, ``pattern-0.50``)."""
    try:
        return float(name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return None


class TrajectoryExperiment(Experiment):
    """Two runs from different seeds on every image, and where they meet."""

    def inputs(self) -> dict[str, torch.Tensor]:
        return load_inputs(self.cfg.images, self.cfg.data_dir, pattern_size=self.cfg.size)

    def tasks(self, inputs: Mapping[str, torch.Tensor]) -> list[Task]:
        return [_task(name, image, self.cfg) for name, image in inputs.items()]

    def report(self, out: Path, inputs: Mapping[str, torch.Tensor], tasks: Sequence[Task],
               summaries: Mapping[str, dict[str, Any]]) -> str:
        cfg = self.cfg
        rows, csv_rows, xs, ys, marks = [], [], {}, {}, {}
        for task in tasks:
            s = summaries[task.key]
            label = s["image"]
            xs[label], ys[label] = s["steps"], s["d_smoothed"]
            marks[label] = [s[k] for k in ("first_min_step", "peak_step") if s.get(k) is not None]
            rows.append([label, s["first_min_step"], fmt(s["first_min_d"], ".4g"), s["peak_step"], fmt(s["peak_d"], ".4g"),
                         fmt(s["rise"], ".4g"), fmt(s["rise_ratio"], ".4g"), s["final_min_step"],
                         fmt(s.get("final_min_d"), ".4g"), second_convergence(s),
                         fmt(s.get("first_meeting_high_power_ratio"), ".4g"), recoveries_text(s)])
            csv_rows.append({k: v for k, v in s.items() if k not in ("steps", "d_smoothed")})
        write_csv(out / "summary.csv", csv_rows)
        curves(xs, ys, out / "distance.png", f"d(t) = ||x¹_t − x²_t||² ({cfg.model}, {cfg.profile} profile, "
               f"median over {cfg.smooth})", "step", "squared distance between the two runs", logy=True, marks=marks)
        fractions = [(pattern_fraction(s["image"]), s["rise"], s["rise_ratio"] - 1.0) for s in summaries.values()]
        fractions = [row for row in fractions if row[0] is not None]
        if len(fractions) > 2:
            f = [row[0] for row in fractions]
            rho = spectral.spearman_rho(f, [row[1] for row in fractions])
            rho_rel = spectral.spearman_rho(f, [row[2] for row in fractions])
            correlation = (f"\nSpearman ρ(pattern fraction, rise) = {rho:.2f} for the absolute rise and "
                           f"{rho_rel:.2f} for the rise relative to the first minimum (peak/min − 1), over "
                           f"{len(fractions)} images.\n")
        else:
            correlation = (f"\nSpearman ρ(pattern fraction, rise): needs 3 or more pattern images "
                           f"({len(fractions)} here).\n")
        text = (f"# Trajectory experiment: two runs, {cfg.model}, {cfg.profile} profile\n\n"
                f"Seeds {', '.join(map(str, [cfg.seed + i for i in range(cfg.runs)]))}; d(t) between the first two, "
                "smoothed by a centred moving median; rise = d(peak) − d(first minimum); converged twice = the "
                "minimum after the peak is below the first minimum (d falls back past the first meeting within the "
                "steps run); high-power ratio = power above 0.25 cycles/pixel of the two outputs at the first minimum "
                "over the target's; recoveries = weight resets after a loss jump, per run.\n\n"
                + markdown_table(["image", "first min step", "d there", "peak step", "d peak", "rise", "peak/min",
                                  "final min step", "d there", "converged twice", "high-power ratio at first min",
                                  "recoveries"], rows)
                + correlation)
        return text


def run(cfg: TrajectoryConfig, out: Path, force: bool = False,
        executor: ExecutorOptions | None = None) -> str:
    """Run (or resume) the experiment; write ``summary.md``, ``summary.csv`` and ``distance.png``."""
    return TrajectoryExperiment(cfg).run(out, force, executor)
