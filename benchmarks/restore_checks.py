"""Reference checks of ``dipscope restore`` against the classical methods (issue 18).

On centre-ish crops of scikit-image's bundled photographs (no download; HR sides a multiple
of 32):

* **super-resolution ×4** — the low-resolution input is the HR crop shrunk with Pillow's
  ``LANCZOS`` (as the original notebook's ``load_LR_HR_imgs_sr``), rounded to 8 bits; DIP is
  ``dipscope restore LR --task superres --factor 4 --clean HR --spectra`` with the
  ``ulyanov2018-superres`` preset; baselines: bicubic and Lanczos-3 upsampling. The per-band
  table gives, for the bands below and above the low-resolution Nyquist limit
  (0.5 / 4 = 0.125 cycles per HR pixel), the energy of each result relative to the clean image's
  (``Σ_B |F x|² / Σ_B |F x0|²``: 0 = nothing there, 1 = as much as the truth) and its relative
  error;
* **inpainting, 50 % of the values dropped** (``--drop 0.5``, seeded) — DIP with the
  ``ulyanov2018-inpaint`` preset against scikit-image's biharmonic fill;
* **deblurring** (``gaussian:1.6``, σ = 5, one image) — DIP with the default stop against
  scikit-image's unsupervised Wiener deconvolution.

Usage: python benchmarks/restore_checks.py --out results/restore [--size 128] [--sr-steps N]
       [--inpaint-steps N] [--deblur-steps N] [--quick]
Finished runs are kept and reused (the check resumes); ``--report-only`` rebuilds the README.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data

from dipscope import spectral
from dipscope.baselines import biharmonic_fill, upsample, wiener_deblur
from dipscope.images import read_image
from dipscope.metrics import psnr
from dipscope.physics import Mask, parse_blur
from dipscope.plots import image_row
from dipscope.restoration import restore
from dipscope.runs.rundir import read_record
from dipscope.tasks import measure
from dipscope.runtime import machine

# name: (loader, relative position of the crop's top-left corner)
IMAGES = {"astronaut": (data.astronaut, (0.10, 0.35)), "coffee": (data.coffee, (0.25, 0.30)),
          "chelsea": (data.chelsea, (0.20, 0.40))}
FACTOR = 4
NYQUIST_LR = 0.5 / FACTOR


def crop(name: str, size: int) -> np.ndarray:
    loader, (fy, fx) = IMAGES[name]
    a = loader()
    y, x = int(fy * a.shape[0]), int(fx * a.shape[1])
    return a[y:y + size, x:x + size, :3]


def make_inputs(out: Path, names: list[str], size: int) -> None:
    """HR crops and their ×4 Lanczos-shrunk LR versions, as 8-bit PNGs under ``out/inputs``."""
    (out / "inputs").mkdir(parents=True, exist_ok=True)
    for name in names:
        hr = Image.fromarray(crop(name, size))
        hr.save(out / "inputs" / f"{name}-hr.png")
        hr.resize((size // FACTOR, size // FACTOR), Image.Resampling.LANCZOS).save(out / "inputs" / f"{name}-lr-x4.png")


def fit_once(out: Path, task: str, image: Path, clean: Path | None = None, *, sigma: float | None = None,
             factor: int | None = None, drop: float | None = None, kernel: str | None = None, **fit) -> dict:
    """:func:`dipscope.restore` of ``task`` on ``image`` (degraded as ``dipscope restore`` does,
    seed 0) into ``out``, unless ``out`` already holds a finished run; returns its run.json."""
    record = read_record(out)
    if record is None or record.get("status") != "complete":
        m = measure(task, read_image(image), given=task == "superres", clean_path=clean, sigma=sigma, noise_seed=0,
                    drop=drop, factor=factor, kernel=kernel)
        r = restore(m.target, m.operator, clean=m.clean, noisy=m.noisy,
                    record={"image": {"path": str(image)}, "degradation": m.record}, **fit)
        r.save(out, force=record is not None)
        record = read_record(out)
    return record


def band_energy(image: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
    """Energy relative to the clean image's, and relative error, below and above the LR Nyquist."""
    f = spectral.radial_frequency(*clean.shape[-2:])
    out = {}
    for band, mask in (("low", f <= NYQUIST_LR), ("high", f > NYQUIST_LR)):
        p_x = spectral.power_spectrum(image.double()).sum(0)[mask].sum()
        p_0 = spectral.power_spectrum(clean.double()).sum(0)[mask].sum()
        p_e = spectral.power_spectrum((image - clean).double()).sum(0)[mask].sum()
        out[f"{band}_energy"], out[f"{band}_error"] = float(p_x / p_0), float(p_e / p_0)
    return out


