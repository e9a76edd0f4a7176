"""DIP as a Gaussian process at initialisation (Cheng et al., CVPR 2019; the study's prior figure).

Four tasks, each a resumable run directory:

* ``a-conv-relu`` — conv-ReLU nets (3-tap filters, zero padding, 1×1 output) on Gaussian-smoothed
  input of width σ, depth d: the analytic stationarised correlation ``c(τ)`` against the
  empirical one of S random networks of width C;
* ``b-encoder-decoder`` — DIP's 1-D encoder-decoder (LeakyReLU(0.2), skip/down/up channels in
  the ratio 4:128:128, 3-tap filters, zero padding, no BatchNorm) on white input with
  L = 1 … 6 levels, nearest and linear upsampling: ``c(τ)``, half-width vs L, ``S(ω)``; the
  BatchNorm approximation as an analytic-only variant;
* ``c-samples`` — prior samples drawn from the GP and from finite networks, side by side;
* ``d-special-cases`` — the study's special cases: pixel-wise (1×1) and wide (signal-sized)
  weight-shared convolutions, DIP-Linear (dense layers), ReLUNet (coordinate MLP), 3-tap DIP.

The half-width is measured above the correlation's floor (:func:`dipscope.gp.half_width`):
ReLU outputs have a positive mean, so every sample carries a random constant offset and
``c(τ)`` levels off at a floor instead of decaying to 0.

(This module is ~350 lines, at the project's limit: four analyses, each with its figure, and the
``dipscope gp`` command's spec parser and kernel report, which share its measures.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .. import gp
from ..errors import DipscopeError
from ..models import SkipSpec
from ..runs import ExecutorOptions, Task
from ..runs.rundir import write_csv
from .base import Experiment
from .common import PROFILES, fmt, markdown_table

# profile → length n, MC width C, MC samples S, input widths σ, depths d, levels L
SETTINGS: dict[str, dict[str, Any]] = {
    "smoke": dict(n=32, width=8, samples=40, sigmas=(0, 2), depths=(1, 2), levels=(1, 2), lag=16),
    "cpu": dict(n=256, width=64, samples=1000, sigmas=(0, 2, 10, 15, 60), depths=(1, 2, 3, 4),
                levels=(1, 2, 3, 4, 5, 6), lag=64),
    "paper": dict(n=1024, width=256, samples=4000, sigmas=(0, 2, 10, 15, 60), depths=(1, 2, 3, 4),
                  levels=(1, 2, 3, 4, 5, 6, 7), lag=128),
}
ERR_LAG = 16  # the max |Δc| is reported over τ ≤ 16, as in the tests


@dataclass
class GPPriorConfig:
    profile: str = "cpu"
    seed: int = 0
    monte_carlo: bool = True  # False: the analytic kernels only (seconds); MC columns are "–"


def encoder_decoder(levels: int, upsample: str, batchnorm: bool = False, filter_size: int = 3) -> gp.GPSpec:
    """DIP's 1-D encoder-decoder at initialisation (channel ratios of the default skip net)."""
    spec = SkipSpec(channels_down=(128,) * levels, channels_up=(128,) * levels, channels_skip=(4,) * levels,
                    in_channels=None, filter_down=filter_size, filter_up=filter_size, upsample=upsample,  # type: ignore[arg-type]
                    pad="zero", act="leakyrelu", batchnorm=batchnorm, sigmoid=False)
    return gp.from_skip(spec)


def _measure(spec: gp.GPSpec, n: int, s: dict[str, Any], seed: int, mc: bool = True) -> dict[str, Any]:
    """c(τ) (all lags, for the floor and half-width; τ ≤ lag kept), S(ω), and the MC comparison."""
    K = gp.kernel(spec, n)
    full = gp.correlation(gp.stationarize(K))
    c = full[: s["lag"] + 1]
    freqs, S = gp.spectrum(K)
    ac = S[1:]  # without ω = 0: the random constant offset (the floor) lives there
    out: dict[str, Any] = {"c": c, "half_width": gp.half_width(full), "floor": gp.floor_level(full),
                           "low_share": float(ac[freqs[1:] <= 0.1].sum() / ac.sum()), "freqs": freqs, "S": S}
    if mc:
        m = gp.monte_carlo(spec, n, width=s["width"], samples=s["samples"], seed=seed, max_lag=ERR_LAG)
        full_mc = m.c()
        out |= {"c_mc": full_mc[: s["lag"] + 1], "half_width_mc": gp.half_width(full_mc),
                "err": float(np.abs(full_mc - full)[: ERR_LAG + 1].max()), "se": float(m.standard_error().max())}
    else:
        out |= {"c_mc": np.full_like(c, np.nan), "half_width_mc": float("nan"), "err": float("nan"),
                "se": float("nan")}
    return out


