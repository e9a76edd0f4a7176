"""Claim 1 — DIP learns low frequencies first.

Fit each clean image (no noise) and record two per-band relative errors every few steps:

* the study's quantity, the error of the Fourier *magnitudes* (the study's helpers sum
  ``|FFT|`` over rings; :func:`dipscope.spectral.band_magnitude_error`),
  ``m_k(t) = Σ_{B_k}(|F x_t| − |F x0|)² / Σ_{B_k}|F x0|²``;
* the error of the complex coefficients, which also counts phase
  (:func:`dipscope.spectral.band_relative_error`),
  ``e_k(t) = Σ_{B_k}|F(x_t − x0)|² / Σ_{B_k}|F x0|²``.

For band ``k`` let ``t_k`` be the first step with the error below ``τ`` (a band that never gets
there ranks last, reported as "not reached"). The summary per image, model and quantity is the
Spearman correlation ρ between the band index and ``t_k`` (average ranks for ties): ρ = 1 means
bands are learned strictly from low to high frequency. The verdict is read from the magnitude
error; the report gives both and says where they disagree. The corner band (r > 0.5) is
reported but not ranked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .. import spectral
from ..callbacks import SpectralObserver
from ..errors import DipscopeError
from ..fit import fit
from ..images import write_image
from ..metrics import psnr
from ..plots import band_heatmap, band_staircase
from ..runs import Task, require_complete, tensor_digest
from ..runs.executors import ExecutorOptions
from ..runs.rundir import write_csv
from .base import Experiment
from .common import describe, fit_check, fmt, markdown_table, model_choice, recoveries_text


@dataclass
class BiasConfig:
    images: Sequence[str]
    models: Sequence[str] = ("dip", "linear-128", "relunet")
    profile: str = "cpu"
    bands: int = 8
    tau: float = 0.1
    factor: int = 4
    resize: str = "study"
    data_dir: str | None = None
    seed: int = 0
    device: str = "auto"
    recover_divergence: bool = False
    precision: str = "auto"
    extra: dict[str, Any] = field(default_factory=dict)
    networks: Mapping[str, Any] = field(default_factory=dict)  # user networks by name, for ``models`` to name


#: The two per-band errors each run records, by name, and their keys in the observer
#: (:class:`~dipscope.callbacks.SpectralObserver`); the first is the study's quantity.
QUANTITIES = {"magnitude": "magnitude/target", "complex": "target"}


def band_times(errors: np.ndarray, steps: Sequence[int], tau: float) -> list[float | None]:
    """``t_k`` for every ring (corner excluded): the first step with ``e_k < τ``, None if never."""
    return spectral.first_crossing(torch.from_numpy(errors[:, :-1]), steps, tau)


def rank_correlation(times: Sequence[float | None]) -> float:
    """Spearman ρ between band index and ``t_k``, "not reached" ranked last (tied)."""
    t = [math.inf if v is None else float(v) for v in times]
    return spectral.spearman_rho(np.arange(len(t), dtype=float), np.array(t))


def _task(name: str, image: torch.Tensor, model: str, cfg: BiasConfig) -> Task:
    spec, config = model_choice(model, cfg.profile, cfg.networks, recover=cfg.recover_divergence)
    from dataclasses import replace

    config = replace(config, seed=cfg.seed, device=cfg.device, precision=cfg.precision, **cfg.extra)

    def work(directory: Path) -> dict[str, Any]:
        observer = SpectralObserver({"target": image}, edges=cfg.bands, tau=cfg.tau, magnitude=True)
        result = fit(spec, image, config, callbacks=[observer], ssim=False)
        require_complete(result)
        observer.save(directory)
        write_image(directory / "final.png", result.final)
        summary: dict[str, Any] = {"image": name, "model": model}
        for quantity, key in QUANTITIES.items():
            errors = observer.table(key)
            times = band_times(errors, observer.steps, cfg.tau)
            suffix = "" if quantity == "complex" else f"_{quantity}"
            band_heatmap(errors, observer.steps, observer.edges.numpy(), directory / f"bias{suffix}.png",
                         f"{name}, {model} ({cfg.profile} profile): {quantity} error per band", cfg.tau)
            write_csv(directory / f"band_times{suffix}.csv",
                      [{"band": k, "t_k": t if t is not None else "not reached"} for k, t in enumerate(times)])
            summary |= {f"t_k{suffix}": times, f"rho{suffix}": rank_correlation(times),
                        f"final_error{suffix}": errors[-1].tolist()}
        return summary | {"final_psnr": psnr(result.final, image), "steps": result.steps_done,
                          "seconds": result.seconds, "recoveries": result.recoveries}

    return Task(f"{model}/{name}", work, {"image": name, "shape": list(image.shape), **describe(spec, config),
                                          "bands": cfg.bands, "tau": cfg.tau, "factor": cfg.factor,
                                          "resize": cfg.resize}, inputs={"image": tensor_digest(image)},
                check=fit_check(name, spec, image, config, cfg.bands))


class BiasExperiment(Experiment):
    """Per-band learning order of every model on every image."""

    def check(self) -> None:
        if self.cfg.bands < 2:
            raise DipscopeError("--bands must be at least 2 to rank bands")

    def tasks(self, inputs: Mapping[str, torch.Tensor]) -> list[Task]:
        return [_task(name, image, model, self.cfg) for model in self.cfg.models for name, image in inputs.items()]

    def report(self, out: Path, inputs: Mapping[str, torch.Tensor], tasks: Sequence[Task],
               summaries: Mapping[str, dict[str, Any]]) -> str:
        cfg = self.cfg
        rows, csv_rows, disagree = [], [], []
        for task in tasks:
            s = summaries[task.key]
            rho_m = s.get("rho_magnitude")
            rows.append([s["model"], s["image"], fmt(rho_m), _times_text(s.get("t_k_magnitude")), fmt(s["rho"]),
                         _times_text(s["t_k"]), f"{s['final_psnr']:.1f}", recoveries_text(s)])
            csv_rows.append({"model": s["model"], "image": s["image"], "rho_magnitude": "" if rho_m is None else rho_m,
                             "rho": s["rho"]}
                            | {f"t_{k}_magnitude": ("" if t is None else t) for k, t in enumerate(s.get("t_k_magnitude") or [])}
                            | {f"t_{k}": ("" if t is None else t) for k, t in enumerate(s["t_k"])}
                            | {"final_psnr": s["final_psnr"], "steps": s["steps"], "seconds": s["seconds"],
                               "recoveries": len(s["recoveries"]) if "recoveries" in s else ""})
            if rho_m is not None and (rho_m >= STAIRCASE) != (s["rho"] >= STAIRCASE):
                disagree.append(f"{s['model']} on {s['image']} (ρ {rho_m:.2f} magnitude, {s['rho']:.2f} complex)")
        write_csv(out / "summary.csv", csv_rows)
        staircases(out, tasks, summaries, cfg)
        per_model = []
        for model in cfg.models:
            for label, key in (("magnitude (the study's)", "rho_magnitude"), ("complex", "rho")):
                rhos = [s[key] for s in summaries.values() if s["model"] == model and s.get(key) is not None
                        and not math.isnan(s[key])]
                if rhos:
                    per_model.append([model, label, f"{np.mean(rhos):.2f}", f"{np.min(rhos):.2f}",
                                      f"{sum(r >= STAIRCASE for r in rhos)}/{len(rhos)}"])
        both = sum(summaries[t.key].get("rho_magnitude") is not None for t in tasks)
        if not both:
            verdict = "Only the complex error was recorded: these runs were made before the magnitude error was.\n"
        elif disagree:
            verdict = "The quantities disagree (ρ ≥ 0.9 under one only) on: " + "; ".join(disagree) + ".\n"
        else:
            verdict = f"The two quantities agree on all {both} runs that recorded both (ρ ≥ 0.9 under both or neither).\n"
        return (f"# Bias experiment: per-band learning order ({cfg.profile} profile)\n\n"
                f"τ = {cfg.tau}, {cfg.bands} rings of equal width on r ≤ 0.5; t_k = first step with the band's "
                f"error below τ ('–' = not reached, ranked last); ρ = Spearman(band index, t_k). Magnitude: the "
                f"relative error of the Fourier magnitudes (the study's quantity, which gives the verdict); complex: "
                f"of the complex coefficients (phase counted).\n\n"
                + markdown_table(["model", "image", "ρ magnitude", "t_k magnitude", "ρ complex", "t_k complex",
                                  "final PSNR (dB)", "recoveries"], rows)
                + "\n" + markdown_table(["model", "quantity", "mean ρ", "min ρ", f"images with ρ ≥ {STAIRCASE}"], per_model)
                + "\n" + verdict)


def staircases(out: Path, tasks: Sequence[Task], summaries: Mapping[str, dict[str, Any]], cfg: BiasConfig) -> None:
    """``staircase-{image}-{quantity}.png`` per image and per quantity its runs recorded: every
    model's per-ring errors over the fit and the first step below τ per ring
    (:func:`dipscope.plots.band_staircase`)."""
    by_image: dict[str, list[Task]] = {}
    for task in tasks:
        by_image.setdefault(summaries[task.key]["image"], []).append(task)
    for image, image_tasks in by_image.items():
        data = {summaries[t.key]["model"]: np.load(out / t.key / "spectral.npz") for t in image_tasks}
        for quantity, key in QUANTITIES.items():
            if all(f"errors/{key}" in d for d in data.values()):
                edges = next(iter(data.values()))["edges"]
                band_staircase({m: (d[f"errors/{key}"], d["steps"]) for m, d in data.items()}, edges,
                               out / f"staircase-{image}-{quantity}.png",
                               f"{image} ({cfg.profile} profile): {quantity} error per ring", cfg.tau)


def _times_text(times: Sequence[float | None] | None) -> str:
    return "–" if times is None else " ".join("–" if t is None else str(int(t)) for t in times)


#: ρ at or above which a run counts as a staircase (bands learned from low to high frequency).
STAIRCASE = 0.9


def run(cfg: BiasConfig, out: Path, force: bool = False, executor: ExecutorOptions | None = None) -> str:
    """Run (or resume) the experiment; write ``summary.md``/``summary.csv``; return the Markdown."""
    return BiasExperiment(cfg).run(out, force, executor)