def run(args: argparse.Namespace) -> None:
    out, names = args.out, args.images.split(",")
    make_inputs(out, names, args.size)
    common = dict(device="cpu", settings={"precision": args.precision}, seed=0)
    for name in names:  # every super-resolution first, then inpainting, then the one deblurring
        hr, lr = out / "inputs" / f"{name}-hr.png", out / "inputs" / f"{name}-lr-x4.png"
        fit_once(out / "runs" / f"superres-{name}", "superres", lr, hr, factor=FACTOR, spectra=True,
                 steps=args.sr_steps, **common)
    for name in names:
        fit_once(out / "runs" / f"inpaint-{name}", "inpaint", out / "inputs" / f"{name}-hr.png", drop=0.5,
                 steps=args.inpaint_steps, **common)
    name = names[0]
    fit_once(out / "runs" / f"deblur-{name}", "deblur", out / "inputs" / f"{name}-hr.png", kernel="gaussian:1.6",
             sigma=5.0, steps=args.deblur_steps, **common)


def _fmt(x: float) -> str:
    return f"{x:.2f}"


def report(args: argparse.Namespace) -> str:
    out, names = args.out, args.images.split(",")
    runs = out / "runs"
    lines = ["# dipscope restore: reference checks", "",
             f"Made by `python benchmarks/restore_checks.py {args.command_line}` on {machine()} "
             f"(Python {platform.python_version()}). PSNR in dB against the clean HR crop; every DIP number is "
             "one seed (0); `time` is the fit's wall-clock.", ""]
    # super-resolution
    sr_rows, band_rows = [], []
    for name in names:
        rec = read_record(runs / f"superres-{name}")
        if rec is None:
            continue
        hr = read_image(out / "inputs" / f"{name}-hr.png")
        lr = read_image(out / "inputs" / f"{name}-lr-x4.png")
        dip = read_image(runs / f"superres-{name}" / "restored.png")
        best = read_image(runs / f"superres-{name}" / "best.png")
        bic, lan = upsample(lr, FACTOR, "bicubic"), upsample(lr, FACTOR, "lanczos")
        r = rec["result"]
        sr_rows.append(f"| {name} | {_fmt(psnr(dip, hr))} (step {rec['stopping']['step']}) | "
                       f"{_fmt(r['best_psnr'])} (step {r['best_step']}) | {_fmt(psnr(bic, hr))} | {_fmt(psnr(lan, hr))} | "
                       f"{psnr(dip, hr) - psnr(bic, hr):+.2f} | {r['seconds']:.0f} s, {r['precision']} |")
        for label, img in (("DIP (last step)", dip), ("DIP (best step)", best), ("bicubic", bic), ("Lanczos-3", lan)):
            e = band_energy(img, hr)
            band_rows.append(f"| {name} | {label} | {e['low_energy']:.3f} | {e['low_error']:.4f} | "
                             f"{e['high_energy']:.3f} | {e['high_error']:.3f} |")
        if name == names[0]:
            image_row([_nearest(lr), dip, bic, hr],
                      [f"input {lr.shape[-1]}×{lr.shape[-2]} (nearest ×4)", f"DIP {psnr(dip, hr):.2f} dB",
                       f"bicubic {psnr(bic, hr):.2f} dB", "clean"], out / "superres.png",
                      f"super-resolution ×4, {name}")
    spectra = runs / f"superres-{names[0]}" / "spectral.npz"
    if spectra.is_file():
        band_curves(np.load(spectra), out / "superres-bands.png", names[0])
    if sr_rows:
        lines += ["## Super-resolution ×4", "",
                  "| image | DIP: restored.png | DIP: best step (oracle) | bicubic | Lanczos-3 | DIP − bicubic | time |",
                  "|---|---|---|---|---|---|---|", *sr_rows, "",
                  f"Per band, below and above the low-resolution Nyquist limit ({NYQUIST_LR} cycles per HR pixel): "
                  "energy relative to the clean image's and relative error.", "",
                  "| image | result | energy ≤ 0.125 | error ≤ 0.125 | energy > 0.125 | error > 0.125 |",
                  "|---|---|---|---|---|---|", *band_rows, "", "![super-resolution](superres.png)", "",
                  f"Per-band relative error of DIP's output against the clean HR image over the fit ({names[0]}; "
                  f"rings of width 1/16 cycle per pixel; dashed: above the LR Nyquist limit {NYQUIST_LR}, which the "
                  "low-resolution data do not determine):", "", "![per-band error](superres-bands.png)", ""]
    # inpainting
    rows = []
    for name in names:
        rec = read_record(runs / f"inpaint-{name}")
        if rec is None:
            continue
        hr = read_image(out / "inputs" / f"{name}-hr.png")
        known = Mask.random(hr.shape, 0.5, rec["degradation"]["mask_seed"]).mask
        dip = read_image(runs / f"inpaint-{name}" / "restored.png")
        fill = biharmonic_fill(hr * known, known)
        r = rec["result"]
        rows.append(f"| {name} | {_fmt(psnr(hr * known, hr))} | {_fmt(psnr(dip, hr))} | {_fmt(r['best_psnr'])} "
                    f"(step {r['best_step']}) | {_fmt(psnr(fill, hr))} | {psnr(dip, hr) - psnr(fill, hr):+.2f} | "
                    f"{r['seconds']:.0f} s, {r['precision']} |")
        if name == names[0]:
            image_row([hr * known, dip, fill, hr], ["input (50 % dropped)", f"DIP {psnr(dip, hr):.2f} dB",
                                                      f"biharmonic {psnr(fill, hr):.2f} dB", "clean"],
                      out / "inpaint.png", f"inpainting, 50 % of values dropped, {name}")
    if rows:
        lines += ["## Inpainting, 50 % of the values dropped", "",
                  "| image | input | DIP: restored.png | DIP: best step (oracle) | biharmonic | DIP − biharmonic | time |",
                  "|---|---|---|---|---|---|---|", *rows, "", "![inpainting](inpaint.png)", ""]
    # deblurring
    rec = read_record(runs / f"deblur-{names[0]}")
    if rec is not None:
        hr = read_image(out / "inputs" / f"{names[0]}-hr.png")
        blurred = read_image(runs / f"deblur-{names[0]}" / "blurred.png")
        dip = read_image(runs / f"deblur-{names[0]}" / "restored.png")
        wiener = wiener_deblur(blurred, parse_blur("gaussian:1.6")[2])
        s, r = rec["stopping"], rec["result"]
        lines += ["## Deblurring (gaussian:1.6, σ = 5)", "",
                  "| image | blurred input | DIP: restored.png | DIP: best step (oracle) | unsupervised Wiener | time |",
                  "|---|---|---|---|---|---|",
                  f"| {names[0]} | {_fmt(psnr(blurred, hr))} | {_fmt(psnr(dip, hr))} (step {s['step']}, {s['rule']}) | "
                  f"{_fmt(r['best_psnr'])} (step {r['best_step']}) | {_fmt(psnr(wiener, hr))} | "
                  f"{r['seconds']:.0f} s, {r['precision']} |", "", "![deblurring](deblur.png)", ""]
        image_row([blurred, dip, wiener, hr], [f"blurred + noise {psnr(blurred, hr):.2f} dB",
                                               f"DIP {psnr(dip, hr):.2f} dB", f"Wiener {psnr(wiener, hr):.2f} dB",
                                               "clean"], out / "deblur.png", f"deblurring, gaussian:1.6, σ = 5, {names[0]}")
    text = "\n".join(lines) + "\n"
    (out / "checks.md").write_text(text)
    return text


