"""Early-stopping benchmark: every rule of ``dipscope.stopping`` on the same recorded fits.

Each run (image, σ, seed) is fitted ONCE with the ``ulyanov2018`` preset (``--preset``); at every observation
(every 10 steps) the script records the statistics the rules read (:class:`dipscope.stopping.Probe`:
residuals, per-band residual spectra of output and EMA, Shi et al.'s blur and sharpness, the
windowed and exponential variances), the PSNR of the output and of its EMA against the clean
image, and a uint8 snapshot of the output every ``--snapshot-every`` steps. One ``.npz`` + ``.json``
per run under ``OUT/runs/`` (written atomically), so a killed sweep resumes where it stopped.
Rules are then evaluated offline on the recordings (:func:`dipscope.stopping.replay`): adding a
rule does not mean refitting.

Images: ``set:cbm3d9`` (the 9 CBM3D images, ×4 ``study`` downsampling, from ``--data-dir`` or
$DIPSCOPE_DATA) and ``set:skimage`` (scikit-image's bundled colour images astronaut, coffee,
chelsea, rocket, downsampled to a short side near 128 — a disjoint set nothing was tuned on);
single images as ``cbm3d9:house`` or ``skimage:coffee``.

Usage
-----
Full (GPU)::

    python benchmarks/stopping.py --device cuda --out OUT
    python benchmarks/stopping.py --report --out OUT --md benchmarks/STOPPING.md

Reduced (CPU)::

    python benchmarks/stopping.py --images cbm3d9:house,cbm3d9:f16 --sigmas 25 --seeds 1 \\
        --steps 1200 --crop 64 --out OUT
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from dipscope import stopping as S
from dipscope.fit import Callback, FitState, fit_runs
from dipscope.physics import GaussianNoise, downsample
from dipscope.presets import PRESETS, preset

CBM3D9 = ("baboon", "f16", "house", "kodim01", "kodim02", "kodim03", "kodim12", "lena", "peppers")
SKIMAGE = ("astronaut", "coffee", "chelsea", "rocket")
# The study's published DIP column (σ = 25, ×4), oracle best snapshot.
PUBLISHED = {"baboon": 24.73, "f16": 27.00, "house": 26.89, "kodim01": 25.90, "kodim02": 29.20,
             "kodim03": 29.26, "kodim12": 29.61, "lena": 27.49, "peppers": 27.12}
PUBLISHED_MEAN = 27.47
NOISE_SEED = 1000  # one noise realisation per (image, σ); the seeds vary the network
SCALARS = ("loss", "mse", "mse_ema", "blur", "sharp", "wmv", "emv")


# ---------------------------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------------------------


def parse_images(spec: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for item in [s.strip() for s in spec.split(",") if s.strip()]:
        if item == "set:cbm3d9":
            out += [("cbm3d9", n) for n in CBM3D9]
        elif item == "set:skimage":
            out += [("skimage", n) for n in SKIMAGE]
        elif ":" in item and item.split(":", 1)[0] in ("cbm3d9", "skimage"):
            kind, name = item.split(":", 1)
            if name not in (CBM3D9 if kind == "cbm3d9" else SKIMAGE):
                raise SystemExit(f"unknown image {item}")
            out.append((kind, name))
        else:
            raise SystemExit(f"unknown image spec {item!r}: use set:cbm3d9, set:skimage, cbm3d9:NAME, skimage:NAME")
    return out


def load_clean(kind: str, name: str, data_dir: str | None, crop: int | None) -> tuple[torch.Tensor, str]:
    """The clean image as the benchmark fits it, and a description of how it was made."""
    if kind == "cbm3d9":
        from dipscope import datasets

        image = datasets.load("cbm3d9", data_dir)[name] if name else None
        assert image is not None
        img = downsample(image, 4, "study")
        how = "cbm3d9 ×4 study"
    else:
        from skimage import data

        arr = getattr(data, name)().astype(np.float32) / 255.0
        image = torch.from_numpy(np.moveaxis(arr, -1, 0).copy())
        factor = max(1, round(min(image.shape[-2:]) / 128))
        img = downsample(image, factor, "study")
        how = f"skimage ×{factor} study"
    if crop:
        h, w = img.shape[-2:]
        ch, cw = min(crop, h), min(crop, w)
        top, left = (h - ch) // 2, (w - cw) // 2
        if (ch, cw) != (h, w):
            img = img[:, top:top + ch, left:left + cw].contiguous()
            how += f", centre crop {ch}×{cw}"
    return img, how


# ---------------------------------------------------------------------------------------------
# recording
# ---------------------------------------------------------------------------------------------


class Recorder(Callback):
    """Records every feature of :class:`~dipscope.stopping.Probe` and the PSNRs at each observation."""

    def __init__(self, target: torch.Tensor, context: S.Context, snapshot_every: int) -> None:
        self.probe = S.Probe(target, context)
        self.rows: list[S.Observation] = []
        self.psnr: list[float] = []
        self.psnr_ema: list[float] = []
        self.snapshot_every = snapshot_every
        self.snapshots: list[np.ndarray] = []
        self.snapshot_steps: list[int] = []

    def observe(self, state: FitState) -> None:
        self.rows.append(self.probe(state.step, state.output, state.ema, state.loss))
        self.psnr.append(state.metrics.get("psnr", math.nan))
        self.psnr_ema.append(state.metrics.get("psnr_ema", math.nan))
        if self.snapshot_every and state.step % self.snapshot_every == 0:
            out = state.output.detach().float().clamp(0, 1).cpu().numpy()
            self.snapshots.append(np.round(out * 255).astype(np.uint8))
            self.snapshot_steps.append(state.step)


def run_name(kind: str, name: str, sigma: float, seed: int) -> str:
    return f"{kind}-{name}-s{sigma:g}-seed{seed}"


def record_runs(kind: str, name: str, sigma: float, seeds: list[int], args: argparse.Namespace, runs: Path) -> None:
    """Fit the runs of one (image, σ) not yet recorded — one noisy image (noise seed 1000), one
    network seed per run — and write each run's recording. On CUDA the seeds are fitted together
    as one grouped network (:func:`dipscope.fit.fit_runs`; exact), which removes launch overhead."""
    kept = {s: runs / f"{run_name(kind, name, sigma, s)}.json" for s in seeds}
    kept = {s: rec for s, rec in kept.items() if rec.is_file() and not args.force}
    for rec in kept.values():
        if json.loads(rec.read_text()).get("preset", "ulyanov2018") != args.preset:
            raise SystemExit(f"error: {rec} was recorded with another preset than {args.preset!r}; "
                             "use another --out folder")
    todo = [s for s in seeds if s not in kept]
    if not todo:
        return
    clean, how = load_clean(kind, name, args.data_dir, args.crop)
    noisy = GaussianNoise(sigma / 255, NOISE_SEED)(clean, clip=True)
    spec, config = preset(args.preset)
    config = replace(config, steps=args.steps, device=args.device, precision=args.precision)
    context = S.Context.from_target(noisy)  # sigma estimated (default estimator); the given one is stored beside it
    estimates = {f"sigma_{m}": S.estimate_sigma(noisy, m) for m in S.SIGMA_ESTIMATORS}  # for each rule's variants
    recs = [Recorder(noisy, context, args.snapshot_every) for _ in todo]
    t0 = time.perf_counter()
    results = fit_runs(spec, noisy, config, seeds=todo, clean=clean, callbacks=[[r] for r in recs], ssim=False,
                       group=None if args.group else False)
    seconds = time.perf_counter() - t0
    if any(r.interrupted for r in results):
        raise KeyboardInterrupt
    for seed, rec, result in zip(todo, recs, results):
        stem = run_name(kind, name, sigma, seed)
        arrays: dict[str, np.ndarray] = {
            "steps": np.asarray([o.step for o in rec.rows]),
            "psnr": np.asarray(rec.psnr), "psnr_ema": np.asarray(rec.psnr_ema),
            "res_band": np.stack([o.res_band for o in rec.rows]),
            "res_band_ema": np.stack([o.res_band_ema if o.res_band_ema is not None
                                      else np.full_like(o.res_band, np.nan) for o in rec.rows]),
            "snapshot_steps": np.asarray(rec.snapshot_steps),
            "snapshots": np.stack(rec.snapshots) if rec.snapshots else np.zeros((0,), np.uint8),
            "losses": result.losses.astype(np.float32),
        }
        for key in SCALARS:
            arrays[key] = np.asarray([getattr(o, key) for o in rec.rows])
        meta = {
            "kind": kind, "image": name, "how": how, "shape": list(clean.shape), "sigma": sigma, "seed": seed,
            "noise_seed": NOISE_SEED, "preset": args.preset, "steps": args.steps,
            "fit": asdict(replace(config, seed=seed)), "context": context.to_dict(),
            "seconds": seconds / len(todo), "seconds_call": seconds, "runs_in_call": len(todo),
            "grouped": result.grouped, "seconds_fit": result.seconds, "device": result.device,
            "precision": result.precision, "host": socket.gethostname(),
            "best_psnr": result.best_psnr, "best_step": result.best_step, **estimates,
        }
        tmp = runs / f".{stem}.tmp.npz"
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, runs / f"{stem}.npz")
        tmpj = runs / f".{stem}.tmp.json"
        tmpj.write_text(json.dumps(meta, indent=1))
        os.replace(tmpj, runs / f"{stem}.json")  # the json is written last: it marks the run complete
        print(f"{stem}: {clean.shape[1]}×{clean.shape[2]}, best {result.best_psnr:.2f} dB at {result.best_step}, "
              f"σ̂ = {255 * context.sigma_estimated:.1f}, {seconds / len(todo):.0f} s/run "
              f"({len(todo)} run(s), grouped {result.grouped})", flush=True)


# ---------------------------------------------------------------------------------------------
# offline evaluation
# ---------------------------------------------------------------------------------------------


@dataclass
class Run:
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @property
    def observations(self) -> list[S.Observation]:
        a = self.arrays
        return [S.Observation(step=int(s), res_band=a["res_band"][i], res_band_ema=a["res_band_ema"][i],
                              **{k: float(a[k][i]) for k in SCALARS})
                for i, s in enumerate(a["steps"])]


def load_runs(out: Path) -> list[Run]:
    runs = []
    for j in sorted((out / "runs").glob("*.json")):
        npz = j.with_suffix(".npz")
        if not npz.is_file():
            continue
        with np.load(npz) as f:
            arrays = {k: f[k] for k in f.files if k != "snapshots"}
        runs.append(Run(json.loads(j.read_text()), arrays))
    return runs


# name → (rule factory, σ: "given", or estimated by "wavelet" or "pca"); each is evaluated returning the output
# and the EMA. A name without "σ known" or "σ PCA" uses the wavelet estimate (the default until 2026-12-02).
VARIANTS: dict[str, tuple[Callable[[], S.Rule], str]] = {
    "wmv": (lambda: S.WMVRule(), "wavelet"),
    "emv": (lambda: S.EMVRule(), "wavelet"),
    "shi": (lambda: S.ShiRule(), "wavelet"),
    "discrepancy": (lambda: S.DiscrepancyRule(), "wavelet"),
    "discrepancy σ known": (lambda: S.DiscrepancyRule(), "given"),
    "discrepancy on EMA": (lambda: S.DiscrepancyRule(on="ema"), "wavelet"),
    "spectral": (lambda: S.SpectralRule(), "wavelet"),
    "spectral σ known": (lambda: S.SpectralRule(), "given"),
    "spectral on EMA": (lambda: S.SpectralRule(on="ema"), "wavelet"),
}
for _lag in (100, 200, 300):
    VARIANTS[f"discrepancy-lag {_lag}"] = (lambda d=_lag: S.LaggedDiscrepancyRule(delay=d), "wavelet")
    VARIANTS[f"discrepancy-lag {_lag} σ known"] = (lambda d=_lag: S.LaggedDiscrepancyRule(delay=d), "given")
    VARIANTS[f"spectral-lag {_lag}"] = (lambda d=_lag: S.LaggedSpectralRule(delay=d), "wavelet")
    VARIANTS[f"spectral-lag {_lag} σ known"] = (lambda d=_lag: S.LaggedSpectralRule(delay=d), "given")
for _lag in (200, 300):  # σ estimated from the patch covariance instead of the finest wavelet band
    VARIANTS[f"discrepancy-lag {_lag} σ PCA"] = (lambda d=_lag: S.LaggedDiscrepancyRule(delay=d), "pca")
    VARIANTS[f"spectral-lag {_lag} σ PCA"] = (lambda d=_lag: S.LaggedSpectralRule(delay=d), "pca")
for _factor in (1.5, 2.0, 2.5):
    VARIANTS[f"discrepancy-scaled ×{_factor:g}"] = (lambda f=_factor: S.ScaledDiscrepancyRule(factor=f), "wavelet")
    VARIANTS[f"discrepancy-scaled ×{_factor:g} σ known"] = (lambda f=_factor: S.ScaledDiscrepancyRule(factor=f), "given")
    VARIANTS[f"spectral-scaled ×{_factor:g}"] = (lambda f=_factor: S.ScaledSpectralRule(factor=f), "wavelet")
    VARIANTS[f"spectral-scaled ×{_factor:g} σ known"] = (lambda f=_factor: S.ScaledSpectralRule(factor=f), "given")


class _Final(S.Rule):
    name = "none (last step)"

    def update(self, obs: S.Observation) -> bool:
        self.candidate = obs.step
        return False


def sigma_of(run: Run, mode: str) -> float | None:
    """The noise level (0–1 scale) a rule variant sees: the given one, or a recorded estimate
    (older recordings kept only the wavelet one in their context, and the PCA one beside it)."""
    if mode == "given":
        return run.meta["sigma"] / 255.0
    ctx = run.meta["context"]
    if ctx.get("estimator", "wavelet") == mode:
        return ctx["sigma_estimated"]
    return run.meta.get(f"sigma_{mode}")


def evaluate(run: Run, factory: Callable[[], S.Rule], sigma_mode: str) -> dict[str, float]:
    a = run.arrays
    sigma = sigma_of(run, sigma_mode)
    if sigma is None:
        return {k: math.nan for k in ("step", "output", "ema", "oracle", "oracle_output")} | {"stopped": False}
    ctx = S.Context.from_dict(run.meta["context"]).with_sigma(sigma)
    chosen, stopped = S.replay(factory(), ctx, run.observations)
    i = int(np.searchsorted(a["steps"], chosen))
    oracle = float(np.nanmax(np.maximum(a["psnr"], np.nan_to_num(a["psnr_ema"], nan=-np.inf))))
    return {"step": chosen, "stopped": stopped is not None, "output": float(a["psnr"][i]),
            "ema": float(a["psnr_ema"][i]), "oracle": oracle, "oracle_output": float(np.nanmax(a["psnr"]))}


def report(out: Path, md: Path | None, title: str, note: str) -> str:
    runs = load_runs(out)
    if not runs:
        raise SystemExit(f"no finished runs under {out / 'runs'}")
    variants = dict(VARIANTS)
    variants["none (last step)"] = (_Final, "wavelet")
    results = {v: [evaluate(r, f, m) for r in runs] for v, (f, m) in variants.items()}
    sets = sorted({r.meta["kind"] for r in runs})
    sigmas = sorted({r.meta["sigma"] for r in runs})
    steps = sorted({r.meta["steps"] for r in runs})
    shapes = sorted({"×".join(map(str, r.meta["shape"][1:])) for r in runs})
    seconds = [r.meta["seconds"] for r in runs]
    counts = ", ".join(f"{s}: {sum(r.meta['kind'] == s for r in runs)}" for s in sets)
    devices = sorted({str(r.meta["device"].get("name", r.meta["device"])) for r in runs})
    lines = [f"# {title}", "", note, "",
             f"Runs: {len(runs)} ({counts}); "
             f"σ ∈ {{{', '.join(f'{s:g}' for s in sigmas)}}}; seeds {sorted({r.meta['seed'] for r in runs})}; "
             f"max steps {', '.join(map(str, steps))}; sizes {', '.join(shapes)}; device {', '.join(devices)}; "
             f"{statistics.mean(seconds):.0f} s per run on average ({sum(seconds) / 60:.1f} min in all).", "",
             "Every rule sees the same recorded fits (observations every 10 steps). *returned* = PSNR of the "
             "image the rule returns (the raw output, or the EMA of the outputs at the same step); *oracle* = "
             "best PSNR over all observed steps of the same run, output or EMA (chosen with the clean image); "
             "*gap* = oracle − returned (EMA); *worst* = largest gap of any run; *step* = mean chosen step; "
             "*stops* = runs the rule stopped before the maximum.", ""]
    for kind in sets:
        for sigma in sigmas:
            idx = [i for i, r in enumerate(runs) if r.meta["kind"] == kind and r.meta["sigma"] == sigma]
            if not idx:
                continue
            lines += [f"## {kind}, σ = {sigma:g} ({len(idx)} runs)", "",
                      "| rule | returned output (dB) | returned EMA (dB) | oracle (dB) | mean gap EMA | worst gap EMA "
                      "| mean gap output | step | stops |", "|---|---|---|---|---|---|---|---|---|"]
            for v in variants:
                rs = [results[v][i] for i in idx]
                ge = [r["oracle"] - r["ema"] for r in rs]
                go = [r["oracle"] - r["output"] for r in rs]
                lines.append(f"| {v} | {_m([r['output'] for r in rs])} | {_m([r['ema'] for r in rs])} | "
                             f"{_m([r['oracle'] for r in rs])} | {_m(ge)} | {max(ge):.2f} | {_m(go)} | "
                             f"{statistics.mean(r['step'] for r in rs):.0f} | {sum(r['stopped'] for r in rs)}/{len(rs)} |")
            lines.append("")
    default = f"{S.DEFAULT_RULE} {S.DEFAULT_LAG}" if S.DEFAULT_RULE.endswith("-lag") else S.DEFAULT_RULE
    default += " σ PCA" if S.DEFAULT_SIGMA_ESTIMATOR == "pca" else ""
    for kind in sets:
        idx = [i for i, r in enumerate(runs) if r.meta["kind"] == kind and r.meta["sigma"] == 25]
        if not idx:
            continue
        lines += [f"## Per image, {kind}, σ = 25: default rule `{default}` (EMA returned), mean over seeds", "",
                  "| image | size | σ̂ | returned EMA (dB) | step | oracle (dB) | oracle output only (dB) | gap | "
                  "study's DIP (oracle) |", "|---|---|---|---|---|---|---|---|---|"]
        names = sorted({runs[i].meta["image"] for i in idx}, key=lambda n: (CBM3D9 + SKIMAGE).index(n))
        ours = []
        for n in names:
            ii = [i for i in idx if runs[i].meta["image"] == n]
            rs = [results[default][i] for i in ii]
            ours.append(statistics.mean(r["ema"] for r in rs))
            est = statistics.mean(255 * sigma_of(runs[i], S.DEFAULT_SIGMA_ESTIMATOR) for i in ii)
            cropped = "crop" in runs[ii[0]].meta["how"]
            pub = "— (a crop)" if cropped else (f"{PUBLISHED[n]:.2f}" if kind == "cbm3d9" and n in PUBLISHED else "—")
            lines.append(f"| {n} | {'×'.join(map(str, runs[ii[0]].meta['shape'][1:]))} | {est:.1f} | "
                         f"{ours[-1]:.2f} | {statistics.mean(r['step'] for r in rs):.0f} | "
                         f"{_m([r['oracle'] for r in rs])} | {_m([r['oracle_output'] for r in rs])} | "
                         f"{_m([r['oracle'] - r['ema'] for r in rs])} | {pub} |")
        pub_mean = "—" if kind != "cbm3d9" or any("crop" in runs[i].meta["how"] for i in idx) else (
            f"{PUBLISHED_MEAN:.2f}" if len(names) == 9 else
            f"{statistics.mean(PUBLISHED[n] for n in names):.2f} (these {len(names)} images)")
        lines += [f"| **mean** | | | **{statistics.mean(ours):.2f}** | | | | | {pub_mean} |", ""]
    text = "\n".join(lines) + "\n"
    if md is not None:
        md.write_text(text)
    return text


def _m(values: list[float]) -> str:
    return f"{statistics.mean(values):.2f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="folder of the recordings (runs/ inside)")
    p.add_argument("--images", default="set:cbm3d9,set:skimage")
    p.add_argument("--sigmas", default="15,25,50")
    p.add_argument("--preset", default="ulyanov2018", choices=PRESETS,
                   help="the fit's preset (recordings of different presets belong in different --out folders)")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--crop", type=int, default=None, help="centre-crop each (downsampled) image to at most N×N")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", help="auto (bf16 where native), fp32 or bf16")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--data-dir", default=None, help="folder of cbm3d9 (else $DIPSCOPE_DATA)")
    p.add_argument("--snapshot-every", type=int, default=250, help="keep a uint8 output every N steps (0: none)")
    p.add_argument("--force", action="store_true", help="refit runs that are already recorded")
    p.add_argument("--group", action=argparse.BooleanOptionalAction, default=True,
                   help="fit the seeds of one (image, σ) together as one grouped network on CUDA (default on)")
    p.add_argument("--report", action="store_true", help="only evaluate the recorded runs and write the table")
    p.add_argument("--md", type=Path, default=None, help="write the Markdown table here (default OUT/STOPPING.md)")
    p.add_argument("--title", default="Early stopping benchmark")
    p.add_argument("--note", default="")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    md = args.md or args.out / "STOPPING.md"
    if not args.report:
        runs = args.out / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        todo = [(k, n, float(s)) for (k, n) in parse_images(args.images) for s in args.sigmas.split(",")]
        for i, (k, n, s) in enumerate(todo):
            print(f"[{i + 1}/{len(todo)}] ", end="", flush=True)
            record_runs(k, n, s, list(range(args.seeds)), args, runs)
        print("", flush=True)
    print(report(args.out, md, args.title, args.note))


if __name__ == "__main__":
    sys.exit(main())