def _task_a(s: dict[str, Any], cfg: GPPriorConfig) -> Task:
    def work(d: Path) -> dict[str, Any]:
        from ..plots import colormap, subplots

        rows, res = [], {}
        for sigma in s["sigmas"]:
            for depth in s["depths"]:
                spec = gp.conv_relu(depth, input="smooth" if sigma else "white", input_sigma=float(sigma))
                r = _measure(spec, s["n"], s, cfg.seed, cfg.monte_carlo)
                res[(sigma, depth)] = r
                rows.append({"sigma": sigma, "depth": depth, "half_width": r["half_width"],
                             "half_width_mc": r["half_width_mc"], "floor": r["floor"], "max_abs_dc": r["err"],
                             "se": r["se"]})
        write_csv(d / "table.csv", rows)
        np.savez(d / "curves.npz", **{f"s{k[0]}_d{k[1]}_{w}": v[w] for k, v in res.items() for w in ("c", "c_mc")})
        fig, axes = subplots(1, len(s["sigmas"]), figsize=(3.2 * len(s["sigmas"]), 3.4), sharey=True, squeeze=False)
        tau = np.arange(s["lag"] + 1)
        cmap = colormap("viridis")
        for ax, sigma in zip(axes[0], s["sigmas"]):
            for i, depth in enumerate(s["depths"]):
                col = cmap(i / max(len(s["depths"]) - 1, 1))
                ax.plot(tau, res[(sigma, depth)]["c"], color=col, lw=1.4, label=f"d={depth} GP")
                ax.plot(tau, res[(sigma, depth)]["c_mc"], color=col, lw=0, marker=".", ms=3, label=f"d={depth} MC")
            ax.set_title(f"input σ = {sigma}")
            ax.set_xlabel("lag τ (samples)")
        axes[0, 0].set_ylabel("correlation c(τ)")
        axes[0, -1].legend(fontsize=6, ncol=2)
        fig.suptitle(f"conv-ReLU (3-tap) at init, n={s['n']}: NNGP (lines) vs {s['samples']} nets of width "
                     f"{s['width']} (dots)")
        fig.tight_layout()
        fig.savefig(d / "conv_relu.png", dpi=110)
        return {"rows": rows}

    return Task("a-conv-relu", work, {"part": "a", **s, "seed": cfg.seed, "monte_carlo": cfg.monte_carlo})