def band_curves(arrays: np.lib.npyio.NpzFile, path: Path, name: str) -> None:
    """e_k(t) of every ring, solid below the LR Nyquist limit and dashed above it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, edges, errors = arrays["steps"], arrays["edges"], arrays["errors/clean"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    cmap = plt.get_cmap("plasma")
    k = errors.shape[1] - 1
    for i in range(k):
        above = edges[i] >= NYQUIST_LR - 1e-9
        ax.semilogy(steps, errors[:, i], color=cmap(i / max(k, 1)), ls="--" if above else "-",
                    label=f"{edges[i]:.3f}–{edges[i + 1]:.3f}" + (" (above LR Nyquist)" if above else ""))
    ax.axhline(1.0, color="k", lw=0.7, ls=":")
    ax.set_xlabel("step")
    ax.set_ylabel("relative error e_k against the clean HR image")
    ax.set_title(f"super-resolution ×{FACTOR}, {name}: which bands DIP fills, and how well")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _nearest(lr: torch.Tensor) -> torch.Tensor:
    return lr.repeat_interleave(FACTOR, -2).repeat_interleave(FACTOR, -1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/restore"))
    parser.add_argument("--images", default=",".join(IMAGES))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--sr-steps", type=int, default=None, help="default: the preset's (2000)")
    parser.add_argument("--inpaint-steps", type=int, default=None, help="default: the preset's (6001)")
    parser.add_argument("--deblur-steps", type=int, default=None, help="default: the preset's maximum (3000)")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--quick", action="store_true", help="64×64 crops and 20 steps each: a smoke run")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    args.command_line = " ".join(sys.argv[1:])
    if args.quick:
        args.size, args.sr_steps, args.inpaint_steps, args.deblur_steps = 64, 20, 20, 20
    if not args.report_only:
        run(args)
    print(report(args))


if __name__ == "__main__":
    main()
