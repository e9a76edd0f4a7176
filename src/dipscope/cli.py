"""The ``dipscope`` command line.

Every user error (bad path, unreadable image, impossible configuration) prints one line
``error: …`` on stderr and exits with status 2; the commands never show a traceback for them.
"""

from __future__ import annotations

import re
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from typer.core import TyperCommand

from .callbacks import ProgressBar
from .errors import DipscopeError
from .stopping import DEFAULT_RULE, RULES


class Command(TyperCommand):
    """A command whose usage line names arguments plainly (``IMAGE``, ``[IMAGES]...``, not
    ``{image}``) and whose flags (``--force``, ``--help``) show no value placeholder: they take none."""

    def collect_usage_pieces(self, ctx):  # type: ignore[no-untyped-def]
        pieces = super().collect_usage_pieces(ctx)
        return [re.sub(r"^\{(.+)\}", lambda m: m.group(1).upper(), re.sub(r"^\[(\w+)\]", lambda m: f"[{m.group(1).upper()}]", p))
                if p != "[OPTIONS]" else p for p in pieces]

    def get_params(self, ctx):  # type: ignore[no-untyped-def]
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False):
                param.metavar = ""
        return params


app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Run the Deep Image Prior fast, and measure its spectral bias.",
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


class Model(str, Enum):
    skip = "skip"
    linear = "linear"
    relunet = "relunet"


class Preset(str, Enum):
    ulyanov2018 = "ulyanov2018"
    chakrabarty2019 = "chakrabarty2019"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp64 = "fp64"


class Layout(str, Enum):
    auto = "auto"
    nchw = "nchw"
    channels_last = "channels-last"


def _preset_defaults(attr: str) -> str:
    """Each preset's default of a fit setting, for --help (e.g. 'ulyanov2018 3000; chakrabarty2019 1000')."""
    from .presets import PRESETS, preset

    parts = []
    for name in PRESETS:
        dip, mlp = getattr(preset(name, "skip")[1], attr), getattr(preset(name, "relunet")[1], attr)
        parts.append(f"{name} {dip:g}" + (f" (relunet {mlp:g})" if mlp != dip else ""))
    return "; ".join(parts)


def _layout(layout: Layout) -> Optional[bool]:
    return None if layout is Layout.auto else layout is Layout.channels_last


