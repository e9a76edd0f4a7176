"""The study's practical warning — early-stopped DIP is a low-pass filter, so it removes white
noise but not low-frequency noise.

A clean image ``x0`` (by default a crop of Barbara holding her scarf's stripes) gets either
low-frequency Gaussian noise (white noise kept at radial frequencies ``r ≤ f_c``,
:class:`dipscope.physics.LowFreqNoise`, default ``f_c = 1/32`` cycles/pixel) or, as the control,
white Gaussian noise; both have the same std σ (default 25/255, each realisation rescaled to
zero mean and sample std exactly σ, so both noisy inputs have the same PSNR). The noisy target
``y = x0 + n`` is *not* clipped to [0, 1] unless asked (clipping a band-limited ``n`` adds high
frequencies). DIP and ReLUNet are fitted to ``y``; every few steps we record

* the PSNR of the output against ``x0`` (the fit's own metric), hence the best-PSNR *gain*
  over the noisy input, ``max_t PSNR(x_t, x0) − PSNR(y, x0)``;
* the per-band relative error against ``x0`` and against ``y`` (:class:`SpectralObserver`,
  equal-width rings);
* in two bands of interest — the *noise band* ``0 < r ≤ f_c`` (DC left out: an offset cannot be
  told from brightness) and the *texture band*, the ring holding the clean image's stripe
  frequencies, found from ``x0``'s radially averaged spectrum (:func:`dipscope.spectral.texture_band`) — the
  fraction of the noise still not reproduced,
  ``ρ_B(t) = Σ_B |F(x_t − y)|² / Σ_B |F n|²``, and the relative errors
  ``Σ_B |F(x_t − x0)|² / Σ_B |F x0|²`` and ``Σ_B |F(x_t − y)|² / Σ_B |F y|²``.

The noise band counts as *fitted* at the first step with ``ρ_noise < τ`` (at least 1 − τ of
the noise's energy there is reproduced); the texture band at the first step where its relative
error against the target falls below τ (the criterion of the bias experiment).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .. import spectral
from ..callbacks import BandFitObserver, SnapshotSaver, SpectralObserver, load_snapshots
from ..errors import DipscopeError
from ..fit import fit
from ..metrics import psnr
from ..physics import GaussianNoise, LowFreqNoise, Noise
from ..plots import band_heatmap
from ..runs import ExecutorOptions, Task, require_complete, tensor_digest
from ..runs.rundir import write_csv
from .base import Experiment
from .common import crop_side, describe, fit_check, fmt, markdown_table, model_choice

NOISES = ("lowfreq", "white")
# The study's snapshot iterations (Fig. "low-frequency noise"): DIP and ReLUNet.
STUDY_STEPS = {"dip": (20, 100, 500), "relunet": (0, 10_000, 50_000)}


@dataclass
class LowFreqConfig:
    images: Sequence[str] = ()
    models: Sequence[str] = ("dip", "relunet")
    noises: Sequence[str] = NOISES
    profile: str = "cpu"
    sigma: float = 25.0
    fc: float = 1 / 32
    clip: bool = False
    crop: int | None = None
    steps: int | None = None
    tau: float = 0.1
    bands: int = 8
    seed: int = 0
    data_dir: str | None = None
    device: str = "auto"
    recover_divergence: bool = False
    precision: str = "auto"

    @property
    def crop_side(self) -> int | None:
        return crop_side(self.crop, self.profile)


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------


def make_noise(kind: str, sigma: float, fc: float, seed: int) -> Noise:
    """``kind`` = ``lowfreq`` (r ≤ fc) or ``white``, each with sample std exactly ``sigma`` ([0, 1] scale)."""
    if kind == "lowfreq":
        return LowFreqNoise(sigma, fc, seed, exact=True)
    if kind == "white":
        return GaussianNoise(sigma, seed, exact=True)
    raise DipscopeError(f"unknown noise {kind!r}; choose lowfreq or white")


def snapshot_steps(model: str, steps: int, every: int) -> list[int]:
    """The study's snapshot iterations, as they fall in a fit of ``steps`` steps.

    DIP: 0, 20, 100, 500 (those ≤ steps) and the last step. ReLUNet: the study's 0, 10 000,
    50 000 scaled by ``steps / 50 000``. Rounded to multiples of the observation interval.
    """
    if model == "relunet":
        chosen = [s * steps / STUDY_STEPS["relunet"][-1] for s in STUDY_STEPS["relunet"]]
    else:
        chosen = [0] + [s for s in STUDY_STEPS["dip"] if s < steps] + [steps]
    out = sorted({min(int(round(s / every)) * every, steps - steps % every) for s in chosen})
    return out


# --------------------------------------------------------------------------------------------
# tasks
# --------------------------------------------------------------------------------------------


def _fit_config(model: str, cfg: LowFreqConfig):
    spec, config = model_choice(model, cfg.profile, recover=cfg.recover_divergence)
    if model == "dip" and cfg.profile == "paper":
        config = replace(config, steps=2000)  # past the study's 500-step snapshot
    if model == "relunet" and cfg.profile == "paper":
        config = replace(config, steps=STUDY_STEPS["relunet"][-1])
    if cfg.steps is not None:
        config = replace(config, steps=cfg.steps)
    return spec, replace(config, seed=cfg.seed, device=cfg.device, precision=cfg.precision)


def _task(name: str, clean: torch.Tensor, model: str, noise_kind: str, cfg: LowFreqConfig,
          ring: tuple[float, float, float]) -> Task:
    spec, config = _fit_config(model, cfg)
    sigma = cfg.sigma / 255.0

    def work(directory: Path) -> dict[str, Any]:
        model_of_noise = make_noise(noise_kind, sigma, cfg.fc, cfg.seed)
        noise = model_of_noise.sample(clean.shape)
        target = (clean.float() + noise).clamp(0, 1) if cfg.clip else clean.float() + noise
        _, h, w = clean.shape
        r = spectral.radial_frequency(h, w)
        bands = {"noise": (r > 0) & (r <= cfg.fc), "texture": (r > ring[0]) & (r <= ring[2]), "all": r > 0}
        spec_obs = SpectralObserver({"clean": clean, "target": target}, edges=cfg.bands, tau=cfg.tau)
        band_obs = BandFitObserver(clean, target, bands)
        snaps = SnapshotSaver(snapshot_steps(model, config.steps, config.observe_every))
        result = fit(spec, target, config, clean=clean, callbacks=[spec_obs, band_obs, snaps], ssim=False)
        require_complete(result)
        spec_obs.save(directory)
        write_csv(directory / "bands.csv", band_obs.rows)
        snaps.save(directory / "snapshots.npz")
        write_csv(directory / "metrics.csv", [{"step": int(r["step"]), "loss": r["loss"], "psnr": r.get("psnr")}
                                              for r in result.history])
        edges = spec_obs.edges.numpy()
        for ref in ("clean", "target") if cfg.profile != "smoke" else ():  # the smoke profile skips the slow heatmaps
            band_heatmap(spec_obs.table(ref), spec_obs.steps, edges, directory / f"bands-{ref}.png",
                         f"{name}, {model}, {noise_kind} noise: relative error vs {ref} per band", cfg.tau)
        noisy_psnr = psnr(target, clean)
        t_noise = band_obs.first_below("noise/noise_left", cfg.tau)
        t_texture = band_obs.first_below("texture/error_target", cfg.tau)
        last = band_obs.rows[-1]
        return {
            "image": name, "model": model, "noise": noise_kind, "sigma": cfg.sigma, "fc": cfg.fc,
            "clip": cfg.clip, "noise_std": float(noise.std()), "noisy_psnr": noisy_psnr,
            "best_psnr": result.best_psnr, "best_step": result.best_step,
            "gain": None if result.best_psnr is None else result.best_psnr - noisy_psnr,
            "final_psnr": psnr(result.final, clean), "texture_band": list(ring),
            "t_noise_band": t_noise, "t_texture_band": t_texture,
            "t_texture_band_clean": band_obs.first_below("texture/error_clean", cfg.tau),
            "t_all_noise": band_obs.first_below("all/noise_left", cfg.tau),
            "final_noise_left": {k: last[f"{k}/noise_left"] for k in bands},
            "snapshot_steps": sorted(snaps.images), "steps": result.steps_done, "seconds": result.seconds,
            "n_parameters": result.n_parameters, "recoveries": result.recoveries,
        }

    return Task(f"{model}/{name}/{noise_kind}", work, {
        "image": name, "shape": list(clean.shape), "crop": cfg.crop_side, **describe(spec, config),
        "noise": noise_kind, "sigma": cfg.sigma, "fc": cfg.fc, "clip": cfg.clip, "tau": cfg.tau,
        "bands": cfg.bands, "texture_band": list(ring), "noise_seed": cfg.seed}, inputs={"image": tensor_digest(clean)},
        check=lambda: _check(name, spec, clean, config, noise_kind, cfg))


def _check(name: str, spec: Any, clean: torch.Tensor, config: Any, noise_kind: str, cfg: LowFreqConfig) -> None:
    """A task's check before the sweep: the fit can run, and the noise can be drawn at this size."""
    fit_check(name, spec, clean, config, cfg.bands)()
    try:
        make_noise(noise_kind, cfg.sigma / 255.0, cfg.fc, cfg.seed).sample(clean.shape)
    except DipscopeError as e:
        _, h, w = clean.shape
        raise DipscopeError(f"{name} ({h}×{w} px as fitted), {noise_kind} noise: {e}") from None