def _task_b(s: dict[str, Any], cfg: GPPriorConfig) -> Task:
    def work(d: Path) -> dict[str, Any]:
        from ..plots import colormap, subplots

        n = max(s["n"], 2 ** max(s["levels"]) * 8)  # the deepest map keeps ≥ 8 samples
        rows, res = [], {}
        for mode in ("linear", "nearest"):
            for L in s["levels"]:
                r = _measure(encoder_decoder(L, "bilinear" if mode == "linear" else "nearest"), n, s, cfg.seed,
                             cfg.monte_carlo)
                bn = _measure(encoder_decoder(L, "bilinear" if mode == "linear" else "nearest", True), n, s,
                              cfg.seed, mc=False)
                res[(mode, L)] = r
                rows.append({"upsample": mode, "levels": L, "half_width": r["half_width"],
                             "half_width_mc": r["half_width_mc"], "floor": r["floor"], "low_share": r["low_share"],
                             "max_abs_dc": r["err"], "se": r["se"], "half_width_bn": bn["half_width"],
                             "floor_bn": bn["floor"], "low_share_bn": bn["low_share"]})
        write_csv(d / "table.csv", rows)
        np.savez(d / "curves.npz", freqs=res[("linear", s["levels"][0])]["freqs"],
                 **{f"{k[0]}_L{k[1]}_{w}": v[w] for k, v in res.items() for w in ("c", "c_mc", "S")})
        fig, axes = subplots(2, 3, figsize=(14, 7.5))
        cmap = colormap("viridis")
        tau = np.arange(s["lag"] + 1)
        for row, mode in enumerate(("linear", "nearest")):
            for i, L in enumerate(s["levels"]):
                col = cmap(i / max(len(s["levels"]) - 1, 1))
                r = res[(mode, L)]
                axes[row, 0].plot(tau, r["c"], color=col, label=f"L={L}")
                axes[row, 0].plot(tau, r["c_mc"], color=col, lw=0, marker=".", ms=3)
                axes[row, 1].semilogy(r["freqs"], r["S"], color=col, label=f"L={L}")
            axes[row, 0].set(xlabel="lag τ", ylabel="c(τ)", title=f"{mode} upsampling: c(τ) (dots: MC)")
            axes[row, 1].set(xlabel="frequency (cycles/sample)", ylabel="S(ω) (white = 1)",
                             title=f"{mode} upsampling: power spectrum")
            axes[row, 0].legend(fontsize=7)
            axes[row, 1].legend(fontsize=7)
        for mode, mk in (("linear", "o"), ("nearest", "s")):
            sel = [r for r in rows if r["upsample"] == mode]
            axes[0, 2].plot([r["levels"] for r in sel], [r["half_width"] for r in sel], marker=mk, label=f"{mode} (GP)")
            axes[0, 2].plot([r["levels"] for r in sel], [r["half_width_mc"] for r in sel], marker=mk, ls=":",
                            label=f"{mode} (MC)")
            axes[0, 2].plot([r["levels"] for r in sel], [r["half_width_bn"] for r in sel], marker=mk, ls="--",
                            label=f"{mode} + BN approx. (GP)")
            axes[1, 2].plot([r["levels"] for r in sel], [r["floor"] for r in sel], marker=mk, label=f"{mode}")
            axes[1, 2].plot([r["levels"] for r in sel], [r["floor_bn"] for r in sel], marker=mk, ls="--",
                            label=f"{mode} + BN approx.")
        axes[0, 2].set(xlabel="levels L", ylabel="half-width above floor (samples)", title="correlation half-width")
        axes[0, 2].set_yscale("log", base=2)
        axes[1, 2].set(xlabel="levels L", ylabel="floor of c(τ)", title="long-range correlation (floor)")
        axes[0, 2].legend(fontsize=7)
        axes[1, 2].legend(fontsize=7)
        fig.suptitle(f"DIP encoder-decoder (LeakyReLU, skip 4:128, no BN) at init, white input, n={n}; "
                     f"MC: {s['samples']} nets of width {s['width']}")
        fig.tight_layout()
        fig.savefig(d / "encoder_decoder.png", dpi=110)
        return {"rows": rows, "n": n}

    return Task("b-encoder-decoder", work, {"part": "b", **s, "seed": cfg.seed, "monte_carlo": cfg.monte_carlo})


def _task_c(s: dict[str, Any], cfg: GPPriorConfig) -> Task:
    settings = {"conv-ReLU d=4, σ=10": gp.conv_relu(4, input="smooth", input_sigma=10.0),
                "enc-dec L=4, linear": encoder_decoder(4, "bilinear"),
                "enc-dec L=4, nearest": encoder_decoder(4, "nearest")}

    def work(d: Path) -> dict[str, Any]:
        from ..plots import colormap, subplots

        n = max(s["n"], 64)
        fig, axes = subplots(len(settings), 2, figsize=(12, 2.6 * len(settings)), sharex=True, squeeze=False)
        arrays = {}
        for row, (name, spec) in enumerate(settings.items()):
            prior = gp.sample_prior(gp.kernel(spec, n), 3, seed=cfg.seed)
            nets = gp.network_samples(spec, n, width=s["width"], count=3, seed=cfg.seed)
            arrays[f"{row}_gp"], arrays[f"{row}_net"] = prior, nets
            for ax, draws, what in ((axes[row, 0], prior, "GP prior"), (axes[row, 1], nets, f"nets, C={s['width']}")):
                for f in draws:
                    ax.plot(f / np.sqrt(np.mean(f ** 2)), lw=0.9)
                ax.set_title(f"{name}: {what}", fontsize=9)
        for ax in axes[-1]:
            ax.set_xlabel("position t")
        fig.suptitle("prior samples at initialisation (each scaled to unit RMS): GP (left) vs finite networks (right)")
        fig.tight_layout()
        fig.savefig(d / "samples.png", dpi=110)
        np.savez(d / "samples.npz", **arrays)
        return {"settings": list(settings)}

    return Task("c-samples", work, {"part": "c", **s, "seed": cfg.seed, "monte_carlo": cfg.monte_carlo})


