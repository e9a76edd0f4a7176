"""Claim 3 — convolutions cause the bias: the architecture-comparison denoising table.

For every image, model and run the experiment fits the noisy image and records the PSNR of
the output against the clean image at every snapshot. A cell of the table is the *best
snapshot* PSNR (the study's measure, an oracle: it uses the clean image to pick the step),
as mean ± std over runs (ddof = 1), beside the published value and the difference.

The degradation follows the study's data script (:func:`dipscope.physics.denoising_pair`):
shrink ×``factor`` (``study``: plain bilinear as OpenCV's ``INTER_LINEAR``; ``antialias``: a
proper resize; ``study-distorted``: the script's swapped width/height, which distorted the
Kodak images of the published cells), add N(0, σ²) noise on the 0–255 scale in [0, 1], clip,
and round both clean and noisy images to 8 bits. PSNR uses data range 1 against the 8-bit
clean image at the same size, optionally ignoring a border of ``crop`` pixels.

Each (image, model, run) is one run directory ``MODEL/IMAGE/run-R``; finished ones are
skipped on re-run, and the table is rewritten after every finished run, so a killed sweep
resumes and its partial table is always on disk.

(At ~360 lines this module is over the project's ~350: it keeps the published cells, the
table, its settings text and its figures beside the grid, because one table needs them all.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..callbacks import PSNRTracker
from ..errors import DipscopeError
from ..fit import FitConfig, fit
from ..fit.setup import check_inputs
from ..images import write_image
from ..metrics import psnr
from ..physics import RESIZES, denoising_pair
from ..plots import bars, curves
from ..runs import (Task, claim_sweep_folder, finished_summary, plan_tasks, require_complete, run_tasks,
                   tensor_digest)
from ..runs import ExecutorOptions, TasksFailed
from ..files import write_csv, write_text
from ..runtime import PRECISIONS, check_device_name, check_flush_denormals, device_in_words, resolve_device
from .base import Experiment
from .common import describe, load_inputs, markdown_table, model_choice

MODELS = ("dip", "linear-128", "linear-2048", "relunet")

# The study's table (best PSNR in dB, mean ± std over runs; σ = 25).
PUBLISHED: dict[str, dict[str, tuple[float, float]]] = {
    "baboon": {"dip": (24.73, 0.04), "linear-128": (20.48, 0.06), "linear-2048": (20.35, 0.43), "relunet": (24.56, 0.02)},
    "f16": {"dip": (27.00, 0.15), "linear-128": (20.72, 0.12), "linear-2048": (18.60, 1.85), "relunet": (26.67, 0.14)},
    "house": {"dip": (26.89, 0.10), "linear-128": (20.69, 0.04), "linear-2048": (18.89, 1.45), "relunet": (27.21, 0.22)},
    "kodim01": {"dip": (25.90, 0.08), "linear-128": (20.35, 0.07), "linear-2048": (20.54, 0.07), "relunet": (25.95, 0.07)},
    "kodim02": {"dip": (29.20, 0.13), "linear-128": (20.74, 0.01), "linear-2048": (20.59, 0.19), "relunet": (29.99, 0.09)},
    "kodim03": {"dip": (29.26, 0.13), "linear-128": (20.47, 0.04), "linear-2048": (18.13, 0.13), "relunet": (29.62, 0.16)},
    "kodim12": {"dip": (29.61, 0.06), "linear-128": (20.36, 0.03), "linear-2048": (17.74, 0.04), "relunet": (29.63, 0.16)},
    "lena": {"dip": (27.49, 0.06), "linear-128": (20.48, 0.01), "linear-2048": (18.67, 0.72), "relunet": (27.78, 0.16)},
    "peppers": {"dip": (27.12, 0.11), "linear-128": (20.60, 0.01), "linear-2048": (18.98, 1.31), "relunet": (26.82, 0.16)},
}
PUBLISHED_SIGMA = 25.0


@dataclass
class TableConfig:
    """Settings of the denoising table; each model's fit settings come from ``profile``
    (``paper``: the study's scripts) and may be overridden per model with ``steps``."""

    images: Sequence[str] = ("set:cbm3d9",)
    models: Sequence[str] = MODELS
    runs: int = 2
    factor: int = 4
    sigma: float = 25.0
    resize: str = "study"
    quantize: bool = True
    crop: int = 0
    profile: str = "paper"
    steps: Mapping[str, int] = field(default_factory=dict)
    model_runs: Mapping[str, int] = field(default_factory=dict)  # runs of a model other than ``runs``
    noise_seed: int = 0
    data_dir: str | None = None
    device: str = "auto"
    precision: str = "auto"
    #: finished runs made in these precisions count as done (each cell says which made it):
    #: only where their parity with ``precision`` was measured (``benchmarks/table_parity.py``)
    accept_precisions: Sequence[str] = ()
    #: new runs flush subnormal floats to zero on a CPU (FitConfig.flush_denormals); finished runs
    #: made without it count as done (each cell says which runs flushed)
    flush_denormals: bool = False
    #: the fit loop's divergence recovery (off in every profile, as in the study's scripts)
    recover_divergence: bool = False
    baselines: bool = True  # add the best Gaussian low-pass (oracle width) and, if installed, CBM3D

    def validate(self) -> None:
        if self.runs < 1:
            raise DipscopeError("--runs must be at least 1")
        if self.sigma < 0:
            raise DipscopeError("--sigma must be ≥ 0")
        if self.crop < 0:
            raise DipscopeError("--crop must be ≥ 0")
        if not self.models:
            raise DipscopeError("no models given")
        if self.resize not in RESIZES:
            raise DipscopeError(f"unknown resize {self.resize!r}; choose one of {', '.join(RESIZES)}")
        if self.factor < 1:
            raise DipscopeError("--factor must be ≥ 1")
        check_device_name(self.device)  # its availability is checked where the runs are made
        for model in self.models:
            model_choice(model, self.profile)  # an unknown model or profile fails here, before any work
        for name in self.accept_precisions:
            if name not in PRECISIONS or name == "auto":
                raise DipscopeError(f"unknown precision {name!r} in --accept-precision; choose fp32, bf16 or fp64")
        for flag, overrides in (("--steps", self.steps), ("--runs", self.model_runs)):
            for model, number in overrides.items():
                if model not in self.models:
                    raise DipscopeError(f"{flag} names {model!r}, which is not among the models {', '.join(self.models)}")
                if number < 1:
                    raise DipscopeError(f"{flag} for {model} must be ≥ 1")

    def runs_of(self, model: str) -> int:
        """The runs (network seeds 0 … R−1) of ``model``'s cells."""
        return self.model_runs.get(model, self.runs)


def _task(name: str, clean: torch.Tensor, noisy: torch.Tensor, model: str, run: int, cfg: TableConfig) -> Task:
    spec, config = model_choice(model, cfg.profile, recover=cfg.recover_divergence)
    config = replace(config, seed=run, device=cfg.device, precision=cfg.precision, flush_denormals=cfg.flush_denormals)
    if model in cfg.steps:
        config = replace(config, steps=cfg.steps[model])

    def work(directory: Path) -> dict[str, Any]:
        tracker = PSNRTracker(clean, cfg.crop)
        result = fit(spec, noisy, config, callbacks=[tracker], ssim=False)
        require_complete(result)
        assert tracker.best is not None
        best_psnr, best_step, best = tracker.best
        write_image(directory / "best.png", best)
        write_image(directory / "final.png", result.final)
        write_csv(directory / "curve.csv", tracker.rows)
        last = tracker.rows[-1]
        return {"image": name, "model": model, "run": run, "seed": run, "noise_seed": cfg.noise_seed,
                "best_psnr": best_psnr, "best_step": best_step, "final_psnr": last["psnr"],
                "ema_psnr": last.get("psnr_ema"), "noisy_psnr": psnr(noisy, clean, border=cfg.crop),
                "steps": result.steps_done, "seconds": result.seconds, "n_parameters": result.n_parameters,
                "precision": result.precision, "flush_denormals": config.flush_denormals,
                "device": result.device, "recoveries": result.recoveries}

    def settings(config: FitConfig) -> dict[str, Any]:
        return {"image": name, "shape": list(clean.shape), "run": run, **describe(spec, config),
                "factor": cfg.factor, "sigma": cfg.sigma, "resize": cfg.resize, "quantize": cfg.quantize,
                "noise_seed": cfg.noise_seed, "crop": cfg.crop}

    others = [p for p in cfg.accept_precisions if p != cfg.precision]
    accepted = [replace(config, precision=p) for p in others]
    if config.flush_denormals:  # exact arithmetic is the reference: its finished runs count as done
        accepted += [replace(c, flush_denormals=False) for c in [config, *accepted]]
    return Task(f"{model}/{name}/run-{run}", work, settings(config),
                also_accept=tuple(settings(c) for c in accepted), inputs={"image": tensor_digest(clean)})


def prepare(cfg: TableConfig) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The (clean, noisy) pair of every input image, degraded as configured."""
    originals = load_inputs(cfg.images, cfg.data_dir, factor=1)
    pairs = {}
    for name, image in originals.items():
        clean, noisy = denoising_pair(image, cfg.factor, cfg.sigma / 255.0, resize=cfg.resize, seed=cfg.noise_seed,
                                      quantize=cfg.quantize)
        if min(clean.shape[-2:]) <= 2 * cfg.crop:
            raise DipscopeError(f"--crop {cfg.crop} leaves nothing of {name} ({clean.shape[-2]}×{clean.shape[-1]})")
        pairs[name] = (clean, noisy)
    return pairs


def tasks_of(cfg: TableConfig, pairs: Mapping[str, tuple[torch.Tensor, torch.Tensor]]) -> list[Task]:
    """Every (model, image, run) task, runs innermost so each cell fills up before the next."""
    return [_task(name, clean, noisy, model, r, cfg)
            for model in cfg.models for name, (clean, noisy) in pairs.items() for r in range(cfg.runs_of(model))]


class DenoiseTable(Experiment):
    """The denoising table: a (model, image, run) grid of fits of (clean, noisy) pairs.

    Its inputs are pairs, not images, and its :meth:`run` extends the base's in the three ways
    a long sweep needs: it plans (refusing changed settings) before it writes its inputs, it
    rewrites the table after every finished run, and it can rebuild the table from the finished
    runs alone (``report_only``). Its report is ``table.md``/``table.csv``.
    """

    def check(self) -> None:
        self.cfg.validate()

    def inputs(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:  # type: ignore[override]
        return prepare(self.cfg)

    def tasks(self, inputs: Mapping[str, tuple[torch.Tensor, torch.Tensor]]) -> list[Task]:  # type: ignore[override]
        return tasks_of(self.cfg, inputs)

    def report(self, out: Path, inputs: Mapping[str, Any], tasks: Sequence[Task],
               summaries: Mapping[str, dict[str, Any]] | None = None) -> str:
        return write_report(self.cfg, out, tasks, getattr(self, "baselines", None))

    def run(self, out: Path, force: bool = False, executor: ExecutorOptions | None = None,
            report_only: bool = False) -> str:
        self.check()
        if report_only:  # a report reads every finished run, flushed (marked 'ftz') or not
            self.cfg = replace(self.cfg, flush_denormals=True)
        pairs = self.inputs()
        tasks = self.tasks(pairs)
        if report_only:
            self.check_report(out, tasks)
        else:
            self.check_fits(pairs, executor)
        # refuses before anything is written; a report reads finished runs made with any thread count
        plan = plan_tasks(tasks, out, force, executor, same_threads=not report_only)
        self.baselines = baseline_scores(self.cfg, pairs) if self.cfg.baselines else {}
        if report_only:
            return self.report(out, pairs, tasks)
        claim_sweep_folder(out)
        inputs = out / "inputs"
        inputs.mkdir(exist_ok=True)
        for name, (clean, noisy) in pairs.items():
            write_image(inputs / f"{name}-clean.png", clean)
            write_image(inputs / f"{name}-noisy.png", noisy)
        try:
            run_tasks(tasks, out, force=force, executor=executor, plan=plan,
                      on_done=lambda key, summary: self.report(out, pairs, tasks))
        except TasksFailed:
            self.report(out, pairs, tasks)
            raise
        return self.report(out, pairs, tasks)

    def check_fits(self, pairs: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
                   executor: ExecutorOptions | None) -> None:
        """Refuse, before the sweep, a fit that cannot run: a device this machine lacks (when the
        runs are made here) or an image too small for a model's network."""
        if executor is None or executor.name == "local":
            check_flush_denormals(self.cfg.flush_denormals, resolve_device(self.cfg.device), "--flush-denormals")
        for model in self.cfg.models:
            spec, config = model_choice(model, self.cfg.profile)
            for name, (_, noisy) in pairs.items():
                _, h, w = noisy.shape
                if min(h, w) < spec.min_side:
                    raise DipscopeError(f"{name} is {h}×{w} px after the ×{self.cfg.factor} resize but {model} needs "
                                        f"at least {spec.min_side} px per side; give a larger image or a smaller --factor")
                check_inputs(spec, noisy, config)

    def check_report(self, out: Path, tasks: Sequence[Task]) -> None:
        """``--report-only`` needs finished runs of these settings under ``out``: a table built
        from none would replace the table of the runs that are there."""
        if not any(finished_summary(out / task.key, task) is not None for task in tasks):
            raise DipscopeError(f"--report-only: no finished run under {out} was made with these settings "
                                "(give the sweep's own options)")


def run(cfg: TableConfig, out: Path, force: bool = False, report_only: bool = False,
        executor: ExecutorOptions | None = None) -> str:
    """Run (or resume) the sweep; after each finished run rewrite ``table.md``/``table.csv``.

    ``report_only`` runs nothing and builds the table from the finished runs under ``out``;
    ``executor`` chooses who runs the fits (default: here, one after the other). If some runs
    fail after their retries, the table of the others is written before the error is raised.
    """
    return DenoiseTable(cfg).run(out, force, executor, report_only)


def finished(out: Path, tasks: Sequence[Task]) -> list[dict[str, Any]]:
    """Summaries of the tasks whose run directory is finished with the same settings."""
    return [s for s in (finished_summary(out / task.key, task) for task in tasks) if s is not None]


def cell(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample std (ddof = 1; None for a single run)."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), (float(v.std(ddof=1)) if len(v) > 1 else None)


def cell_text(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "–"
    return f"{mean:.2f}" + (f" ± {std:.2f}" if std is not None else "")


def baseline_scores(cfg: TableConfig, pairs: Mapping[str, tuple[torch.Tensor, torch.Tensor]]) -> dict[str, dict[str, float]]:
    """Per image: the best Gaussian low-pass filter's PSNR and width (oracle), and CBM3D's PSNR
    when the ``bm3d`` package is installed (:mod:`dipscope.baselines`)."""
    from ..baselines import best_gaussian_lowpass, bm3d_available, bm3d_denoise

    scores = {}
    for name, (clean, noisy) in pairs.items():
        value, width = best_gaussian_lowpass(noisy, clean, border=cfg.crop)
        scores[name] = {"lowpass": value, "lowpass_width": width}
        if bm3d_available():
            scores[name]["bm3d"] = psnr(bm3d_denoise(noisy, cfg.sigma / 255.0), clean, border=cfg.crop)
    return scores


def write_report(cfg: TableConfig, out: Path, tasks: Sequence[Task],
                 baselines: Mapping[str, Mapping[str, float]] | None = None) -> str:
    """Write ``table.md``, ``table.csv`` and the figures from the finished runs; return the Markdown.

    ``baselines`` (:func:`baseline_scores`) add a column per classical method."""
    baselines = baselines or {}
    methods = [m for m in ("lowpass", "bm3d") if any(m in b for b in baselines.values())]
    rows = finished(out, tasks)
    images = list(dict.fromkeys(t.config["image"] for t in tasks))
    by_cell: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for s in rows:
        by_cell.setdefault((s["image"], s["model"]), []).append(s)
    comparable = cfg.sigma == PUBLISHED_SIGMA
    header = ["image"]
    for m in cfg.models:
        header += [f"{m}" + (" (ours, not the study's setting)" if ":" in m else "")]
        header += [f"{m} published", "Δ"] if comparable else []
    header += [{"lowpass": "best Gaussian low-pass (oracle width)", "bm3d": "CBM3D"}[m] for m in methods]
    table_rows, csv_rows = [], []
    col_ours: dict[str, list[float]] = {m: [] for m in cfg.models}
    col_pub: dict[str, list[float]] = {m: [] for m in cfg.models}
    for image in images:
        line = [image]
        for m in cfg.models:
            runs = by_cell.get((image, m), [])
            mean, std = cell([s["best_psnr"] for s in runs]) if runs else (None, None)
            pub = PUBLISHED.get(image, {}).get(m) if comparable else None
            line.append(cell_text(mean, std) + (f" (n={len(runs)})" if runs and len(runs) != cfg.runs_of(m) else ""))
            if comparable:
                line += [cell_text(*pub) if pub else "–", f"{mean - pub[0]:+.2f}" if (pub and mean is not None) else "–"]
            if mean is not None:
                col_ours[m].append(mean)
                if pub:
                    col_pub[m].append(pub[0])
            csv_rows.append({"image": image, "model": m, "runs": len(runs), "best_psnr_mean": mean,
                             "best_psnr_std": std, "published_mean": pub[0] if pub else None,
                             "published_std": pub[1] if pub else None,
                             "difference": (mean - pub[0]) if (pub and mean is not None) else None,
                             "best_steps": " ".join(str(s["best_step"]) for s in runs),
                             "final_psnr_mean": cell([s["final_psnr"] for s in runs])[0] if runs else None,
                             "noisy_psnr": runs[0]["noisy_psnr"] if runs else None,
                             "seconds_per_run": float(np.mean([s["seconds"] for s in runs])) if runs else None,
                             "precision": _precisions(runs) if runs else None,
                             "divergence_resets": sum(len(s.get("recoveries", [])) for s in runs) if runs else None})
        for m in methods:
            b = baselines.get(image, {})
            line.append(f"{b[m]:.2f}" + (f" (s = {b['lowpass_width']:.2f})" if m == "lowpass" else "") if m in b else "–")
            csv_rows.append({"image": image, "model": m, "runs": 1 if m in b else 0, "best_psnr_mean": b.get(m),
                             "lowpass_width": b.get("lowpass_width") if m == "lowpass" else None})
        table_rows.append(line)
    means = ["**mean**"]
    for m in cfg.models:
        ours = float(np.mean(col_ours[m])) if col_ours[m] else None
        means.append(f"**{ours:.2f}** ({len(col_ours[m])} images)" if ours is not None else "–")
        if comparable:
            pub = float(np.mean(col_pub[m])) if col_pub[m] else None
            means += [f"{pub:.2f}" if pub is not None else "–",
                      f"{ours - pub:+.2f}" if (ours is not None and pub is not None and len(col_pub[m]) == len(col_ours[m])) else "–"]
    for m in methods:
        values = [b[m] for b in baselines.values() if m in b]
        means.append(f"**{np.mean(values):.2f}**" if values else "–")
    table_rows.append(means)
    write_csv(out / "table.csv", csv_rows)
    settings = _settings_text(cfg, tasks) + _baselines_text(cfg, methods)
    text = ("# Denoising table: best-snapshot PSNR (dB) by architecture\n\n" + settings + "\n"
            + markdown_table(header, table_rows)
            + f"\n{len(rows)} of {len(tasks)} runs finished.\n" + _resets_text(rows)
            + _provenance_text(cfg, images, by_cell))
    write_text(out / "table.md", text)
    _figures(cfg, out, rows, col_ours, col_pub, images)
    return text


def _resets_text(rows: Sequence[dict[str, Any]]) -> str:
    """How many runs the fit loop reset after a loss jump (``FitConfig.recover_divergence``)."""
    recorded = [r["recoveries"] for r in rows if "recoveries" in r]
    if not recorded:
        return ""
    reset = [r for r in recorded if r]
    older = len(rows) - len(recorded)
    return (f"Divergence resets (weights restored after a loss jump): {len(reset)} of {len(recorded)} runs, "
            f"{sum(len(r) for r in reset)} in all" + (f"; {older} older runs did not record them" if older else "")
            + ".\n")


def _provenance_text(cfg: TableConfig, images: Sequence[str],
                     by_cell: Mapping[tuple[str, str], Sequence[dict[str, Any]]]) -> str:
    """Per cell: how many runs made it, in which precision, how many divergence resets each run
    had, the best steps, the minutes per run and the CPU or GPU that ran them."""
    header = ["image", "model", "runs", "precision", "resets per run", "best steps", "min per run", "device"]
    body = []
    for image in images:
        for m in cfg.models:
            runs = sorted(by_cell.get((image, m), []), key=lambda s: s["run"])
            if not runs:
                continue
            resets = [str(len(s["recoveries"])) if "recoveries" in s else "?" for s in runs]
            devices = sorted({device_in_words(s.get("device")) for s in runs})
            body.append([image, m, str(len(runs)), _precisions(runs),
                         " / ".join(resets), " / ".join(str(s["best_step"]) for s in runs),
                         " / ".join(f"{s['seconds'] / 60:.0f}" for s in runs), "; ".join(devices)])
    if not body:
        return ""
    note = ("\n'ftz': runs that flushed subnormal floats to zero on the CPU (`--flush-denormals`).\n"
            if any(s.get("flush_denormals") for runs in by_cell.values() for s in runs) else "")
    return "\n## How each cell was made\n\n" + markdown_table(header, body) + note


def _precisions(runs: Sequence[Mapping[str, Any]]) -> str:
    """The precisions that made a cell's runs, e.g. ``"fp32"`` or ``"bf16, fp32"`` (a mixed cell);
    ``fp32 ftz`` for runs that flushed subnormal floats to zero."""
    return ", ".join(sorted({str(s.get("precision", "?")) + (" ftz" if s.get("flush_denormals") else "") for s in runs}))


def _baselines_text(cfg: TableConfig, methods: Sequence[str]) -> str:
    """How the classical columns were made (each on the same noisy image as the networks)."""
    from importlib.metadata import PackageNotFoundError, version

    lines = []
    if "lowpass" in methods:
        lines.append("- best Gaussian low-pass: the Gaussian blur of the noisy image whose width s (pixels) gives the "
                     "highest PSNR against the clean image (an oracle, as the best snapshot is)")
    if "bm3d" in methods:
        try:
            package = f"`bm3d` {version('bm3d')}"
        except PackageNotFoundError:  # pragma: no cover - the column exists only with the package
            package = "`bm3d`"
        lines.append(f"- CBM3D: {package}, `bm3d_rgb` (`bm3d` for grey images) given the true σ = {cfg.sigma:g}/255, "
                     "output clipped to [0, 1]; one run (repeats agree within 1e-4 dB)")
    return "".join(line + "\n" for line in lines)


def _settings_text(cfg: TableConfig, tasks: Sequence[Task]) -> str:
    per_model = {}
    for t in tasks:
        per_model.setdefault(t.config["model"]["family"] + ":" + t.key.split("/")[0], t.config)
    lines = [f"- degradation: ×{cfg.factor} `{cfg.resize}` resize, σ = {cfg.sigma:g} (0–255 scale) added in [0, 1], "
             f"clipped{', both images rounded to 8 bits' if cfg.quantize else ''}; noise seed {cfg.noise_seed}",
             f"- PSNR: data range 1 against the {'8-bit ' if cfg.quantize else ''}clean image at the same size, "
             + (f"ignoring a {cfg.crop}-pixel border" if cfg.crop else "no border crop")
             + "; cell = best snapshot over the fit (oracle), mean ± std over runs (ddof = 1), network seeds 0 … R−1",
             f"- profile `{cfg.profile}`, {cfg.runs} run(s) per cell"
             + "".join(f"; {m}: {n}" for m, n in cfg.model_runs.items() if n != cfg.runs)]
    for key, c in per_model.items():
        fitc, model = c["fit"], c["model"]
        width = model.get("channels_down") or model.get("width") or model.get("hidden")
        width = width[0] if isinstance(width, (list, tuple)) else width
        lines.append(f"- {key.split(':', 1)[1]}: {model['family']} width {width}, {fitc['steps']} steps, Adam lr {fitc['lr']}, "
                     f"snapshot every {fitc['observe_every']} steps, divergence recovery "
                     + ("on" if fitc.get("recover_divergence") else "off")
                     + (f", {fitc['pixel_batch']}-pixel batches" if fitc.get("pixel_batch") else ""))
    if cfg.sigma == PUBLISHED_SIGMA:
        lines.append("- published: Chakrabarty & Maji's table (σ = 25); Δ = ours − published; the mean row compares "
                     "the images present in both")
    return "\n".join(lines) + "\n"


def _figures(cfg: TableConfig, out: Path, rows: Sequence[dict[str, Any]], col_ours: Mapping[str, list[float]],
             col_pub: Mapping[str, list[float]], images: Sequence[str]) -> None:
    if not rows:
        return
    image = next((i for i in images if any(s["image"] == i for s in rows)), None)
    xs, ys = {}, {}
    for m in cfg.models:
        curve = out / m / str(image) / "run-0" / "curve.csv"
        if curve.is_file():
            data = np.genfromtxt(curve, delimiter=",", names=True)
            xs[m], ys[m] = np.atleast_1d(data["step"]).tolist(), np.atleast_1d(data["psnr"]).tolist()
    if ys:
        curves(xs, ys, out / "curves.png", f"{image}: PSNR of the output over the fit (σ = {cfg.sigma:g}, run 0)",
               "step", "PSNR (dB)", logx=True)
    models = [m for m in cfg.models if col_ours[m]]
    if models:
        published = ({m: float(np.mean(col_pub[m])) for m in models if col_pub[m]}
                     if cfg.sigma == PUBLISHED_SIGMA else {})
        bars(models, {"ours": [float(np.mean(col_ours[m])) for m in models],
                      **({"published": [published.get(m, math.nan) for m in models]} if published else {})},
             out / "means.png", f"Mean best PSNR over images (σ = {cfg.sigma:g}, ×{cfg.factor} {cfg.resize})",
             "PSNR (dB)")
