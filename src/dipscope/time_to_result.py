"""Time to the denoised image: ``dipscope denoise`` with its defaults against the original
protocol, measured end to end (``dipscope bench --time-to-result``).

For every image and noise level σ:

* **ours** — :func:`dipscope.denoise` with every default (the default preset and its
  runs — ``dipscope``: the mean of 3 runs of a 48-channel network —, automatic stop, ``auto``
  precision and layout): the wall-clock time until ``denoised.png`` is written, and its PSNR;
* **original protocol** — the ``ulyanov2018`` preset in reference mode (fp32, NCHW, stock
  Adam, no compile), ``--stop none``, ``reference_steps`` steps (3 000 in the original): the PSNR
  of its EMA at the last step, the oracle best PSNR over the run (every observation), and its
  time — measured over the steps actually run and, when fewer than ``reference_steps`` were run
  (``measure_steps``), extrapolated linearly (the table says so).

The three measurements of every (image, σ) are separate *parts*, so that each can run where it
belongs: ``original`` (the full reference run: its PSNRs — untimed work that can run in the
background, one thread), ``timing`` (``measure_steps`` reference steps, timed: run it on a quiet
machine) and ``ours`` (timed: quiet machine). With ``out`` each part is kept as
``out/IMAGE-sSIGMA/PART.json`` and reused on the next call, so the benchmark resumes and its
parts can be run at different times (``parts``). The original protocol's time is the timing
part's seconds per step × ``reference_steps`` where it exists, else the full run's own time.

A fourth part, ``ensemble``, runs ``denoise`` with ``--runs ensemble_runs`` (default 4): the PSNR
of the mean of the first 1, 2, 4 runs' stopped images, and each run's fit time, so the gain of
an ensemble of R runs and its time cost (counted as R runs in turn, relative to one; on a
multi-core CPU the runs are fitted at once and take less wall time than that) come from one
call. On a CPU its first ``ours_runs`` runs are the ``ours`` runs (same seeds and settings); on
CUDA the runs are one grouped fit, which matches ``ours`` only up to summation order.

Images: 256×256 centre crops of scikit-image's bundled photographs (no download), plus the
cbm3d9 images ×4 (``study`` resize) when a data directory holds them. The report names the
machine (CPU model and whether it has native bf16, torch, threads): a ratio holds only where it
was measured.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .errors import DipscopeError
from .fit import REFERENCE_MODE, FitConfig, fit
from .metrics import psnr
from .models import ModelSpec
from .physics import GaussianNoise
from .presets import default_runs, preset
from .restoration import Restoration, add_noise, denoise
from .runtime import machine
from .stopping import DEFAULT_RULE, DEFAULT_SIGMA_ESTIMATOR
from .tasks import DEFAULT_PRESETS

SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "hubble_deep_field")


PARTS = ("original", "timing", "ours", "ensemble")


@dataclass
class TimeToResult:
    """Settings of the benchmark (``--quick`` shrinks everything to a smoke run)."""

    images: Sequence[str] = SKIMAGE_PHOTOS
    sigmas: Sequence[float] = (15.0, 25.0, 50.0)
    crop: int = 256
    reference_steps: int = 3000
    measure_steps: int | None = None  # time only this many reference steps (the ``timing`` part)
    max_steps: int | None = None  # cap on our run's steps (None: the preset's)
    ensemble_runs: int = 4  # the ``ensemble`` part: ``dipscope denoise --runs`` this many, scored at R = 1, 2, 4 …
    levels: int | None = None
    device: str = "auto"
    seed: int = 0
    out: Path | None = None  # keep every part here and reuse it (None: a temporary folder)
    parts: Sequence[str] = PARTS

    @classmethod
    def quick(cls) -> "TimeToResult":
        """A smoke run of the whole benchmark (two 64×64 crops, σ = 25, 60 steps, 3 levels)."""
        return cls(images=("astronaut", "camera"), sigmas=(25.0,), crop=64, reference_steps=60, max_steps=60,
                   levels=3, ensemble_runs=2)

    def validate(self) -> None:
        if self.measure_steps is not None and self.measure_steps < 50 and self.reference_steps > self.measure_steps:
            raise DipscopeError("extrapolating the reference time needs at least 50 measured steps")
        if not self.sigmas or min(self.sigmas) <= 0:
            raise DipscopeError("give noise levels σ > 0")
        unknown = set(self.parts) - set(PARTS)
        if unknown:
            raise DipscopeError(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)} (or none)")
        if not self.parts and self.out is None:
            raise DipscopeError("with no part to measure (--parts none) give --out, the folder of kept parts to report")
        if self.crop < 16:
            raise DipscopeError("--crop must be at least 16 pixels")
        if self.ensemble_runs < 2:
            raise DipscopeError("an ensemble needs at least 2 runs")
        if self.out is not None and self.out.exists() and not self.out.is_dir():
            raise DipscopeError(f"--out {self.out} exists and is not a folder")


def parse_parts(text: str) -> tuple[str, ...]:
    """``--parts``: a comma-separated list of :data:`PARTS`, or ``none`` (measure nothing, report
    the parts kept in ``--out``)."""
    return () if text.strip() == "none" else tuple(p.strip() for p in text.split(",") if p.strip())


def skimage_photo(name: str, side: int) -> torch.Tensor:
    """A ``side × side`` centre crop of a scikit-image bundled image, (C, H, W) in [0, 1]."""
    from skimage import data

    if not hasattr(data, name):
        raise DipscopeError(f"scikit-image bundles no image {name!r}")
    array = np.asarray(getattr(data, name)()).astype(np.float32) / 255.0
    image = torch.from_numpy(array[None] if array.ndim == 2 else np.moveaxis(array[..., :3], -1, 0).copy())
    h, w = image.shape[-2:]
    s = min(side, h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return image[:, top:top + s, left:left + s].contiguous()


def network_of(preset_name: str | None, levels: int | None) -> ModelSpec | None:
    """The preset's DIP with ``levels`` levels (None: the preset's own network)."""
    if levels is None:
        return None
    return preset(DEFAULT_PRESETS["denoise"] if preset_name is None else preset_name)[0].with_levels(levels)


def timed_denoise(noisy: torch.Tensor, out: Path, **options: Any) -> tuple[Restoration, float]:
    """:func:`dipscope.denoise` of ``noisy`` (with ``options``), saved into ``out`` (replacing a
    run there): the result and its wall time until the run directory is written. An interrupted
    run raises :class:`KeyboardInterrupt`: it is no measurement."""
    if options.get("preset") is None:
        options.pop("preset", None)
    start = time.perf_counter()
    run = denoise(noisy, **options)
    if run.interrupted:
        raise KeyboardInterrupt  # nothing is kept
    run.save(out, force=True)
    return run, time.perf_counter() - start


def _timed_denoise(clean: torch.Tensor, sigma: float, cfg: TimeToResult, work: Path, name: str,
                   runs: int | None = None) -> tuple[Restoration, float]:
    """``dipscope denoise`` of ``clean`` + noise (seeded) with every default into ``work/name``, timed."""
    work.mkdir(parents=True, exist_ok=True)
    clean = clean.clamp(0, 1)  # a resized image may overshoot [0, 1] by a little
    return timed_denoise(add_noise(clean, sigma, seed=cfg.seed), work / name, clean=clean, seed=cfg.seed,
                         device=cfg.device, steps=cfg.max_steps, network=network_of(None, cfg.levels), runs=runs)


def ours(clean: torch.Tensor, sigma: float, cfg: TimeToResult, work: Path) -> dict[str, Any]:
    """``dipscope denoise`` with its defaults: seconds until denoised.png exists, and its PSNR."""
    run, seconds = _timed_denoise(clean, sigma, cfg, work, "ours")
    return {"ours_seconds": seconds, "ours_psnr": run.stopping["result_psnr"], "ours_step": run.stopping["step"],
            "ours_runs": len(run.results), "ours_precision": run.results[0].precision,
            "ours_threads": torch.get_num_threads()}


def ensemble(clean: torch.Tensor, sigma: float, cfg: TimeToResult, work: Path) -> dict[str, Any]:
    """``dipscope denoise --runs R`` with its defaults (R = ``cfg.ensemble_runs``; seeds
    ``seed … seed + R − 1``; at once on a multi-core CPU, grouped on CUDA): the PSNR of the mean of the
    first ``r`` runs' stopped images for r = 1, 2, 4, … ≤ R, each run's fit time and steps, and
    the wall time of the whole call."""
    run, seconds = _timed_denoise(clean, sigma, cfg, work, "ensemble", runs=cfg.ensemble_runs)
    sizes = sorted({r for r in (1, 2, 4, 8, 16) if r <= len(run.chosen)} | {len(run.chosen)})
    return {"ensemble_seconds": seconds, "ensemble_fit_seconds": [r.seconds for r in run.results],
            "ensemble_steps": [r.steps_done for r in run.results],
            "ensemble_psnr": {str(r): psnr(torch.stack(run.chosen[:r]).mean(0), clean) for r in sizes},
            "ensemble_grouped": run.results[0].grouped, "ensemble_precision": run.results[0].precision,
            "ensemble_threads": torch.get_num_threads()}


def original(clean: torch.Tensor, sigma: float, cfg: TimeToResult, steps: int | None = None) -> dict[str, Any]:
    """The original protocol in reference mode for ``steps`` (default all) steps: the PSNR of its
    EMA at the last step, the oracle best over the run, and its time."""
    noisy = GaussianNoise(sigma / 255.0, cfg.seed)(clean, clip=True)
    spec, config = preset("ulyanov2018")
    if cfg.levels is not None:
        spec = spec.with_levels(cfg.levels)
    steps = cfg.reference_steps if steps is None else min(steps, cfg.reference_steps)
    config: FitConfig = replace(config, steps=steps, seed=cfg.seed, device=cfg.device, **REFERENCE_MODE)
    result = fit(spec, noisy, config, clean=clean, ssim=False)
    if result.interrupted:
        raise KeyboardInterrupt  # an interrupted run is not a measurement: nothing is kept
    best_ema = max((row["psnr_ema"] for row in result.history if "psnr_ema" in row), default=None)
    return {"steps": result.steps_done, "seconds": result.seconds, "threads": torch.get_num_threads(),
            "ema_psnr": psnr(result.ema, clean), "best_psnr": result.best_psnr, "best_ema_psnr": best_ema,
            "noisy_psnr": psnr(noisy, clean)}


def settings_of(part: str, cfg: TimeToResult) -> dict[str, Any]:
    """What a kept part must have been measured with to be reused."""
    common = {"crop": cfg.crop, "seed": cfg.seed, "levels": cfg.levels, "device": cfg.device}
    if part == "original":
        return {**common, "reference_steps": cfg.reference_steps}
    if part == "timing":
        return {**common, "measure_steps": cfg.measure_steps}
    # our runs use the default preset, its runs and the default rule: a part measured under other
    # defaults is not reused
    return {**common, "max_steps": cfg.max_steps,
            **denoise_defaults(runs=None if part == "ours" else cfg.ensemble_runs)}


def denoise_defaults(preset: str | None = None, runs: int | None = None) -> dict[str, Any]:
    """The defaults a ``dipscope denoise`` measurement depends on: the preset (None: the denoising
    default), its runs (None: the preset's, recorded as the number), its network's width and the
    stopping rule."""
    name = DEFAULT_PRESETS["denoise"] if preset is None else preset
    return {"stop": f"{DEFAULT_RULE}, σ by {DEFAULT_SIGMA_ESTIMATOR}", "preset": name,
            "runs": default_runs(name) if runs is None else runs, "width": trunk_width(name)}


def trunk_width(name: str) -> int:
    """The channels of a preset's DIP (skip) trunk: a preset's network can change between versions."""
    spec, _ = preset(name)
    return spec.channels_down[0]


def kept_part(folder: Path, name: str, settings: dict[str, Any], measure: Any) -> dict[str, Any] | None:
    """A part's measurement: from ``folder/name.json`` if kept with the same ``settings``, else
    measured now and kept there (``measure`` None: only read, never measure)."""
    path = folder / f"{name}.json"
    if path.is_file():
        kept = json.loads(path.read_text())
        if kept.get("settings") == settings:
            return kept
    if measure is None:
        return None
    value = {**measure(), "machine": machine(), "settings": settings}
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(value, indent=1) + "\n")
    tmp.replace(path)
    return value


def measure_parts(name: str, clean: torch.Tensor, sigma: float, cfg: TimeToResult, root: Path) -> dict[str, Any]:
    """Run (or reuse) the requested parts of one (image, σ); returns those that exist with the
    benchmark's current settings (kept parts made with other settings are not used)."""
    folder = root / f"{name}-s{sigma:g}"
    measures = {"original": lambda: original(clean, sigma, cfg),
                "timing": lambda: original(clean, sigma, cfg, cfg.measure_steps),
                "ours": lambda: ours(clean, sigma, cfg, folder / "work"),
                "ensemble": lambda: ensemble(clean, sigma, cfg, folder / "work")}
    parts: dict[str, Any] = {}
    for part in PARTS:
        if part == "timing" and cfg.measure_steps is None:
            continue
        value = kept_part(folder, part, settings_of(part, cfg), measures[part] if part in cfg.parts else None)
        if value is not None:
            parts[part] = value
    return parts


def row_of(name: str, sigma: float, parts: dict[str, Any], cfg: TimeToResult) -> dict[str, Any] | None:
    """One table row from the parts (None until ``original`` and ``ours`` both exist)."""
    if "original" not in parts or "ours" not in parts:
        return None
    o, t, u = parts["original"], parts.get("timing"), parts["ours"]
    timed = t if t is not None else o
    row: dict[str, Any] = {"kind": "time to result", "image": name, "sigma": sigma, "reference_steps_run": o["steps"],
                           "reference_seconds": timed["seconds"] / max(timed["steps"], 1) * cfg.reference_steps,
                           "reference_time_extrapolated": timed["steps"] < cfg.reference_steps,
                           "reference_threads": timed["threads"], "reference_timed_by": "timing" if t else "original",
                           "machines": sorted({p["machine"] for p in parts.values()}),
                           "reference_ema_psnr": o["ema_psnr"],
                           "reference_best_psnr": o["best_psnr"], "noisy_psnr": o["noisy_psnr"],
                           # the best EMA over the run (observed every 10 steps); parts kept before it was recorded lack it
                           "reference_best_ema_psnr": o.get("best_ema_psnr"),
                           **{k: v for k, v in u.items() if k.startswith("ours_")}, "ours_machine": u["machine"]}
    row["time_ratio"] = row["reference_seconds"] / row["ours_seconds"]
    row["psnr_vs_reference_ema"] = row["ours_psnr"] - row["reference_ema_psnr"]
    row["psnr_vs_oracle"] = row["ours_psnr"] - row["reference_best_psnr"]
    return row


def ensemble_row_of(name: str, sigma: float, parts: dict[str, Any]) -> dict[str, Any] | None:
    """The ensemble part as a row: PSNR of the mean of r runs and its gain over one run, and the
    time of r runs in turn relative to one (from each run's steps), for r = 2, 4, …"""
    e = parts.get("ensemble")
    if e is None:
        return None
    psnrs, steps = {int(r): v for r, v in e["ensemble_psnr"].items()}, e["ensemble_steps"]
    row = {"kind": "ensemble", "image": name, "sigma": sigma, "psnr": psnrs, "steps": steps,
           "grouped": e["ensemble_grouped"], "precision": e["ensemble_precision"], "machine": e["machine"]}
    row["gain"] = {r: v - psnrs[1] for r, v in psnrs.items() if r > 1}
    if e["ensemble_grouped"] > 1:  # one grouped fit: no per-run times, the whole call against ours
        ours = parts.get("ours")
        row["time_cost"] = {len(steps): e["ensemble_seconds"] / ours["ours_seconds"]} if ours else {}
    else:
        # in turn, each run costs its steps at the same rate: steps, not wall seconds, so that a
        # background run paused for a quiet window (SIGSTOP) is not misread
        row["time_cost"] = {r: sum(steps[:r]) / steps[0] for r in psnrs if r > 1}
    return row


def run(cfg: TimeToResult, data_dir: str | None = None) -> tuple[list[dict[str, Any]], str]:
    """Measure (or reuse) every image and σ; returns the complete rows and the Markdown report."""
    cfg.validate()
    images = {name: skimage_photo(name, cfg.crop) for name in cfg.images}
    if data_dir is not None:
        from .datasets import load
        from .physics import downsample

        images.update({k: downsample(v, 4, "study") for k, v in load("cbm3d9", data_dir).items()})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = cfg.out if cfg.out is not None else Path(tmp)
        for name, clean in images.items():
            for sigma in cfg.sigmas:
                parts = measure_parts(name, clean, sigma, cfg, root)
                rows += [r for r in (row_of(name, sigma, parts, cfg), ensemble_row_of(name, sigma, parts)) if r]
    return rows, report(rows, cfg)


def report(rows: Sequence[dict[str, Any]], cfg: TimeToResult) -> str:
    """The table: per image and σ, time ratio and PSNR differences, with the machine."""
    from .experiments.common import fmt, markdown_table

    ensembles = [r for r in rows if r["kind"] == "ensemble"]
    rows = [r for r in rows if r["kind"] == "time to result"]
    tail = ensemble_report(ensembles)
    if not rows:
        return "# Time to the denoised image\n\nNo (image, σ) has both its original and its ours part yet.\n" + tail
    extrapolated = any(r["reference_time_extrapolated"] for r in rows)
    header = ["image", "σ", "ours: s", "ours: dB (step)", f"original: s{'*' if extrapolated else ''}",
              f"original: EMA dB at {rows[0]['reference_steps_run']}", "original: oracle dB (best output)",
              "original: best EMA dB", "time ratio", "Δ vs EMA", "Δ vs oracle"]
    body = [[r["image"], f"{r['sigma']:g}", fmt(r["ours_seconds"], ".1f"), f"{r['ours_psnr']:.2f} ({r['ours_step']})",
             fmt(r["reference_seconds"], ".1f"), fmt(r["reference_ema_psnr"]), fmt(r["reference_best_psnr"]),
             fmt(r.get("reference_best_ema_psnr")), fmt(r["time_ratio"], ".2f") + "×", fmt(r["psnr_vs_reference_ema"], "+.2f"),
             fmt(r["psnr_vs_oracle"], "+.2f")] for r in rows]
    threads = sorted({r["ours_threads"] for r in rows} | {r["reference_threads"] for r in rows})
    note = (f"\n\\* the original protocol's time: {cfg.measure_steps} timed steps (reference mode) × "
            f"{cfg.reference_steps} / {cfg.measure_steps}.\n" if extrapolated else "")
    untimed = [f"{r['image']} σ {r['sigma']:g}" for r in rows if r["reference_timed_by"] == "original"]
    if untimed:
        note += ("\nWithout a timing part, the original's time is that of its full (background) run: "
                 + ", ".join(untimed) + ".\n")
    machines = sorted({m for r in rows for m in r["machines"]})
    return (f"# Time to the denoised image\n\nMeasured on: {'; '.join(machines)}; timed parts with {threads} torch "
            f"threads; {cfg.crop}×{cfg.crop} crops.\n\n" + markdown_table(header, body)
            + "\n" + "".join(summary_line(group) for group in _by_sigma(rows)) + note + tail)


def _by_sigma(rows: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The rows grouped by σ (one group when all share one σ), all of them last when there are several."""
    sigmas = sorted({r["sigma"] for r in rows})
    groups = [[r for r in rows if r["sigma"] == s] for s in sigmas]
    return groups + [list(rows)] if len(groups) > 1 else groups


def summary_line(rows: Sequence[dict[str, Any]]) -> str:
    """Means over ``rows`` (one σ, or all): time ratio (and its smallest), Δ vs the original's EMA
    and vs its oracle best (and the worst), and the machine(s) the timed parts ran on."""
    sigmas = sorted({r["sigma"] for r in rows})
    which, count = (f"σ = {sigmas[0]:g}", "image") if len(sigmas) == 1 else ("all σ", "image and σ")
    ratio, ema, oracle = (np.mean([r[k] for r in rows]) for k in ("time_ratio", "psnr_vs_reference_ema", "psnr_vs_oracle"))
    timed_on = sorted({r.get("ours_machine", "?") for r in rows})
    return (f"- **{which}** ({len(rows)} {count}{' pairs' if len(sigmas) > 1 else ('s' if len(rows) != 1 else '')}; timed on {'; '.join(timed_on)}): mean time ratio {ratio:.2f}× "
            f"(smallest {min(r['time_ratio'] for r in rows):.2f}×), mean Δ vs the original's EMA {ema:+.2f} dB, "
            f"mean Δ vs its oracle best {oracle:+.2f} dB, worst Δ vs oracle {min(r['psnr_vs_oracle'] for r in rows):+.2f} dB.\n")


def ensemble_report(rows: Sequence[dict[str, Any]]) -> str:
    """The ensemble table: PSNR of the mean of r runs' stopped images, gain and time cost."""
    from .experiments.common import markdown_table

    if not rows:
        return ""
    sizes = sorted({r for row in rows for r in row["psnr"] if r > 1})
    header = ["image", "σ", "1 run: dB (step)"] + [f"{r} runs: dB (gain)" for r in sizes] + [
        f"time of {r} runs" for r in sizes]
    body = []
    for row in rows:
        cost = [f"{row['time_cost'][r]:.2f}×" if r in row["time_cost"] else "—" for r in sizes]
        body.append([row["image"], f"{row['sigma']:g}", f"{row['psnr'][1]:.2f} ({row['steps'][0]})"]
                    + [f"{row['psnr'][r]:.2f} ({row['gain'][r]:+.2f})" if r in row["psnr"] else "—" for r in sizes]
                    + cost)
    means = [f"{r} runs {np.mean([x['gain'][r] for x in rows if r in x['gain']]):+.2f} dB" for r in sizes]
    machines = sorted({r["machine"] for r in rows})
    return ("\n## Ensembles: the mean of R runs' stopped images (`dipscope denoise --runs R`)\n\nMeasured on: "
            + "; ".join(machines) + ". Time = the steps of the runs in turn relative to the first run's "
            "(grouped runs: the whole call against `ours` for all R runs); runs fitted at once on a multi-core CPU "
            "take less wall time than that (`benchmarks/RESULTS.md`, \"The default preset\").\n\n" + markdown_table(header, body) + "\nMean gain over one run: "
            + ", ".join(means) + ".\n")