def special_cases(n: int, levels: int = 5) -> dict[str, gp.GPSpec]:
    """The study's special cases as GP specs (depth-4 conv nets; DIP and DIP-Linear with ``levels``)."""
    wide = n + 1 if n % 2 == 0 else n
    return {
        "pixel-wise conv (1×1), d=4": gp.conv_relu(4, size=1),
        "3-tap conv, d=4": gp.conv_relu(4, size=3),
        f"wide conv ({wide}-tap, shared), d=4": gp.conv_relu(4, size=wide),
        f"DIP-Linear ({4 * levels + 1} dense layers)": gp.dense_net(levels),
        "ReLUNet (10 layers on coordinates, σ_b²=0.1)": gp.coord_mlp(10),
        f"DIP 3-tap, L={levels}, linear": encoder_decoder(levels, "bilinear"),
        f"DIP 1×1 filters, L={levels}, linear": encoder_decoder(levels, "bilinear", filter_size=1),
        f"DIP 3-tap, L={levels}, linear, BN approx.": encoder_decoder(levels, "bilinear", batchnorm=True),
    }


def _task_d(s: dict[str, Any], cfg: GPPriorConfig) -> Task:
    def work(d: Path) -> dict[str, Any]:
        from ..plots import colormap, subplots

        n = max(s["n"], 64)
        levels = min(5, max(s["levels"]))
        rows, res = [], {}
        for name, spec in special_cases(n, levels).items():
            r = _measure(spec, n, s, cfg.seed, mc=False)
            res[name] = r
            rows.append({"model": name, "c1": float(r["c"][1]), "c8": float(r["c"][min(8, s["lag"])]),
                         "floor": r["floor"], "half_width": r["half_width"], "low_share": r["low_share"]})
        write_csv(d / "table.csv", rows)
        fig, (ax, bx) = subplots(1, 2, figsize=(13, 4.4))
        cmap = colormap("tab10")
        for i, (name, r) in enumerate(res.items()):
            ax.plot(np.arange(s["lag"] + 1), r["c"], color=cmap(i), label=name)
            bx.semilogy(r["freqs"], np.maximum(r["S"], 1e-12), color=cmap(i), label=name)
        ax.set(xlabel="lag τ", ylabel="c(τ)", title="correlation")
        bx.set(xlabel="frequency (cycles/sample)", ylabel="S(ω) (white = 1)", title="power spectrum")
        ax.legend(fontsize=6)
        fig.suptitle(f"special cases at init (NNGP, white noise input except ReLUNet), n={n}")
        fig.tight_layout()
        fig.savefig(d / "special_cases.png", dpi=110)
        return {"rows": rows}

    return Task("d-special-cases", work, {"part": "d", **s, "seed": cfg.seed, "monte_carlo": cfg.monte_carlo})


class GPPriorExperiment(Experiment):
    """Four analyses of the NNGP kernels at initialisation; no input images."""

    def check(self) -> None:
        if self.cfg.profile not in PROFILES:
            raise DipscopeError(f"unknown profile {self.cfg.profile!r}; choose one of {', '.join(PROFILES)}")

    def inputs(self) -> dict[str, Any]:
        return {}

    def tasks(self, inputs: Mapping[str, Any]) -> list[Task]:
        s, cfg = SETTINGS[self.cfg.profile], self.cfg
        return [_task_a(s, cfg), _task_b(s, cfg), _task_c(s, cfg), _task_d(s, cfg)]

    def report(self, out: Path, inputs: Mapping[str, Any], tasks: Sequence[Task],
               summaries: Mapping[str, dict[str, Any]]) -> str:
        cfg, s = self.cfg, SETTINGS[self.cfg.profile]
        a = summaries["a-conv-relu"]["rows"]
        b = summaries["b-encoder-decoder"]["rows"]
        dd = summaries["d-special-cases"]["rows"]
        text = (f"# gp-prior: DIP at initialisation as a Gaussian process ({cfg.profile} profile)\n\n"
                + (f"MC: {s['samples']} random networks of width {s['width']} (seed {cfg.seed}); max |Δc| over τ ≤ {ERR_LAG}; "
                   if cfg.monte_carlo else "Analytic kernels only (no Monte Carlo); ")
                + "half-width = lag where c(τ) falls halfway from 1 to its floor (min of c over τ ≤ n/2); "
                "low share = share of the non-DC power at ω ≤ 0.1 cycles/sample (white noise: ≈ 0.2).\n\n"
                f"## (a) conv-ReLU, 3-tap, smoothed input (n = {s['n']})\n\n"
                + markdown_table(["σ", "d", "half-width GP", "half-width MC", "floor", "max |Δc|", "SE"],
                                 [[r["sigma"], r["depth"], fmt(r["half_width"]), fmt(r["half_width_mc"]),
                                   f"{r['floor']:.3f}", fmt(r["max_abs_dc"], ".4f"), fmt(r["se"], ".4f")] for r in a])
                + f"\n## (b) encoder-decoder, white input (n = {summaries['b-encoder-decoder']['n']})\n\n"
                + markdown_table(["upsampling", "L", "half-width GP", "half-width MC", "floor", "low share (ω ≤ 0.1)",
                                  "max |Δc|", "SE", "half-width GP+BN", "floor GP+BN"],
                                 [[r["upsample"], r["levels"], fmt(r["half_width"]), fmt(r["half_width_mc"]),
                                   f"{r['floor']:.3f}", f"{r['low_share']:.3f}", fmt(r["max_abs_dc"], ".4f"), fmt(r["se"], ".4f"),
                                   fmt(r["half_width_bn"]), f"{r['floor_bn']:.3f}"] for r in b])
                + "\n## (d) special cases (NNGP only)\n\n"
                + markdown_table(["model", "c(1)", "c(8)", "floor", "half-width", "low share (ω ≤ 0.1)"],
                                 [[r["model"], f"{r['c1']:.3f}", f"{r['c8']:.3f}", f"{r['floor']:.3f}",
                                   fmt(r["half_width"]), f"{r['low_share']:.3f}"] for r in dd]))
        return text