# --------------------------------------------------------------------------------------------
# run, summary, figures
# --------------------------------------------------------------------------------------------


class LowFreqExperiment(Experiment):
    """Every model on every image, with white and with low-frequency noise of the same σ."""

    default_images = ("set:barbara",)

    def check(self) -> None:
        cfg = self.cfg
        if not 0 < cfg.fc < 0.5:
            raise DipscopeError("--fc must be in (0, 0.5) cycles/pixel")
        if cfg.sigma <= 0:
            raise DipscopeError("--sigma must be > 0")
        for kind in cfg.noises:
            if kind not in NOISES:
                raise DipscopeError(f"unknown noise {kind!r}; choose lowfreq or white")

    def rings(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, tuple[float, float, float]]:
        """Each image's texture band (from its clean spectrum)."""
        return {name: spectral.texture_band(image, min_freq=max(2 * self.cfg.fc, 0.06))
                for name, image in inputs.items()}

    def tasks(self, inputs: Mapping[str, torch.Tensor]) -> list[Task]:
        cfg = self.cfg
        rings = self._rings = self.rings(inputs)  # the report names them too
        return [_task(name, image, model, kind, cfg, rings[name])
                for name, image in inputs.items() for model in cfg.models for kind in cfg.noises]

    def report(self, out: Path, inputs: Mapping[str, torch.Tensor], tasks: Sequence[Task],
               summaries: Mapping[str, dict[str, Any]]) -> str:
        cfg = self.cfg
        for name, image in inputs.items():
            keys = [t.key for t in tasks if summaries[t.key]["image"] == name]
            plot_grid(out, name, image, keys, summaries, cfg)
            plot_psnr(out, name, keys, summaries)
            plot_bandfit(out, name, keys, summaries, cfg.tau)
        rows, csv_rows = [], []
        for task in tasks:
            s = summaries[task.key]
            rows.append([s["model"], s["image"], s["noise"], fmt(s["noisy_psnr"]), fmt(s["best_psnr"]),
                         fmt(s["best_step"]), fmt(s["gain"]), fmt(s["final_psnr"]), fmt(s["t_noise_band"]),
                         fmt(s["t_texture_band"]), fmt(s["final_noise_left"]["noise"]),
                         fmt(s["final_noise_left"]["all"])])
            csv_rows.append({k: s[k] for k in ("model", "image", "noise", "noisy_psnr", "best_psnr", "best_step", "gain",
                                               "final_psnr", "t_noise_band", "t_texture_band", "t_texture_band_clean",
                                               "t_all_noise", "steps", "seconds")}
                            | {"texture_low": s["texture_band"][0], "texture_peak": s["texture_band"][1],
                               "texture_high": s["texture_band"][2],
                               "noise_left_noise_band": s["final_noise_left"]["noise"],
                               "noise_left_all": s["final_noise_left"]["all"]})
        write_csv(out / "summary.csv", csv_rows)
        gains = []
        for model in cfg.models:
            for name in inputs:
                g = {s["noise"]: s["gain"] for s in summaries.values() if s["model"] == model and s["image"] == name}
                if "white" in g and "lowfreq" in g:
                    gains.append([model, name, fmt(g["white"]), fmt(g["lowfreq"]), fmt(g["white"] - g["lowfreq"])])
        ring_text = "; ".join(f"{n}: {lo:.3f}–{hi:.3f} (peak {pk:.3f})" for n, (lo, pk, hi) in self._rings.items())
        text = (f"# Low-frequency vs white noise ({cfg.profile} profile)\n\n"
                f"σ = {cfg.sigma:g}/255 (both noises, each rescaled to sample std exactly σ), f_c = {cfg.fc:.4f} "
                f"cycles/pixel, {'clipped' if cfg.clip else 'not clipped'}; crop {cfg.crop_side or 'none'}; τ = {cfg.tau}. "
                f"Texture band (from the clean spectrum): {ring_text}. "
                "t_noise = first step at which less than τ of the noise energy in 0 < r ≤ f_c is left unfitted; "
                "t_texture = first step at which the texture band's relative error vs the target is below τ "
                "('–' = not within the run).\n\n"
                + markdown_table(["model", "image", "noise", "noisy PSNR", "best PSNR", "best step", "gain (dB)",
                                  "final PSNR", "t_noise", "t_texture", "noise left (noise band)",
                                  "noise left (all r>0)"], rows)
                + "\n" + markdown_table(["model", "image", "gain white (dB)", "gain low-freq (dB)", "difference"], gains))
        return text