@app.command(cls=Command)
def denoise(
    image: Path = typer.Argument(..., metavar="IMAGE", help="The image to denoise (PNG, JPEG or TIFF; grey or colour)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory to create (must not hold a run, unless --force)."),
    sigma: Optional[float] = typer.Option(None, help="Add Gaussian noise of this std (0–255 scale) to IMAGE, seeded; default 25 unless --noisy."),
    noisy: bool = typer.Option(False, "--noisy", help="IMAGE is already noisy: fit it as it is."),
    clean: Optional[Path] = typer.Option(None, help="Clean reference for a --noisy image: adds PSNR/SSIM and best.png."),
    preset: Preset = typer.Option(Preset.ulyanov2018, help="Settings of a reference implementation."),
    model: Model = typer.Option(Model.skip, help="skip (DIP), linear (DIP-Linear) or relunet (coordinate MLP)."),
    steps: Optional[int] = typer.Option(None, help=f"Maximum number of Adam steps (default: the preset's, {_preset_defaults('steps')}); the fit may stop earlier, see --stop."),
    stop: str = typer.Option("auto", help=f"Early stopping: auto (the default rule, {DEFAULT_RULE}), none (run all --steps), or a rule: {', '.join(RULES)}."),
    stop_sigma: Optional[float] = typer.Option(None, help="Noise std (0–255) the stopping rule assumes; default: estimated from the noisy image."),
    lr: Optional[float] = typer.Option(None, help=f"Adam's learning rate (default: the preset's, {_preset_defaults('lr')})."),
    levels: Optional[int] = typer.Option(None, help="Number of encoder-decoder levels (fewer for small images; skip and linear models)."),
    width: Optional[int] = typer.Option(None, help="Width N of DIP-Linear-N (--model linear only; default 128)."),
    device: str = typer.Option("auto", help="auto (cuda → mps → cpu), cpu, cuda[:i] or mps."),
    precision: Precision = typer.Option(Precision.auto, help="auto (bf16 where the hardware has it), fp32, bf16 or fp64."),
    layout: Layout = typer.Option(Layout.auto, help="Memory layout of activations (auto: the faster one here)."),
    compile: bool = typer.Option(False, "--compile/--no-compile", help="torch.compile the network (slower on small CPUs)."),
    fast: bool = typer.Option(True, "--fast/--no-fast", help="Exact speed tweaks: fused Adam; TF32 and cuDNN autotuning on CUDA."),
    reference: bool = typer.Option(False, "--reference", help="The original implementation's execution: --precision fp32 --layout nchw --no-compile --no-fast."),
    seed: int = typer.Option(0, help="Seed of the network, its input and the added noise."),
    force: bool = typer.Option(False, "--force", help="Replace an existing dipscope run directory, only once the new run is complete (an interrupted run is written beside it)."),
) -> None:
    """Denoise IMAGE with the Deep Image Prior and write a run directory (result: denoised.png)."""
    from .restore import DenoiseRequest, resolve
    from .restore import denoise as run_denoise

    if stop not in ("auto", "none", *RULES):
        raise DipscopeError(f"unknown --stop {stop!r}; choose auto, none or one of {', '.join(RULES)}")
    if seed < 0:
        raise DipscopeError(f"--seed must be ≥ 0, not {seed}")
    if reference:
        precision, layout, compile, fast = Precision.fp32, Layout.nchw, False, False
    request = DenoiseRequest(
        image=image, out=out, sigma=sigma, noisy=noisy, clean=clean, preset=preset.value,
        model=model.value, steps=steps, lr=lr, levels=levels, linear_width=width, device=device,
        precision=None if precision is Precision.auto else precision.value,
        channels_last=_layout(layout), seed=seed, force=force,
        overrides={"compile": compile, "fast": fast}, stop=stop, stop_sigma=stop_sigma,
    )
    request.validate()
    _spec, config = resolve(request)
    bar = ProgressBar(config.steps, f"{model.value} {image.name}")
    _finish(run_denoise(request, callbacks=[bar]))


