"""The upsampling layers as a source of DIP's spectral bias.

The same encoder-decoder (the study's DIP, :func:`model_choice` ``dip``) is built with

* **modes** — nearest, bilinear, or transposed-convolution (kernel = stride, the contrast)
  upsampling, all with stride 2 at every level (the standard network); and
* **strides** — upsampling (and downsampling) factor ``s`` ∈ {2, 4, 8, 16, 32} at every level.
  With ``stride_levels = n`` every stride gets the same ``n`` levels, so the strides differ in
  the stride alone (and in the total factor ``s^n`` it implies; the parameter count is the
  same). Without it the depth is adjusted per stride: ``n_s`` is the largest number of levels
  ``≤ L`` (the profile's levels, 5 for the study's network) with ``2·s^n ≤ min(H, W)``
  (BatchNorm needs a 2×2 map at the deepest level), at least 1 — on a 128×128 image s = 2: 5
  levels (total factor 32), 4: 3 levels (64), 8: 2 (64), 16: 1 (16), 32: 1 (32), so depth,
  width of the bottleneck and parameter count change with the stride.

Every setting is fitted from ``seeds`` network seeds; the report gives the mean and spread
over them and how many seeds follow each stated order.

Each network is fitted to a clean image. We record (pure functions of :mod:`dipscope.spectral`):

* the output's radially averaged power spectrum *at initialisation*, averaged over a few seeds
  (``init_seeds``; mean removed and a 2-D Hann window applied, :func:`dipscope.spectral.windowed`);
* the **high-frequency power fraction** of the output, ``h(t) = Σ_{r > r_h} P / Σ_{r > 0} P``
  (``P`` of the mean-removed, Hann-windowed output; ``r_h`` = ``hf_cutoff``, default 0.25
  cycles/pixel), at every observation and tabulated at fixed steps; smaller = smoother;
* the **low-error radius** ``r(t)`` (:func:`dipscope.spectral.low_error_radius`): the radius of
  the disc of rings already fitted to relative error below τ, under two per-ring errors — of the
  Fourier magnitudes (the power spectrum the study speaks of,
  :func:`dipscope.spectral.band_magnitude_error`) and of the complex coefficients (phase counted,
  :func:`dipscope.spectral.band_relative_error`).

The study's statement, checked on our measurement: a larger upsampling stride gives a smoother
output at the same iteration, and the low-error region grows at a different rate (stride 4 vs
32).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .. import spectral
from ..callbacks import HFObserver, SnapshotSaver, SpectralObserver, load_snapshots
from ..errors import DipscopeError
from ..fit import fit
from ..metrics import psnr
from ..models import SkipSpec
from ..runs import ExecutorOptions, Task, require_complete, tensor_digest
from ..runs.rundir import write_csv
from .base import Experiment
from .common import crop_side, describe, fit_check, fmt, markdown_table, model_choice

MODES = ("nearest", "bilinear", "transposed")
STRIDES = (2, 4, 8, 16, 32)


@dataclass
class UpsamplingConfig:
    images: Sequence[str] = ()
    modes: Sequence[str] = MODES
    strides: Sequence[int] = STRIDES
    stride_mode: str = "bilinear"
    profile: str = "cpu"
    channels: int | None = None
    skip_channels: int | None = None
    steps: int | None = None
    crop: int | None = None
    bands: int = 16
    tau: float = 0.1
    hf_cutoff: float = 0.25
    init_seeds: int = 4
    at_steps: Sequence[int] | None = None
    stride_levels: int | None = None
    seed: int = 0
    seeds: int = 1
    data_dir: str | None = None
    device: str = "auto"
    recover_divergence: bool = False
    precision: str = "auto"

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seed, self.seed + self.seeds))

    @property
    def crop_side(self) -> int | None:
        return crop_side(self.crop, self.profile)


def base_model(cfg: UpsamplingConfig):
    """The profile's DIP (cpu: 48 channels per level, 500 steps — sized for a 2-core CPU).

    ``skip_channels = 0`` removes the skip connections, leaving the upsampling path as the only
    route from the input to the output (the skips carry the full-resolution input noise)."""
    spec, config = model_choice("dip", cfg.profile, recover=cfg.recover_divergence)
    if cfg.profile == "cpu":
        spec = replace(spec, channels_down=(48,) * 5, channels_up=(48,) * 5)
        config = replace(config, steps=500)
    if cfg.channels is not None:
        spec = replace(spec, channels_down=(cfg.channels,) * spec.levels, channels_up=(cfg.channels,) * spec.levels)
    if cfg.skip_channels is not None:
        if cfg.skip_channels < 0:
            raise DipscopeError("--skip-channels must be ≥ 0")
        spec = replace(spec, channels_skip=(cfg.skip_channels,) * spec.levels)
    if cfg.steps is not None:
        config = replace(config, steps=cfg.steps)
    return spec, replace(config, seed=cfg.seed, device=cfg.device, precision=cfg.precision)


def levels_for(stride: int, side: int, max_levels: int) -> int:
    """Largest ``n ≤ max_levels`` with ``2·stride^n ≤ side`` (the deepest map at least 2×2)."""
    if stride < 2:
        raise DipscopeError("upsampling strides must be at least 2")
    if 2 * stride > side:
        raise DipscopeError(f"stride {stride} needs an image side of at least {2 * stride} pixels, got {side}")
    n = 1
    while n < max_levels and 2 * stride ** (n + 1) <= side:
        n += 1
    return n


def fixed_levels(stride: int, side: int, levels: int) -> int:
    """``levels``, checked: the deepest map of ``levels`` levels of ``stride`` must be at least 2×2."""
    if levels < 1:
        raise DipscopeError("the stride settings need at least 1 level")
    if stride < 2:
        raise DipscopeError("upsampling strides must be at least 2")
    if 2 * stride ** levels > side:
        raise DipscopeError(f"stride {stride} with {levels} level(s) needs an image side of at least "
                            f"{2 * stride ** levels} pixels, got {side}")
    return levels


def settings(cfg: UpsamplingConfig, base: SkipSpec, side: int) -> dict[str, SkipSpec]:
    """Named architectures: ``{mode}-s2`` for each mode, :func:`stride_key` for each stride."""
    out: dict[str, SkipSpec] = {}
    for mode in cfg.modes:
        if mode not in MODES:
            raise DipscopeError(f"unknown upsampling {mode!r}; choose nearest, bilinear or transposed")
        n = levels_for(2, side, base.levels)
        out[f"{mode}-s2"] = replace(base.with_levels(n), upsample=mode, factor=2)
    for s in cfg.strides:
        n = levels_for(int(s), side, base.levels) if cfg.stride_levels is None else fixed_levels(int(s), side,
                                                                                             cfg.stride_levels)
        out.setdefault(stride_key(int(s), cfg), replace(base.with_levels(n), upsample=cfg.stride_mode, factor=int(s)))
    return out


def stride_key(stride: int, cfg: UpsamplingConfig) -> str:
    """A stride setting's name: ``{mode}-s{stride}``, and ``-L{levels}`` when the depth is fixed
    (the stride-2 setting of fixed depth is then not the stride-2 mode setting)."""
    return f"{cfg.stride_mode}-s{stride}" + ("" if cfg.stride_levels is None else f"-L{cfg.stride_levels}")


def describe_arch(spec: SkipSpec) -> str:
    c = spec.channels_down[0]
    return (f"{spec.levels} level(s) × stride {spec.factors[0]} (total {spec.pad_multiple}), "
            f"{c}/{spec.channels_up[0]}/{spec.channels_skip[0]} channels, {spec.upsample} up, {spec.downsample} down")


def fixed_steps(cfg: UpsamplingConfig, steps: int, every: int) -> list[int]:
    """Steps at which outputs are compared: the given ones, else ≈ 1/12, 1/3 and all of the run."""
    chosen = list(cfg.at_steps) if cfg.at_steps else [0, steps / 12, steps / 3, steps]
    return sorted({min(int(round(s / every)) * every, steps - steps % every) for s in chosen})


def run_key(setting: str, name: str, seed: int) -> str:
    """A run's directory under the experiment's, ``setting/seed-N/image``: the runs of one seed
    (``--seed N``) and of several (``--seeds``) share one layout, so a sweep may run the seeds
    one command each and report them all with ``--seeds``."""
    return f"{setting}/seed-{seed}/{name}"


def _task(name: str, image: torch.Tensor, key: str, spec: SkipSpec, config, cfg: UpsamplingConfig,
          seed: int) -> Task:
    at = fixed_steps(cfg, config.steps, config.observe_every)
    config = replace(config, seed=seed)

    def work(directory: Path) -> dict[str, Any]:
        # Spectra at initialisation: zero-step fits (the same network and input as the fit) of several seeds.
        init_outputs = [fit(spec, image, replace(config, steps=0, seed=seed + 1000 * i), ssim=False).final
                        for i in range(cfg.init_seeds)]
        centres, power = spectral.radial_power_spectrum(torch.stack([spectral.windowed(o) for o in init_outputs]))
        init_hf = [spectral.hf_fraction(o, cfg.hf_cutoff) for o in init_outputs]
        spec_obs = SpectralObserver({"clean": image}, edges=cfg.bands, tau=cfg.tau, magnitude=True)
        hf_obs = HFObserver(cfg.hf_cutoff)
        snaps = SnapshotSaver(at)
        result = fit(spec, image, config, clean=image, callbacks=[spec_obs, hf_obs, snaps], ssim=False)
        require_complete(result)
        spec_obs.save(directory)
        snaps.save(directory / "snapshots.npz")
        radius, radius_m = spec_obs.radius("clean"), spec_obs.radius("magnitude/clean")
        rows = [{"step": s, "hf_fraction": h["hf_fraction"], "radius": float(rad), "radius_magnitude": float(rad_m),
                 "psnr": next((r["psnr"] for r in result.history if r["step"] == s), None)}
                for s, h, rad, rad_m in zip(spec_obs.steps, hf_obs.rows, radius, radius_m)]
        write_csv(directory / "curves.csv", rows)
        np.savez_compressed(directory / "init_spectrum.npz", centres=centres.numpy(), power=power.numpy(),
                            mean_power=power.mean(dim=0).numpy())
        by_step = {r["step"]: r for r in rows}
        return {
            "image": name, "setting": key, "seed": seed, "architecture": describe_arch(spec), "levels": spec.levels,
            "stride": spec.factors[0], "upsample": spec.upsample, "n_parameters": result.n_parameters,
            "init_hf_fraction": float(np.mean(init_hf)), "init_hf_fraction_seeds": init_hf,
            "at_steps": at, "hf_fraction": [by_step[s]["hf_fraction"] for s in at if s in by_step],
            "radius": [by_step[s]["radius"] for s in at if s in by_step],
            "radius_magnitude": [by_step[s]["radius_magnitude"] for s in at if s in by_step],
            "psnr": [by_step[s]["psnr"] for s in at if s in by_step],
            "final_psnr": psnr(result.final, image), "steps": result.steps_done, "seconds": result.seconds,
            "recoveries": result.recoveries,
        }

    return Task(run_key(key, name, seed), work, {"image": name, "shape": list(image.shape), "crop": cfg.crop_side,
                                        **describe(spec, config), "bands": cfg.bands, "tau": cfg.tau,
                                        "hf_cutoff": cfg.hf_cutoff, "init_seeds": cfg.init_seeds, "at_steps": at},
                inputs={"image": tensor_digest(image)},
                check=fit_check(name, spec, image, config, cfg.bands))


class UpsamplingExperiment(Experiment):
    """Upsampling modes and strides of the encoder-decoder on every image."""

    default_images = ("set:barbara",)

    def check(self) -> None:
        cfg = self.cfg
        if not 0 < cfg.hf_cutoff < 0.5:
            raise DipscopeError("--hf-cutoff must be in (0, 0.5) cycles/pixel")
        if cfg.stride_mode not in MODES:
            raise DipscopeError(f"unknown upsampling {cfg.stride_mode!r}; choose nearest, bilinear or transposed")
        if cfg.init_seeds < 1:
            raise DipscopeError("--init-seeds must be at least 1")
        if cfg.seeds < 1:
            raise DipscopeError("--seeds must be at least 1")
        if cfg.stride_levels is not None and cfg.stride_levels < 1:
            raise DipscopeError("--stride-levels must be at least 1")

    def tasks(self, inputs: Mapping[str, torch.Tensor]) -> list[Task]:
        cfg = self.cfg
        base, config = base_model(cfg)
        tasks: list[Task] = []
        self.keys_of: dict[str, list[str]] = {}
        for name, image in inputs.items():
            archs = settings(cfg, base, min(image.shape[1:]))
            self.keys_of[name] = list(archs)
            tasks += [_task(name, image, key, spec, config, cfg, seed)
                      for seed in cfg.seed_list for key, spec in archs.items()]
        return tasks

    def report(self, out: Path, inputs: Mapping[str, torch.Tensor], tasks: Sequence[Task],
               summaries: Mapping[str, dict[str, Any]]) -> str:
        cfg = self.cfg
        seeds = cfg.seed_list
        text = (f"# Upsampling modes and strides ({cfg.profile} profile)\n\n"
                f"Seeds {', '.join(map(str, seeds))}; cells are mean ± std over seeds (ddof = 1).\n\n")
        csv_rows = []
        for name, image in inputs.items():
            keys = self.keys_of[name]
            runs = {k: [summaries[run_key(k, name, sd)] for sd in seeds] for k in keys}
            at = runs[keys[0]][0]["at_steps"]
            plot_all(out, name, image, keys, {k: run_key(k, name, seeds[0]) for k in keys}, cfg)
            rows = []
            for k in keys:
                first = runs[k][0]
                rows.append([k, first["architecture"], first["n_parameters"],
                             spread([r["init_hf_fraction"] for r in runs[k]], ".4f")]
                            + [spread(per_step(runs[k], "hf_fraction", i), ".4f") for i in range(len(at))]
                            + [spread(per_step(runs[k], "radius_magnitude", i), ".3f") for i in range(len(at))]
                            + [spread(per_step(runs[k], "radius", i), ".3f") for i in range(len(at))]
                            + [spread([r["final_psnr"] for r in runs[k]], ".2f"),
                               sum(len(r.get("recoveries", [])) for r in runs[k])])
                for r in runs[k]:
                    csv_rows.append({"image": name, "setting": k, "seed": r.get("seed", cfg.seed),
                                     "architecture": r["architecture"], "n_parameters": r["n_parameters"],
                                     "init_hf_fraction": r["init_hf_fraction"]}
                                    | {f"hf_{t}": v for t, v in zip(at, r["hf_fraction"])}
                                    | {f"radius_magnitude_{t}": v for t, v in zip(at, r.get("radius_magnitude", []))}
                                    | {f"radius_{t}": v for t, v in zip(at, r["radius"])}
                                    | {"final_psnr": r["final_psnr"], "seconds": r["seconds"],
                                       "recoveries": len(r["recoveries"]) if "recoveries" in r else ""})
            text += (f"## {name} {tuple(image.shape[1:])}\n\n"
                     f"h = fraction of the output's non-DC power at r > {cfg.hf_cutoff} cycles/pixel (smaller = "
                     f"smoother); r = low-error radius (τ = {cfg.tau}, {cfg.bands} rings) under the error of the "
                     f"Fourier magnitudes (|F|, the power spectrum: the study's quantity) and of the complex "
                     f"coefficients (phase counted); recoveries = weight resets after a loss jump, all seeds.\n\n"
                     + markdown_table(["setting", "architecture", "parameters", "h at init"]
                                      + [f"h @ {t}" for t in at] + [f"r |F| @ {t}" for t in at]
                                      + [f"r complex @ {t}" for t in at] + ["final PSNR", "recoveries"], rows)
                     + "\n" + ordering_text(runs, at, cfg) + "\n")
        write_csv(out / "summary.csv", csv_rows)
        return text


def run(cfg: UpsamplingConfig, out: Path, force: bool = False, executor: ExecutorOptions | None = None) -> str:
    """Run (or resume) the experiment; write ``summary.md``/``summary.csv`` and figures."""
    return UpsamplingExperiment(cfg).run(out, force, executor)


def per_step(runs: Sequence[dict[str, Any]], field: str, i: int) -> list[float]:
    """``field`` at the ``i``-th fixed step of every seed that recorded it."""
    return [r[field][i] for r in runs if i < len(r.get(field, []))]


def spread(values: Sequence[float], spec: str) -> str:
    """``mean ± std`` over seeds (ddof = 1), the mean alone for one seed, ``–`` for none."""
    if not values:
        return "–"
    v = np.asarray(values, dtype=float)
    return format(v.mean(), spec) + (f" ± {format(v.std(ddof=1), spec)}" if len(v) > 1 else "")


def ordering_text(runs: Mapping[str, Sequence[dict[str, Any]]], at: Sequence[int], cfg: UpsamplingConfig) -> str:
    """The modes and the strides, each ranked from smoothest to least smooth by the mean of h over
    seeds, at init and at each fixed step, with the number of seeds whose own ranking is the same;
    and the stride 4 vs 32 comparison, seed by seed, under both radii."""
    n = len(cfg.seed_list)
    lines = []
    groups = {"modes": [f"{m}-s2" for m in cfg.modes],
              "strides": list(dict.fromkeys(stride_key(int(s), cfg) for s in cfg.strides))}
    for label, keys in groups.items():
        if len(keys) < 2:
            continue
        for i, t in [(None, "init")] + [(i, t) for i, t in enumerate(at) if t > 0]:
            def h_of(k: str, seed: int) -> float:
                r = runs[k][seed]
                return r["init_hf_fraction"] if i is None else r["hf_fraction"][i]
            order = sorted(keys, key=lambda k: np.mean([h_of(k, j) for j in range(n)]))
            same = sum(sorted(keys, key=lambda k: h_of(k, j)) == order for j in range(n))
            lines.append(f"- {label}, smoothest → least smooth at {'init' if i is None else f'step {t}'}: "
                         f"{' < '.join(order)} (mean h; the same order in {same} of {n} seeds)")
    four, big = (k if k in runs else None for k in (stride_key(4, cfg), stride_key(32, cfg)))
    if four and big:
        for i, t in enumerate(at):
            if t == 0:
                continue
            a, b = runs[four], runs[big]
            smoother = sum(b[j]["hf_fraction"][i] < a[j]["hf_fraction"][i] for j in range(n))
            slower_m = sum(a[j].get("radius_magnitude", [np.nan] * len(at))[i] < b[j].get("radius_magnitude", [np.nan] * len(at))[i]
                           for j in range(n))
            slower_c = sum(a[j]["radius"][i] < b[j]["radius"][i] for j in range(n))
            lines.append(f"- stride 32 vs 4 at step {t}: stride 32 smoother (lower h) in {smoother} of {n} seeds; "
                         f"stride 4's low-error radius smaller than stride 32's in {slower_m} of {n} seeds under |F| "
                         f"and {slower_c} of {n} under the complex error")
    return "\n".join(lines) + "\n"


def plot_all(out: Path, name: str, image: torch.Tensor, keys: Sequence[str], dirs: Mapping[str, str],
             cfg: UpsamplingConfig) -> None:
    """Figures of one seed's runs (``dirs``: each setting's run directory under ``out``): r(t) under
    both errors and h(t) per setting; spectra at init; outputs at the fixed steps side by side."""
    from ..plots import colormap, display_array, subplots
    from .lowfreq_noise import _read_csv

    cmap = colormap("viridis")
    fig, axes = subplots(1, 3, figsize=(17, 4.2))
    for i, k in enumerate(keys):
        rows = _read_csv(out / dirs[k] / "curves.csv")
        steps = [float(r["step"]) for r in rows]
        color = cmap(i / max(len(keys) - 1, 1))
        ls = "-" if k.startswith(cfg.stride_mode) else "--"
        if rows and "radius_magnitude" in rows[0]:
            axes[0].step(steps, [float(r["radius_magnitude"]) for r in rows], where="post", color=color, ls=ls, label=k)
        axes[1].step(steps, [float(r["radius"]) for r in rows], where="post", color=color, ls=ls, label=k)
        axes[2].semilogy(steps, [float(r["hf_fraction"]) for r in rows], color=color, ls=ls, label=k)
    axes[0].set_ylabel(f"low-error radius, |F| error (c/px, τ = {cfg.tau})")
    axes[1].set_ylabel(f"low-error radius, complex error (c/px, τ = {cfg.tau})")
    axes[2].set_ylabel(f"high-frequency power fraction (r > {cfg.hf_cutoff})")
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
    fig.suptitle(f"{name}: low-error radius and high-frequency power over the fit, per upsampling setting")
    fig.tight_layout()
    fig.savefig(out / f"radius-{name}.png", dpi=110)

    fig, ax = subplots(figsize=(7, 4.5))
    for i, k in enumerate(keys):
        data = np.load(out / dirs[k] / "init_spectrum.npz")
        ax.loglog(data["centres"], data["mean_power"], color=cmap(i / max(len(keys) - 1, 1)), label=k)
    ax.set_xlabel("radial frequency (cycles/pixel)")
    ax.set_ylabel("mean power at initialisation")
    ax.set_title(f"{name}: output power spectrum at init (mean of {cfg.init_seeds} seeds)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / f"init-spectra-{name}.png", dpi=110)

    snaps = {k: load_snapshots(out / dirs[k]) for k in keys}
    steps = sorted(set().union(*[set(s) for s in snaps.values()]))
    fig, axes = subplots(len(steps), len(keys) + 1, figsize=(1.9 * (len(keys) + 1), 2.1 * len(steps)),
                             squeeze=False)
    for i, t in enumerate(steps):
        for j, k in enumerate(["clean"] + list(keys)):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            im = image.numpy() if k == "clean" else snaps[k].get(t)
            if im is None:
                ax.axis("off")
                continue
            a = display_array(torch.as_tensor(im))
            ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            if i == 0:
                ax.set_title(k, fontsize=7)
            if j == 0:
                ax.set_ylabel(f"step {t}", fontsize=8)
            elif k != "clean":
                ax.set_xlabel(f"h={spectral.hf_fraction(torch.as_tensor(im), cfg.hf_cutoff):.4f}", fontsize=6)
    fig.suptitle(f"{name}: outputs at the same steps (h = power fraction above {cfg.hf_cutoff} cycles/pixel)")
    fig.tight_layout()
    fig.savefig(out / f"outputs-{name}.png", dpi=90)