def run(cfg: LowFreqConfig, out: Path, force: bool = False, executor: ExecutorOptions | None = None) -> str:
    """Run (or resume) the experiment; write ``summary.md``/``summary.csv`` and figures."""
    return LowFreqExperiment(cfg).run(out, force, executor)


def plot_grid(out: Path, name: str, clean: torch.Tensor, keys: Sequence[str], summaries: dict[str, Any],
              cfg: LowFreqConfig) -> None:
    """Rows: (model, noise); columns: clean, noisy, then the outputs at the snapshot steps."""
    from ..plots import colormap, display_array, subplots

    rows = []
    for key in keys:
        snaps = load_snapshots(out / key)
        if snaps:
            rows.append((key, summaries[key], snaps))
    if not rows:
        return
    ncol = 2 + max(len(s) for _, _, s in rows)
    fig, axes = subplots(len(rows), ncol, figsize=(2.1 * ncol, 2.3 * len(rows)), squeeze=False)
    for i, (key, s, snaps) in enumerate(rows):
        noisy = make_noise(s["noise"], cfg.sigma / 255.0, cfg.fc, cfg.seed)(clean, clip=cfg.clip)
        panels = [("clean", clean), (f"noisy {psnr(noisy, clean):.1f} dB", noisy)]
        panels += [(f"step {t}: {psnr(torch.from_numpy(im), clean):.1f} dB", im) for t, im in sorted(snaps.items())]
        for j in range(ncol):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= len(panels):
                ax.axis("off")
                continue
            label, im = panels[j]
            a = display_array(torch.as_tensor(im))
            ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
            ax.set_xlabel(label, fontsize=7)
            if j == 0:
                ax.set_ylabel(f"{s['model']}\n{s['noise']}", fontsize=8)
    fig.suptitle(f"{name} ({tuple(clean.shape[1:])}), σ = {cfg.sigma:g}/255, f_c = {cfg.fc:.4f}: outputs over the fit")
    fig.tight_layout()
    fig.savefig(out / f"grid-{name}.png", dpi=90)


