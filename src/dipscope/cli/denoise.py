"""``dipscope denoise`` and ``dipscope demo``: one image, one run directory."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from .. import interrupts
from ..callbacks import ProgressBar
from ..stopping import DEFAULT_RULE, RULES
from .base import Command, Layout, Model, Precision, Preset, app


def _preset_defaults(attr: str) -> str:
    """Each preset's default of a fit setting, for --help (e.g. 'ulyanov2018 3000; chakrabarty2019 1000')."""
    from ..presets import PRESETS, preset

    parts = []
    for name in PRESETS:
        dip, mlp = getattr(preset(name, "skip")[1], attr), getattr(preset(name, "relunet")[1], attr)
        parts.append(f"{name} {dip:g}" + (f" (relunet {mlp:g})" if mlp != dip else ""))
    return "; ".join(parts)


def _layout(layout: Layout) -> Optional[bool]:
    return None if layout.value == "auto" else layout.value == "channels-last"


@app.command(cls=Command)
def denoise(
    image: Path = typer.Argument(..., metavar="IMAGE", help="The image to denoise (PNG, JPEG or TIFF; grey or colour)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory to create (must not hold a run, unless --force)."),
    sigma: Optional[float] = typer.Option(None, help="Add Gaussian noise of this std (0–255 scale) to IMAGE, seeded; default 25 unless --noisy."),
    noisy: bool = typer.Option(False, "--noisy", help="IMAGE is already noisy: fit it as it is."),
    clean: Optional[Path] = typer.Option(None, help="Clean reference for a --noisy image: adds PSNR/SSIM and best.png."),
    preset: Preset = typer.Option(Preset("ulyanov2018"), help="Settings of a reference implementation."),
    model: Model = typer.Option(Model("skip"), help="skip (DIP), linear (DIP-Linear) or relunet (coordinate MLP)."),
    steps: Optional[int] = typer.Option(None, help=f"Maximum number of Adam steps (default: the preset's, {_preset_defaults('steps')}); the fit may stop earlier, see --stop."),
    stop: str = typer.Option("auto", help=f"Early stopping: auto (the default rule, {DEFAULT_RULE}), none (run all --steps), or a rule: {', '.join(RULES)}."),
    stop_sigma: Optional[float] = typer.Option(None, help="Noise std (0–255) the stopping rule assumes; default: estimated from the noisy image."),
    lr: Optional[float] = typer.Option(None, help=f"Adam's learning rate (default: the preset's, {_preset_defaults('lr')})."),
    levels: Optional[int] = typer.Option(None, help="Number of encoder-decoder levels (fewer for small images; skip and linear models)."),
    width: Optional[int] = typer.Option(None, help="Width N of DIP-Linear-N (--model linear only; default 128)."),
    device: str = typer.Option("auto", help="auto (cuda → mps → cpu), cpu, cuda[:i] or mps."),
    precision: Precision = typer.Option(Precision("auto"), help="auto (bf16 where the hardware has it), fp32, bf16 or fp64."),
    layout: Layout = typer.Option(Layout("auto"), help="Memory layout of activations (auto: the faster one here)."),
    compile: bool = typer.Option(False, "--compile/--no-compile", help="torch.compile the network (slower on small CPUs)."),
    fast: bool = typer.Option(True, "--fast/--no-fast", help="Exact speed tweaks: fused Adam; TF32 and cuDNN autotuning on CUDA."),
    reference: bool = typer.Option(False, "--reference", help="The original implementation's execution: --precision fp32 --layout nchw --no-compile --no-fast."),
    seed: int = typer.Option(0, help="Seed of the network, its input and the added noise."),
    runs: int = typer.Option(1, help="Fit this many seeds (seed, seed+1, …) and return the mean of their stopped "
                                     "outputs (the DIP paper's averaging; R times the time)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing dipscope run directory, only once the new run is complete (an interrupted run is written beside it)."),
) -> None:
    """Denoise IMAGE with the Deep Image Prior and write a run directory (result: denoised.png)."""
    from ..restore import DenoiseRequest
    from ..restore import denoise as run_denoise

    if reference:
        precision, layout, compile, fast = Precision("fp32"), Layout("nchw"), False, False
    request = DenoiseRequest(
        image=image, out=out, sigma=sigma, noisy=noisy, clean=clean, preset=preset.value,
        model=model.value, steps=steps, lr=lr, levels=levels, linear_width=width, device=device,
        precision=None if precision.value == "auto" else precision.value,
        channels_last=_layout(layout), seed=seed, force=force,
        overrides={"compile": compile, "fast": fast}, stop=stop, stop_sigma=stop_sigma, runs=runs,
    )
    _finish(run_denoise(request, callbacks=[ProgressBar(f"{model.value} {image.name}")]))


