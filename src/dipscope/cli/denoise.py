"""``dipscope denoise``, ``dipscope restore`` and ``dipscope demo``: one image, one run directory."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from .. import interrupts
from ..callbacks import ProgressBar
from ..stopping import DEFAULT_RULE, RULES
from ..tasks import RESULT_FILES
from .base import Command, Layout, Model, Precision, Preset, Task, app, with_options

if TYPE_CHECKING:
    from .request import Saved


def _preset_defaults(attr: str) -> str:
    """Each preset's default of a fit setting, for --help (e.g. 'ulyanov2018 3000; chakrabarty2019 1000')."""
    from ..presets import PRESETS, preset

    parts = []
    for name in PRESETS:
        dip, mlp = getattr(preset(name, "skip")[1], attr), getattr(preset(name, "relunet")[1], attr)
        parts.append(f"{name} {dip:g}" + (f" (relunet {mlp:g})" if mlp != dip else ""))
    return "; ".join(parts)


def _layout(layout: str) -> Optional[bool]:
    return None if layout == "auto" else layout == "channels-last"


_FIT = "Fit"
#: The options of the fit that ``denoise`` and ``restore`` share, declared once.
FIT_OPTIONS: list[tuple[str, Any, Any]] = [
    ("preset", Optional[Preset], typer.Option(None, rich_help_panel=_FIT, help="Named settings: dipscope (ours: ulyanov2018 with a 48-channel trunk, 3 runs averaged) or those of a reference implementation (default: the task's; denoise dipscope, deblur ulyanov2018, inpaint ulyanov2018-inpaint, superres ulyanov2018-superres).")),
    ("model", Model, typer.Option(Model("skip"), rich_help_panel=_FIT, help="skip (DIP), linear (DIP-Linear) or relunet (coordinate MLP).")),
    ("steps", Optional[int], typer.Option(None, rich_help_panel=_FIT, help=f"Maximum number of Adam steps (default: the preset's, {_preset_defaults('steps')}); the fit may stop earlier, see --stop.")),
    ("stop", str, typer.Option("auto", rich_help_panel=_FIT, help=f"Early stopping: auto (the default rule, {DEFAULT_RULE}, where the measurement is noisy — denoising, noisy or given deblurring; none for inpainting, super-resolution and noiseless deblurring), none (run all --steps), or a rule: {', '.join(RULES)}.")),
    ("stop_sigma", Optional[float], typer.Option(None, rich_help_panel=_FIT, help="Noise std (0–255) the stopping rule assumes; default: estimated from the measurement.")),
    ("lr", Optional[float], typer.Option(None, rich_help_panel=_FIT, help=f"Adam's learning rate (default: the preset's, {_preset_defaults('lr')}).")),
    ("levels", Optional[int], typer.Option(None, rich_help_panel=_FIT, help="Number of encoder-decoder levels (fewer for small images; skip and linear models).")),
    ("width", Optional[int], typer.Option(None, rich_help_panel=_FIT, help="Width N of DIP-Linear-N (--model linear only; default 128).")),
    ("device", str, typer.Option("auto", rich_help_panel=_FIT, help="auto (cuda → mps → cpu), cpu, cuda[:i] or mps.")),
    ("precision", Precision, typer.Option(Precision("auto"), rich_help_panel=_FIT, help="auto (bf16 where the hardware has it), fp32, bf16 or fp64.")),
    ("layout", Layout, typer.Option(Layout("auto"), rich_help_panel=_FIT, help="Memory layout of activations (auto: the faster one here).")),
    ("compile", bool, typer.Option(False, "--compile/--no-compile", rich_help_panel=_FIT, help="torch.compile the network (slower on small CPUs).")),
    ("cuda_graph", bool, typer.Option(False, "--cuda-graph/--no-cuda-graph", rich_help_panel=_FIT, help="Capture the training step once as a CUDA graph and replay it (CUDA only; fast path).")),
    ("fast", bool, typer.Option(True, "--fast/--no-fast", rich_help_panel=_FIT, help="Exact speed tweaks: fused Adam; TF32 and cuDNN autotuning on CUDA.")),
    ("reference", bool, typer.Option(False, "--reference", rich_help_panel=_FIT, help="The original implementation's execution: --precision fp32 --layout nchw --no-compile --no-fast --no-cuda-graph.")),
    ("seed", int, typer.Option(0, rich_help_panel=_FIT, help="Seed of the network, its input and the added noise (or dropped pixels).")),
    ("runs", Optional[int], typer.Option(None, rich_help_panel=_FIT, help="Fit this many seeds (seed, seed+1, …) and return the mean of their stopped outputs (the DIP paper's averaging; R times the steps). Default: the preset's (dipscope 3, the reference presets 1; 1 for linear and relunet).")),
    ("spectra", bool, typer.Option(False, "--spectra", rich_help_panel=_FIT, help="Record the per-band error of the output against the clean image over the fit (spectral.csv, spectrum.png).")),
    ("force", bool, typer.Option(False, "--force", rich_help_panel=_FIT, help="Replace an existing dipscope run directory, only once the new run is complete (an interrupted run is written beside it).")),
]