def run(cfg: GPPriorConfig, out: Path, force: bool = False, executor: ExecutorOptions | None = None) -> str:
    """Run (or resume) the four tasks; write ``summary.md``; return it."""
    return GPPriorExperiment(cfg).run(out, force, executor)


def model_spec(text: str) -> gp.GPSpec:
    """A GP spec from the command line.

    ``conv-relu:D[:K]`` (depth D, K-tap filters), ``dense:L`` (DIP-Linear with L levels),
    ``relunet:D``, ``skip:L[:nearest|bilinear]`` (the encoder-decoder of part b), or a SkipSpec
    as JSON (inline or a file path; the keys of :func:`dipscope.models.spec_to_dict`).
    """
    import json

    from ..models import SkipSpec, spec_from_dict

    parts = text.split(":")
    try:
        if parts[0] == "conv-relu":
            return gp.conv_relu(int(parts[1]), size=int(parts[2]) if len(parts) > 2 else 3)
        if parts[0] == "dense":
            return gp.dense_net(int(parts[1]))
        if parts[0] == "relunet":
            return gp.coord_mlp(int(parts[1]))
        if parts[0] == "skip":
            return encoder_decoder(int(parts[1]), parts[2] if len(parts) > 2 else "bilinear")
    except (IndexError, ValueError):
        raise DipscopeError(f"bad model spec {text!r}; e.g. conv-relu:4, conv-relu:4:1, dense:5, relunet:10, skip:5:nearest") from None
    path = Path(text)
    try:
        data = json.loads(path.read_text() if path.is_file() else text)
    except (OSError, ValueError):
        raise DipscopeError(f"model spec {text!r} is neither a shorthand, a JSON file nor inline JSON") from None
    spec = spec_from_dict(data)
    if not isinstance(spec, SkipSpec):
        raise DipscopeError("JSON model specs must describe the skip family; use dense:L or relunet:D for the others")
    return gp.from_skip(spec)


def kernel_report(spec: gp.GPSpec, length: int, max_lag: int = 16, out: Path | None = None) -> str:
    """``c(τ)`` for τ ≤ ``max_lag``, half-width and ``S(ω)`` of ``spec``; CSVs under ``out``."""
    K = gp.kernel(spec, length)
    full = gp.correlation(gp.stationarize(K))
    freqs, S = gp.spectrum(K)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_csv(out / "correlation.csv", [{"tau": t, "c": float(v)} for t, v in enumerate(full)])
        write_csv(out / "spectrum.csv", [{"frequency": float(f), "S": float(v)} for f, v in zip(freqs, S)])
    shown = range(0, min(max_lag, len(full) - 1) + 1)
    step = max(1, len(freqs) // 8)
    return (f"{spec.name}, n = {length}: half-width {gp.half_width(full):.2f} samples above floor "
            f"{gp.floor_level(full):.3f}\n"
            + markdown_table(["τ", *map(str, shown)], [["c(τ)", *[f"{full[t]:.3f}" for t in shown]]])
            + "\n" + markdown_table(["ω", *[f"{f:.3f}" for f in freqs[::step]]], [["S(ω)", *[f"{v:.3g}" for v in S[::step]]]]))