@app.command(cls=Command)
def demo(
    out: Path = typer.Option(Path("demo-output"), "--out", "-o", help="Run directory to create."),
    steps: int = typer.Option(300, help="Adam steps (300 take about 2 minutes on 2 CPU cores)."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier demo output."),
) -> None:
    """Denoise a 128×128 crop of scikit-image's bundled 'astronaut' (σ = 25) in a few minutes on a CPU."""
    import numpy as np
    from skimage import data

    from ..images import read_image, write_image
    from ..metrics import psnr
    from ..plots import image_row
    from ..restore import DenoiseRequest
    from ..restore import denoise as run_denoise

    crop = data.astronaut()[30:158, 170:298].astype(np.float32) / 255.0
    out.parent.mkdir(parents=True, exist_ok=True)
    source = out.parent / f".{out.name}-clean.png"
    write_image(source, crop)
    request = DenoiseRequest(image=source, out=out, sigma=25.0, steps=steps, force=force)
    try:
        run = run_denoise(request, callbacks=[ProgressBar("DIP demo (astronaut crop)")])
        clean = read_image(source)
    finally:
        source.unlink(missing_ok=True)
    out_dir, result = run.out, run.result
    noisy = read_image(out_dir / "noisy.png")
    # Show the final output and its EMA: early in a fit the EMA still lags behind the output.
    outputs = [("final output", result.final)] + ([("EMA", result.ema)] if result.ema is not None else [])
    image_row(
        [clean, noisy] + [image for _, image in outputs],
        ["clean", f"noisy σ=25: {psnr(noisy, clean):.2f} dB"]
        + [f"DIP {name}, {result.steps_done} steps: {psnr(image, clean):.2f} dB" for name, image in outputs],
        out_dir / "comparison.png", "dipscope demo: Deep Image Prior denoising",
    )
    _finish(run)


def _finish(run: object) -> None:
    """Print what a denoising run made; exit 130/143 if a signal interrupted it."""
    from ..restore import DenoiseRun

    assert isinstance(run, DenoiseRun)
    _report(run.out, run.result)
    _report_stop(run.stopping)
    if run.stopping.get("interrupted"):
        where = f"; the finished run in {run.kept} is unchanged" if run.kept else ""
        last = run.results[-1] if run.results else run.result
        which = f" of run {len(run.results) - 1}" if len(run.results) > 1 else ""
        print(f"interrupted by {interrupts.name()} at step {last.steps_done}{which}: the outputs reached are in "
              f"{run.out}{where}", file=sys.stderr)
        sys.exit(interrupts.exit_code())


def _report(out_dir: Path, result: object) -> None:
    from ..fit import FitResult

    assert isinstance(result, FitResult)
    s = result.summary()
    line = f"wrote {out_dir}: {s['steps_done']} steps in {s['seconds']:.1f} s ({1000 * s['seconds_per_step']:.0f} ms/step, {result.precision})"
    if s["final_psnr"] is not None:
        line += f"; PSNR final {s['final_psnr']:.2f} dB"
        if s["ema_psnr"] is not None:
            line += f", EMA {s['ema_psnr']:.2f} dB"
        line += f", best {s['best_psnr']:.2f} dB at step {s['best_step']}"
    if result.interrupted:
        line += " (interrupted: outputs are those reached)"
    print(line)


def _report_stop(s: dict) -> None:
    if not s:
        return
    how = f"rule {s['rule']}" if s.get("rule") else "no early stopping"
    line = f"denoised.png: {s['source']} at step {s['step']} of at most {s['max_steps']} ({how}"
    if s.get("rule"):
        if s.get("interrupted"):
            line += ", interrupted before the rule stopped the fit"
        else:
            line += ", stopped early" if s.get("stopped_early") else ", ran to the maximum"
        line += f", σ {'given' if s.get('sigma_given') else 'estimated'} {s['sigma_255']:.1f}"
    line += ")"
    if s.get("denoised_psnr") is not None:
        line += f"; PSNR {s['denoised_psnr']:.2f} dB"
    print(line)
    for k, run in enumerate(s.get("runs", [])):
        psnr = f"; PSNR {run['denoised_psnr']:.2f} dB" if run.get("denoised_psnr") is not None else ""
        print(f"  run {k} (seed {s['seeds'][k]}): {run['source']} at step {run['step']}{psnr}")