def _request_fields(given: dict[str, Any]) -> dict[str, Any]:
    """The fit options as :class:`~dipscope.cli.request.RestoreRequest` fields."""
    if given.pop("reference"):
        from ..fit import REFERENCE_MODE as ref

        given.update(precision=ref["precision"], layout="channels-last" if ref["channels_last"] else "nchw",
                     compile=ref["compile"], fast=ref["fast"], cuda_graph=False)
    precision, layout, width = given.pop("precision"), given.pop("layout"), given.pop("width")
    overrides = {"compile": given.pop("compile"), "fast": given.pop("fast"), "cuda_graph": given.pop("cuda_graph")}
    return {**given, "linear_width": width, "precision": None if precision == "auto" else precision,
            "channels_last": _layout(layout), "overrides": overrides}


with_fit_options = with_options(FIT_OPTIONS, "fit", _request_fields)


@app.command(cls=Command)
@with_fit_options
def denoise(
    image: Path = typer.Argument(..., metavar="IMAGE", help="The image to denoise (PNG, JPEG or TIFF; grey or colour)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory to create (must not hold a run, unless --force)."),
    sigma: Optional[float] = typer.Option(None, help="Add Gaussian noise of this std (0–255 scale) to IMAGE, seeded; default 25 unless --noisy."),
    noisy: bool = typer.Option(False, "--noisy", help="IMAGE is already noisy: fit it as it is."),
    clean: Optional[Path] = typer.Option(None, help="Clean reference for a --noisy image: adds PSNR/SSIM and best.png."),
    fit: Any = None,
) -> None:
    """Denoise IMAGE with the Deep Image Prior and write a run directory (result: denoised.png)."""
    from .request import RestoreRequest, run

    request = RestoreRequest(image=image, out=out, sigma=sigma, noisy=noisy, clean=clean, **fit)
    _finish(run(request, callbacks=[ProgressBar(f"{request.model} {image.name}")]))


@app.command(cls=Command)
@with_fit_options
def restore(
    image: Path = typer.Argument(..., metavar="IMAGE", help="The image: clean (degraded here, seeded) unless --measured; for superres the low-resolution input."),
    task: Task = typer.Option(..., help="inpaint, superres or deblur (denoise: as dipscope denoise)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory to create (must not hold a run, unless --force)."),
    mask: Optional[Path] = typer.Option(None, help="inpaint: mask image of IMAGE's size, white = known pixel."),
    drop: Optional[float] = typer.Option(None, help="inpaint: drop this fraction of pixel values at random (seeded; the original paper's Bernoulli mask)."),
    factor: Optional[int] = typer.Option(None, help="superres: the magnification, even (2, 4, 8); the forward model is the original DIP's Lanczos-2 shrink."),
    kernel: Optional[str] = typer.Option(None, help="deblur: the blur, gaussian:STD (pixels) or box:SIZE (odd)."),
    sigma: Optional[float] = typer.Option(None, help="Add Gaussian noise of this std (0–255 scale) to the measurement (default: none; denoise: 25)."),
    measured: bool = typer.Option(False, "--measured", help="IMAGE is already the measurement (masked, blurred): fit it as it is."),
    clean: Optional[Path] = typer.Option(None, help="Clean reference for a --measured or superres input (for superres: the high-resolution image): adds PSNR/SSIM and best.png."),
    fit: Any = None,
) -> None:
    """Restore IMAGE with the Deep Image Prior — inpainting, super-resolution or deblurring — and
    write a run directory (result: restored.png; the tasks are described in dipscope.tasks)."""
    from .request import RestoreRequest, run

    request = RestoreRequest(image=image, out=out, task=task.value, mask=mask, drop=drop, factor=factor,
                             kernel=kernel, sigma=sigma, noisy=measured, clean=clean, **fit)
    _finish(run(request, callbacks=[ProgressBar(f"{task.value} {image.name}")]))