def plot_psnr(out: Path, name: str, keys: Sequence[str], summaries: dict[str, Any]) -> None:
    """PSNR against the clean image over steps (one curve per model and noise; relative step
    axis, since ReLUNet runs longer), noisy input as dashed lines."""
    from ..plots import colormap, subplots

    fig, ax = subplots(figsize=(7.5, 4.2))
    styles = {"lowfreq": "-", "white": "--"}
    cmap = colormap("tab10")
    models = sorted({summaries[k]["model"] for k in keys})
    for key in keys:
        s = summaries[key]
        rows = [r for r in _read_csv(out / key / "metrics.csv") if r["psnr"] not in ("", None)]
        steps = np.array([float(r["step"]) for r in rows])
        values = np.array([float(r["psnr"]) for r in rows])
        color = cmap(models.index(s["model"]))
        ax.plot(steps / max(s["steps"], 1), values, styles.get(s["noise"], "-"), color=color, lw=1.2,
                label=f"{s['model']}, {s['noise']} (best {s['best_psnr']:.2f} dB at {s['best_step']})")
    noisy = {summaries[k]["noise"]: summaries[k]["noisy_psnr"] for k in keys}
    for kind, v in noisy.items():
        ax.axhline(v, color="grey", lw=0.8, ls=":", label=f"noisy input ({kind}) {v:.2f} dB")
    ax.set_xlabel("step / steps of the run (DIP and ReLUNet differ in length)")
    ax.set_ylabel("PSNR vs clean (dB)")
    ax.set_title(f"{name}: PSNR over the fit, low-frequency vs white noise")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / f"psnr-{name}.png", dpi=110)


def plot_bandfit(out: Path, name: str, keys: Sequence[str], summaries: dict[str, Any], tau: float) -> None:
    """Noise left unfitted in the noise band, and the texture band's error vs the target."""
    from ..plots import colormap, subplots

    fig, axes = subplots(1, 2, figsize=(12, 4.2))
    cmap = colormap("tab10")
    for i, key in enumerate(keys):
        s = summaries[key]
        rows = _read_csv(out / key / "bands.csv")
        steps = np.array([float(r["step"]) for r in rows])
        label = f"{s['model']}, {s['noise']}"
        axes[0].semilogy(steps, [float(r["noise/noise_left"]) for r in rows], color=cmap(i), label=label)
        axes[1].semilogy(steps, [float(r["texture/error_target"]) for r in rows], color=cmap(i), label=label)
    for ax, what in zip(axes, ["noise energy left unfitted, 0 < r ≤ f_c", "texture band: relative error vs target"]):
        ax.axhline(tau, color="k", lw=0.8, ls=":", label=f"τ = {tau}")
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlim(left=0)
        ax.set_xlabel("step")
        ax.set_ylabel(what)
        ax.legend(fontsize=7)
    fig.suptitle(f"{name}: when the noise band and the texture band are fitted")
    fig.tight_layout()
    fig.savefig(out / f"bands-{name}.png", dpi=110)


def _read_csv(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))