@app.command(cls=Command)
def demo(
    out: Path = typer.Option(Path("demo-output"), "--out", "-o", help="Run directory to create."),
    steps: int = typer.Option(300, help="Adam steps (300 take about 2 minutes on 2 CPU cores)."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier demo output."),
) -> None:
    """Denoise a 128×128 crop of scikit-image's bundled 'astronaut' (σ = 25) in a few minutes on a CPU."""
    import numpy as np
    from skimage import data

    from .images import read_image, write_image
    from .metrics import psnr
    from .plots import image_row
    from .restore import DenoiseRequest
    from .restore import denoise as run_denoise

    crop = data.astronaut()[30:158, 170:298].astype(np.float32) / 255.0
    out.parent.mkdir(parents=True, exist_ok=True)
    source = out.parent / f".{out.name}-clean.png"
    write_image(source, crop)
    request = DenoiseRequest(image=source, out=out, sigma=25.0, steps=steps, force=force)
    bar = ProgressBar(steps, "DIP demo (astronaut crop)")
    try:
        run = run_denoise(request, callbacks=[bar])
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


experiment_app = typer.Typer(no_args_is_help=True, help="Reproduce the study's experiments (resumable).")
app.add_typer(experiment_app, name="experiment")


class Profile(str, Enum):
    smoke = "smoke"
    cpu = "cpu"
    paper = "paper"


IMAGES_HELP = "Image files, or set:NAME for a named data set (cbm3d9, barbara, triangle) from --data-dir."


class ExecutorName(str, Enum):
    local = "local"
    ray = "ray"


class RayStorage(str, Enum):
    shared = "shared"
    driver = "driver"


# The executor options every experiment command takes (see dipscope.runs.executors).
def _opt_executor():
    return typer.Option(ExecutorName.local, "--executor", help="local (here, one task after the other) or ray "
                        "(each task a Ray task; needs Ray: the dipscope ray extra).", rich_help_panel="Executor")


def _opt_retries():
    return typer.Option(1, "--retries", help="Retry a failed task this many times, then report it.",
                        rich_help_panel="Executor")


def _opt_threads():
    return typer.Option(None, "--threads", help="Torch threads in every task (default: --cpus-per-task, 1 "
                        "unless set, with either executor: CPU numbers depend on it, so the same command gives "
                        "the same numbers on both; a sweep resumes only with the thread count it was made with).",
                        rich_help_panel="Executor")


def _opt_ray_address():
    return typer.Option(None, "--ray-address", help="auto (the cluster this node belongs to) or ray://HOST:10001; "
                        "default: start a local Ray instance.", rich_help_panel="Executor")


def _opt_cpus():
    return typer.Option(1.0, "--cpus-per-task", help="CPUs each Ray task asks for.", rich_help_panel="Executor")


def _opt_gpus():
    return typer.Option(0.0, "--gpus-per-task", help="GPUs each Ray task asks for (fractions share a GPU).",
                        rich_help_panel="Executor")


def _opt_storage():
    return typer.Option(RayStorage.shared, "--ray-storage", help="shared: tasks write the run directories "
                        "(--out must be on a file system every node sees); driver: tasks return their files and "
                        "this process writes them.", rich_help_panel="Executor")


def _executor_options(executor: ExecutorName, retries: int, threads: Optional[int], ray_address: Optional[str],
                      cpus_per_task: float, gpus_per_task: float, ray_storage: RayStorage):
    from .runs.executors import ExecutorOptions

    options = ExecutorOptions(name=executor.value, retries=retries, threads=threads, ray_address=ray_address,
                              cpus_per_task=cpus_per_task, gpus_per_task=gpus_per_task, storage=ray_storage.value)
    options.check()  # an unknown value, or Ray missing, fails here before any work
    return options


@experiment_app.command("bias", cls=Command)
def experiment_bias(
    images: list[str] = typer.Argument(..., help=IMAGES_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="Experiment directory (finished tasks are skipped on re-run)."),
    model: list[str] = typer.Option(["dip", "linear-128", "relunet"], help="Models: dip, linear-N, relunet (repeat)."),
    profile: Profile = typer.Option(Profile.cpu, help="smoke (seconds), cpu (committed results), paper (GPU)."),
    factor: int = typer.Option(4, help="Downsample inputs by this factor (the study: 4)."),
    resize: str = typer.Option("study", help="study (plain bilinear, as the study) or antialias."),
    tau: float = typer.Option(0.1, help="Relative-error threshold τ."),
    bands: int = typer.Option(8, help="Number of frequency rings."),
    data_dir: Optional[str] = typer.Option(None, help="Folder of the named data sets (else $DIPSCOPE_DATA)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or mps."),
    force: bool = typer.Option(False, "--force", help="Redo finished tasks."),
    executor: ExecutorName = _opt_executor(),
    retries: int = _opt_retries(),
    threads: Optional[int] = _opt_threads(),
    ray_address: Optional[str] = _opt_ray_address(),
    cpus_per_task: float = _opt_cpus(),
    gpus_per_task: float = _opt_gpus(),
    ray_storage: RayStorage = _opt_storage(),
) -> None:
    """Claim 1: per-band error over the fit of clean images; Spearman ρ of band vs learning time."""
    from .experiments.bias import BiasConfig, run

    cfg = BiasConfig(images=images, models=model, profile=profile.value, bands=bands, tau=tau, factor=factor,
                     resize=resize, data_dir=data_dir, device=device)
    print(run(cfg, out, force=force, executor=_executor_options(executor, retries, threads, ray_address,
                                                                cpus_per_task, gpus_per_task, ray_storage)))


@experiment_app.command("trajectory", cls=Command)
def experiment_trajectory(
    images: list[str] = typer.Argument(..., help=IMAGES_HELP + " Also pattern:F1,F2 for generated images."),
    out: Path = typer.Option(..., "--out", "-o", help="Experiment directory (finished tasks are skipped on re-run)."),
    model: str = typer.Option("dip", help="dip, linear-N or relunet."),
    runs: int = typer.Option(2, help="Number of runs (seeds) to compare; the distance uses the first two."),
    profile: Profile = typer.Option(Profile.cpu, help="smoke (seconds), cpu (committed results), paper (GPU)."),
    steps: Optional[int] = typer.Option(None, help="Override the profile's number of steps."),
    channels: Optional[int] = typer.Option(None, help="Override DIP's channels per level."),
    smooth: int = typer.Option(5, help="Window of the centred moving median over snapshots."),
    data_dir: Optional[str] = typer.Option(None, help="Folder of the named data sets (else $DIPSCOPE_DATA)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or mps."),
    force: bool = typer.Option(False, "--force", help="Redo finished tasks."),
    executor: ExecutorName = _opt_executor(),
    retries: int = _opt_retries(),
    threads: Optional[int] = _opt_threads(),
    ray_address: Optional[str] = _opt_ray_address(),
    cpus_per_task: float = _opt_cpus(),
    gpus_per_task: float = _opt_gpus(),
    ray_storage: RayStorage = _opt_storage(),
) -> None:
    """Claim 2: distance between two runs over the fit; convergence points; peak vs pattern amount."""
    from .experiments.trajectory import TrajectoryConfig, run

    if runs < 2:
        raise DipscopeError("--runs must be at least 2")
    cfg = TrajectoryConfig(images=images, model=model, profile=profile.value, runs=runs, steps=steps,
                           channels=channels, smooth=smooth, data_dir=data_dir, device=device)
    print(run(cfg, out, force=force, executor=_executor_options(executor, retries, threads, ray_address,
                                                                cpus_per_task, gpus_per_task, ray_storage)))


@experiment_app.command("lowfreq-noise", cls=Command)
def experiment_lowfreq_noise(
    images: Optional[list[str]] = typer.Argument(None, help="Image files or set:NAME; default: Barbara from --data-dir."),
    out: Path = typer.Option(..., "--out", "-o", help="Experiment directory (finished tasks are skipped on re-run)."),
    model: list[str] = typer.Option(["dip", "relunet"], help="Models: dip, linear-N, relunet (repeat)."),
    noise: list[str] = typer.Option(["lowfreq", "white"], help="Noises: lowfreq, white (repeat)."),
    profile: Profile = typer.Option(Profile.cpu, help="smoke (seconds), cpu (committed results), paper (GPU)."),
    sigma: float = typer.Option(25.0, help="Noise std on the 0–255 scale (both noises)."),
    fc: float = typer.Option(1 / 32, help="Cutoff of the low-frequency noise (cycles/pixel)."),
    clip: bool = typer.Option(False, "--clip/--no-clip", help="Clip the noisy image to [0, 1] (adds high frequencies)."),
    crop: Optional[int] = typer.Option(None, help="Side of the square crop (never resized); 0 = whole image; default by profile (smoke 64, cpu 128, paper none)."),
    steps: Optional[int] = typer.Option(None, help="Override the profile's number of steps (all models)."),
    tau: float = typer.Option(0.1, help="Threshold τ for 'band fitted'."),
    data_dir: Optional[str] = typer.Option(None, help="Folder of the named data sets (else $DIPSCOPE_DATA)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or mps."),
    force: bool = typer.Option(False, "--force", help="Redo finished tasks."),
) -> None:
    """DIP and ReLUNet on low-frequency vs white noise: PSNR gains, when noise and texture bands are fitted."""
    from .experiments.lowfreq_noise import LowFreqConfig, run

    cfg = LowFreqConfig(images=images or (), models=model, noises=noise, profile=profile.value, sigma=sigma, fc=fc,
                        clip=clip, crop=crop, steps=steps, tau=tau, data_dir=data_dir, device=device)
    print(run(cfg, out, force=force))


@experiment_app.command("upsampling", cls=Command)
def experiment_upsampling(
    images: Optional[list[str]] = typer.Argument(None, help="Image files or set:NAME; default: Barbara from --data-dir."),
    out: Path = typer.Option(..., "--out", "-o", help="Experiment directory (finished tasks are skipped on re-run)."),
    mode: list[str] = typer.Option(["nearest", "bilinear", "transposed"], help="Upsampling modes at stride 2 (repeat)."),
    stride: list[int] = typer.Option([2, 4, 8, 16, 32], help="Upsampling strides (repeat); depth adjusted to the image."),
    stride_mode: str = typer.Option("bilinear", help="Upsampling mode of the stride settings."),
    profile: Profile = typer.Option(Profile.cpu, help="smoke (seconds), cpu (committed results), paper (GPU)."),
    channels: Optional[int] = typer.Option(None, help="Override DIP's channels per level."),
    skip_channels: Optional[int] = typer.Option(None, help="Override the skip channels per level (0: no skip connections)."),
    steps: Optional[int] = typer.Option(None, help="Override the profile's number of steps."),
    crop: Optional[int] = typer.Option(None, help="Side of the square crop (never resized); 0 = whole image."),
    hf_cutoff: float = typer.Option(0.25, help="High-frequency power fraction counts r above this (cycles/pixel)."),
    bands: int = typer.Option(16, help="Number of rings for the low-error radius."),
    tau: float = typer.Option(0.1, help="Relative-error threshold τ of the low-error radius."),
    data_dir: Optional[str] = typer.Option(None, help="Folder of the named data sets (else $DIPSCOPE_DATA)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or mps."),
    force: bool = typer.Option(False, "--force", help="Redo finished tasks."),
) -> None:
    """Nearest vs bilinear vs transposed upsampling, and strides 2–32: smoothness and low-error radius r(t)."""
    from .experiments.upsampling import UpsamplingConfig, run

    cfg = UpsamplingConfig(images=images or (), modes=mode, strides=stride, stride_mode=stride_mode,
                           profile=profile.value, channels=channels, skip_channels=skip_channels, steps=steps,
                           crop=crop, hf_cutoff=hf_cutoff, bands=bands, tau=tau, data_dir=data_dir, device=device)
    print(run(cfg, out, force=force))


def _comma_list(value: str, what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise DipscopeError(f"{what} is empty")
    return items


def _steps_overrides(values: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in values:
        model, sep, number = item.partition("=")
        if not sep or not number.strip().isdigit():
            raise DipscopeError(f"bad --steps {item!r}; write MODEL=N, e.g. relunet=5000")
        out[model.strip()] = int(number)
    return out


@experiment_app.command("denoise-table", cls=Command)
def experiment_denoise_table(
    images: list[str] = typer.Argument(None, help=IMAGES_HELP + " Default: set:cbm3d9."),
    out: Path = typer.Option(..., "--out", "-o", help="Experiment directory (finished runs are skipped on re-run)."),
    models: str = typer.Option(",".join(("dip", "linear-128", "linear-2048", "relunet")),
                               help="Comma-separated models: dip, linear-N, relunet."),
    runs: int = typer.Option(2, help="Runs (network seeds 0 … R−1) per image and model."),
    factor: int = typer.Option(4, help="Downsample the images by this factor (the study: 4)."),
    sigma: float = typer.Option(25.0, help="Noise std on the 0–255 scale."),
    resize: str = typer.Option("study", help="study (plain bilinear, as the study), area (box average, OpenCV's INTER_AREA), antialias, "
                                             "or study-distorted (the study's swapped width/height for non-square images)."),
    quantize: bool = typer.Option(True, "--quantize/--no-quantize", help="Round clean and noisy images to 8 bits."),
    crop: int = typer.Option(0, help="Ignore a border of this many pixels in the PSNR."),
    profile: Profile = typer.Option(Profile.paper, help="paper (the study's settings), cpu (DIP 64 channels, "
                                                        "ReLUNet 2 000 steps), smoke (seconds)."),
    steps: list[str] = typer.Option([], help="Override a model's steps: MODEL=N (repeat)."),
    noise_seed: int = typer.Option(0, help="Seed of the noise."),
    report_only: bool = typer.Option(False, "--report-only", help="Run nothing: rebuild the table from finished runs."),
    data_dir: Optional[str] = typer.Option(None, help="Folder of the named data sets (else $DIPSCOPE_DATA)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or mps."),
    precision: Precision = typer.Option(Precision.auto, help="auto (bf16 on CUDA and bf16-native CPUs), fp32, bf16, fp64."),
    force: bool = typer.Option(False, "--force", help="Redo finished runs."),
    executor: ExecutorName = _opt_executor(),
    retries: int = _opt_retries(),
    threads: Optional[int] = _opt_threads(),
    ray_address: Optional[str] = _opt_ray_address(),
    cpus_per_task: float = _opt_cpus(),
    gpus_per_task: float = _opt_gpus(),
    ray_storage: RayStorage = _opt_storage(),
) -> None:
    """Claim 3: best PSNR of DIP, DIP-Linear and ReLUNet on noisy images, beside the published table."""
    from .experiments.denoise_table import TableConfig, run

    cfg = TableConfig(images=images or ["set:cbm3d9"], models=_comma_list(models, "--models"), runs=runs,
                      factor=factor, sigma=sigma, resize=resize, quantize=quantize, crop=crop,
                      profile=profile.value, steps=_steps_overrides(steps), noise_seed=noise_seed,
                      data_dir=data_dir, device=device, precision=precision.value)
    print(run(cfg, out, force=force, report_only=report_only,
              executor=_executor_options(executor, retries, threads, ray_address, cpus_per_task, gpus_per_task,
                                         ray_storage)))


data_app = typer.Typer(no_args_is_help=True, help="Named test sets (cbm3d9, barbara, triangle).")
app.add_typer(data_app, name="data")


@data_app.command("fetch", cls=Command)
def data_fetch(
    name: str = typer.Argument(..., help="Data set: cbm3d9, barbara or triangle."),
    to: Path = typer.Option(..., "--to", help="Folder to download into (then pass it as --data-dir or $DIPSCOPE_DATA)."),
) -> None:
    """Download a named set from its pinned public URLs; every file is checked by sha256."""
    from .datasets import fetch

    fetch(name, to)


@data_app.command("check", cls=Command)
def data_check(
    name: str = typer.Argument(..., help="Data set: cbm3d9, barbara or triangle."),
    data_dir: Optional[str] = typer.Option(None, help="Folder of the data sets (else $DIPSCOPE_DATA)."),
) -> None:
    """Check that a folder holds every image of a set with the right sha256."""
    from .datasets import load

    images = load(name, data_dir)
    for key, image in images.items():
        print(f"{key}: {image.shape[-2]}×{image.shape[-1]}, {image.shape[0]} channel(s), sha256 ok")


@experiment_app.command("gp-prior", cls=Command)
def experiment_gp_prior(
    out: Path = typer.Option(..., "--out", "-o", help="Experiment directory (finished tasks are skipped on re-run)."),
    profile: Profile = typer.Option(Profile.cpu, help="smoke (seconds), cpu (committed results), paper (GPU)."),
    seed: int = typer.Option(0, help="Seed of the random networks."),
    monte_carlo: bool = typer.Option(True, "--monte-carlo/--no-monte-carlo", help="Also sample random networks (else analytic kernels only, seconds)."),
    force: bool = typer.Option(False, "--force", help="Redo finished tasks."),
) -> None:
    """DIP at initialisation as a Gaussian process: NNGP kernels vs random networks, half-width vs depth."""
    from .experiments.gp_prior import GPPriorConfig, run

    print(run(GPPriorConfig(profile=profile.value, seed=seed, monte_carlo=monte_carlo), out, force=force))


gp_app = typer.Typer(no_args_is_help=True, help="Infinite-width (NNGP) kernels of the networks at initialisation.")
app.add_typer(gp_app, name="gp")


@gp_app.command("kernel", cls=Command)
def gp_kernel(
    model_spec: str = typer.Option("skip:5", help="conv-relu:D[:K], dense:L, relunet:D, skip:L[:nearest], or SkipSpec JSON (file or inline)."),
    length: int = typer.Option(256, help="Signal length n (1-D)."),
    max_lag: int = typer.Option(16, help="Print c(τ) for τ up to this lag."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Also write correlation.csv and spectrum.csv here."),
) -> None:
    """Print the stationarised correlation c(τ) and power spectrum S(ω) of a network's NNGP kernel."""
    from .experiments.gp_prior import kernel_report
    from .experiments.gp_prior import model_spec as parse

    print(kernel_report(parse(model_spec), length, max_lag, out))


@app.command(cls=Command)
def bench(
    steps: int = typer.Option(10, help="Timed steps per mode and chunk (two chunks; medians over 5-step intervals)."),
    quick: bool = typer.Option(False, "--quick", help="Small sizes only (a minute or two)."),
    device: str = typer.Option("auto", help="Device to benchmark."),
    memory: bool = typer.Option(True, "--memory/--no-memory", help="Measure peak memory in subprocesses."),
    results: Optional[Path] = typer.Option(None, help="Also write the Markdown report to this file."),
) -> None:
    """Time the DIP step: reference vs fast mode, GFLOP/s, peak memory, runs fitted together."""
    from .bench import run

    if steps < 5:
        raise DipscopeError("--steps must be at least 5")
    if results is not None and not results.parent.is_dir():
        raise DipscopeError(f"folder {results.parent} for --results does not exist")
    print(run(steps=steps, quick=quick, device=device, memory=memory, results=results))


def _finish(run: object) -> None:
    """Print what a denoising run made; exit 130/143 if a signal interrupted it."""
    from . import interrupts
    from .restore import DenoiseRun

    assert isinstance(run, DenoiseRun)
    _report(run.out, run.result)
    _report_stop(run.stopping)
    if run.result.interrupted:
        where = f"; the finished run in {run.kept} is unchanged" if run.kept else ""
        print(f"interrupted by {interrupts.name()} at step {run.result.steps_done}: the outputs reached are in "
              f"{run.out}{where}", file=sys.stderr)
        sys.exit(interrupts.exit_code())


def _report(out_dir: Path, result: object) -> None:
    from .fit import FitResult

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


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: runs the app and turns user errors into one line and exit status 2.

    SIGINT and SIGTERM interrupt a fit cleanly (:mod:`dipscope.interrupts`): the outputs reached
    are saved and the process exits 130 (SIGINT) or 143 (SIGTERM).
    """
    from . import interrupts

    previous = interrupts.install()
    try:
        app(args=argv, standalone_mode=False)
    except DipscopeError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print(f"aborted by {interrupts.name()}", file=sys.stderr)
        sys.exit(interrupts.exit_code())
    except Exception as e:
        # Usage errors and exits of the command-line parser (click, or the copy typer vendors).
        if hasattr(e, "show") and hasattr(e, "exit_code"):
            e.show()
            sys.exit(e.exit_code)
        if type(e).__name__ == "Exit" and hasattr(e, "exit_code"):
            sys.exit(e.exit_code)
        raise
    finally:
        interrupts.restore(previous)


if __name__ == "__main__":
    main()