@app.command(cls=Command)
def demo(
    out: Path = typer.Option(Path("demo-output"), "--out", "-o", help="Run directory to create."),
    steps: int = typer.Option(2000, help="Maximum Adam steps; the default stopping rule ends the fit before (at "
                                         "about 1 000 steps on this crop)."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier demo output."),
) -> None:
    """Denoise a 128×128 crop of scikit-image's bundled 'astronaut' (σ = 25) with every default:
    each run of the default preset stops by itself (the default rule) and denoised.png is their
    mean."""
    import time

    import numpy as np
    from skimage import data

    from ..metrics import psnr
    from ..plots import image_row
    from ..restoration import add_noise, denoise
    from ..runs.rundir import RunWriter
    from .request import Saved

    start = time.perf_counter()
    writer = RunWriter(out, force=force)  # refuses an existing run before any work
    clean = data.astronaut()[30:158, 170:298]
    r = denoise(add_noise(clean, 25.0, seed=0), clean=clean, steps=steps, seed=0,
                callbacks=[ProgressBar("DIP demo (astronaut crop)")])
    kept = writer.out if r.interrupted and writer.holds_something() else None
    saved = r.save(writer)
    final = r.results[0].final
    image_row([r.clean, r.measurement, r.tensor, final],
              ["clean", f"noisy σ=25: {psnr(r.measurement, r.clean):.2f} dB",
               f"denoised.png (step {r.stopping['step']}): {r.psnr:.2f} dB",
               f"{'run 0: ' if len(r.results) > 1 else ''}last output (step {r.results[0].steps_done}): "
               f"{psnr(final, r.clean):.2f} dB"],
              saved / "comparison.png", "dipscope demo: Deep Image Prior denoising, stopped by the default rule"
              + (f" (mean of {len(r.results)} runs)" if len(r.results) > 1 else ""))
    _finish(Saved(r, saved, kept))
    print(f"demo: denoised.png {r.psnr:.2f} dB (noisy {psnr(r.measurement, r.clean):.2f} dB) in "
          f"{time.perf_counter() - start:.0f} s; see {saved / 'comparison.png'}")


def _finish(saved: "Saved") -> None:
    """Print what a run made; exit 130/143 if a signal interrupted it."""
    r = saved.restoration
    _report(saved.out, r.results[0])
    _report_stop(r.stopping, RESULT_FILES.get(r.task, "restored.png"))
    if r.interrupted:
        where = f"; the finished run in {saved.kept} is unchanged" if saved.kept else ""
        which = f" of run {len(r.results) - 1}" if len(r.results) > 1 else ""
        print(f"interrupted by {interrupts.name()} at step {r.results[-1].steps_done}{which}: the outputs reached are "
              f"in {saved.out}{where}", file=sys.stderr)
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


def _report_stop(s: dict, result_file: str = "denoised.png") -> None:
    if not s:
        return
    how = f"rule {s['rule']}" if s.get("rule") else "no early stopping"
    line = f"{result_file}: {s['source']} at step {s['step']} of at most {s['max_steps']} ({how}"
    if s.get("rule"):
        if s.get("interrupted"):
            line += ", interrupted before the rule stopped the fit"
        else:
            line += ", stopped early" if s.get("stopped_early") else ", ran to the maximum"
        line += f", σ {'given' if s.get('sigma_given') else 'estimated'} {s['sigma_255']:.1f}"
    line += ")"
    if s.get("result_psnr") is not None:
        line += f"; PSNR {s['result_psnr']:.2f} dB"
    print(line)
    for k, run in enumerate(s.get("runs", [])):
        psnr = f"; PSNR {run['result_psnr']:.2f} dB" if run.get("result_psnr") is not None else ""
        print(f"  run {k} (seed {s['seeds'][k]}): {run['source']} at step {run['step']}{psnr}")
