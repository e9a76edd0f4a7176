"""``dipscope experiment …``: the study's experiments, one command each (resumable sweeps)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import DipscopeError
from ..runs.executors import ExecutorOptions
from .base import (IMAGES_HELP, Command, Precision, Profile, comma_list, experiment_app, opt_data_dir, opt_device,
                   opt_force, opt_out, opt_precision, opt_profile, opt_recover, with_executor)


@experiment_app.command("bias", cls=Command)
@with_executor
def experiment_bias(
    images: list[str] = typer.Argument(..., help=IMAGES_HELP),
    out: Path = opt_out(),
    model: list[str] = typer.Option(["dip", "linear-128", "relunet"], help="Models: dip, linear-N, relunet (repeat)."),
    profile: Profile = opt_profile("cpu"),
    factor: int = typer.Option(4, help="Downsample inputs by this factor (the study: 4)."),
    resize: str = typer.Option("study", help="study (plain bilinear, as the study) or antialias."),
    tau: float = typer.Option(0.1, help="Relative-error threshold τ."),
    bands: int = typer.Option(8, help="Number of frequency rings."),
    seed: int = typer.Option(0, help="Seed of the networks."),
    data_dir: Optional[str] = opt_data_dir(),
    device: str = opt_device(),
    recover_divergence: bool = opt_recover(),
    precision: Precision = opt_precision(),
    force: bool = opt_force(),
    executor: ExecutorOptions = None,  # the executor options (with_executor)
) -> None:
    """Claim 1: per-band error over the fit of clean images; Spearman ρ of band vs learning time."""
    from ..experiments.bias import BiasConfig, run

    cfg = BiasConfig(images=images, models=model, profile=profile.value, bands=bands, tau=tau, factor=factor,
                     resize=resize, seed=seed, data_dir=data_dir, device=device,
                     recover_divergence=recover_divergence, precision=precision.value)
    print(run(cfg, out, force=force, executor=executor))


@experiment_app.command("trajectory", cls=Command)
@with_executor
def experiment_trajectory(
    images: list[str] = typer.Argument(..., help=IMAGES_HELP + " Also pattern:F1,F2 for generated images."),
    out: Path = opt_out(),
    model: str = typer.Option("dip", help="dip, linear-N or relunet."),
    runs: int = typer.Option(2, help="Number of runs (seeds) to compare; the distance uses the first two."),
    profile: Profile = opt_profile("cpu"),
    steps: Optional[int] = typer.Option(None, help="Override the profile's number of steps."),
    channels: Optional[int] = typer.Option(None, help="Override DIP's channels per level."),
    smooth: int = typer.Option(5, help="Window of the centred moving median over snapshots."),
    seed: int = typer.Option(0, help="Seed of the first run; run i has seed + i."),
    data_dir: Optional[str] = opt_data_dir(),
    device: str = opt_device(),
    recover_divergence: bool = opt_recover(),
    precision: Precision = opt_precision(),
    force: bool = opt_force(),
    executor: ExecutorOptions = None,  # the executor options (with_executor)
) -> None:
    """Claim 2: distance between two runs over the fit; convergence points; peak vs pattern amount."""
    from ..experiments.trajectory import TrajectoryConfig, run

    if runs < 2:
        raise DipscopeError("--runs must be at least 2")
    cfg = TrajectoryConfig(images=images, model=model, profile=profile.value, runs=runs, steps=steps,
                           channels=channels, smooth=smooth, seed=seed, data_dir=data_dir, device=device,
                           recover_divergence=recover_divergence, precision=precision.value)
    print(run(cfg, out, force=force, executor=executor))


@experiment_app.command("lowfreq-noise", cls=Command)
@with_executor
def experiment_lowfreq_noise(
    images: Optional[list[str]] = typer.Argument(None, help="Image files or set:NAME; default: Barbara from --data-dir."),
    out: Path = opt_out(),
    model: list[str] = typer.Option(["dip", "relunet"], help="Models: dip, linear-N, relunet (repeat)."),
    noise: list[str] = typer.Option(["lowfreq", "white"], help="Noises: lowfreq, white (repeat)."),
    profile: Profile = opt_profile("cpu"),
    sigma: float = typer.Option(25.0, help="Noise std on the 0–255 scale (both noises)."),
    fc: float = typer.Option(1 / 32, help="Cutoff of the low-frequency noise (cycles/pixel)."),
    clip: bool = typer.Option(False, "--clip/--no-clip", help="Clip the noisy image to [0, 1] (adds high frequencies)."),
    crop: Optional[int] = typer.Option(None, help="Side of the square crop (never resized); 0 = whole image; default by profile (smoke 64, cpu 128, paper none)."),
    steps: Optional[int] = typer.Option(None, help="Override the profile's number of steps (all models)."),
    tau: float = typer.Option(0.1, help="Threshold τ for 'band fitted'."),
    seed: int = typer.Option(0, help="Seed of the noise draw and of the networks."),
    data_dir: Optional[str] = opt_data_dir(),
    device: str = opt_device(),
    recover_divergence: bool = opt_recover(),
    precision: Precision = opt_precision(),
    force: bool = opt_force(),
    executor: ExecutorOptions = None,  # the executor options (with_executor)
) -> None:
    """DIP and ReLUNet on low-frequency vs white noise: PSNR gains, when noise and texture bands are fitted."""
    from ..experiments.lowfreq_noise import LowFreqConfig, run

    cfg = LowFreqConfig(images=images or (), models=model, noises=noise, profile=profile.value, sigma=sigma, fc=fc,
                        clip=clip, crop=crop, steps=steps, tau=tau, seed=seed, data_dir=data_dir, device=device,
                        recover_divergence=recover_divergence, precision=precision.value)
    print(run(cfg, out, force=force, executor=executor))


@experiment_app.command("upsampling", cls=Command)
@with_executor
def experiment_upsampling(
    images: Optional[list[str]] = typer.Argument(None, help="Image files or set:NAME; default: Barbara from --data-dir."),
    out: Path = opt_out(),
    mode: list[str] = typer.Option(["nearest", "bilinear", "transposed"], help="Upsampling modes at stride 2 (repeat)."),
    stride: list[int] = typer.Option([2, 4, 8, 16, 32], help="Upsampling strides (repeat); depth adjusted to the image."),
    stride_mode: str = typer.Option("bilinear", help="Upsampling mode of the stride settings."),
    profile: Profile = opt_profile("cpu"),
    channels: Optional[int] = typer.Option(None, help="Override DIP's channels per level."),
    skip_channels: Optional[int] = typer.Option(None, help="Override the skip channels per level (0: no skip connections)."),
    steps: Optional[int] = typer.Option(None, help="Override the profile's number of steps."),
    crop: Optional[int] = typer.Option(None, help="Side of the square crop (never resized); 0 = whole image."),
    hf_cutoff: float = typer.Option(0.25, help="High-frequency power fraction counts r above this (cycles/pixel)."),
    bands: int = typer.Option(16, help="Number of rings for the low-error radius."),
    tau: float = typer.Option(0.1, help="Relative-error threshold τ of the low-error radius."),
    stride_levels: Optional[int] = typer.Option(None, help="Levels of every stride setting (the same depth for all "
                                                "strides); default: as many as the image allows, per stride."),
    seed: int = typer.Option(0, help="Seed of the first network."),
    seeds: int = typer.Option(1, help="Networks per setting (seeds seed … seed + N − 1)."),
    data_dir: Optional[str] = opt_data_dir(),
    device: str = opt_device(),
    recover_divergence: bool = opt_recover(),
    precision: Precision = opt_precision(),
    force: bool = opt_force(),
    executor: ExecutorOptions = None,  # the executor options (with_executor)
) -> None:
    """Nearest vs bilinear vs transposed upsampling, and strides 2–32: smoothness and low-error radius r(t)."""
    from ..experiments.upsampling import UpsamplingConfig, run

    cfg = UpsamplingConfig(images=images or (), modes=mode, strides=stride, stride_mode=stride_mode,
                           profile=profile.value, channels=channels, skip_channels=skip_channels, steps=steps,
                           crop=crop, hf_cutoff=hf_cutoff, bands=bands, tau=tau, stride_levels=stride_levels,
                           seed=seed, seeds=seeds, data_dir=data_dir, device=device,
                           recover_divergence=recover_divergence, precision=precision.value)
    print(run(cfg, out, force=force, executor=executor))


def _model_overrides(values: list[str], flag: str = "--steps", example: str = "relunet=5000") -> dict[str, int]:
    out: dict[str, int] = {}
    for item in values:
        model, sep, number = item.rpartition("=")
        if not sep or not number.strip().isdigit():
            raise DipscopeError(f"bad {flag} {item!r}; write MODEL=N, e.g. {example}")
        out[model.strip()] = int(number)
    return out


def _runs_option(values: list[str]) -> tuple[int, dict[str, int]]:
    """``--runs``: N for every model (default 2), and MODEL=N for one model (repeat)."""
    plain = [v for v in values if "=" not in v]
    if len(plain) > 1 or (plain and not plain[0].strip().isdigit()):
        raise DipscopeError(f"bad --runs {' '.join(values)!r}; write N, and MODEL=N for a model's own count")
    return (int(plain[0]) if plain else 2), _model_overrides([v for v in values if "=" in v], "--runs",
                                                             "linear-2048=1")


@experiment_app.command("denoise-table", cls=Command)
@with_executor
def experiment_denoise_table(
    images: list[str] = typer.Argument(None, help=IMAGES_HELP + " Default: set:cbm3d9."),
    out: Path = opt_out(),
    models: str = typer.Option(",".join(("dip", "linear-128", "linear-2048", "relunet")),
                               help="Comma-separated models: dip, linear-N, relunet; MODEL:lr=X changes the "
                                    "learning rate (a column of your own, e.g. linear-2048:lr=1e-4)."),
    runs: list[str] = typer.Option(["2"], help="Runs (network seeds 0 … R−1) per image and model: N, and "
                                   "MODEL=N for a model's own count (repeat), e.g. --runs 2 --runs linear-2048=1."),
    factor: int = typer.Option(4, help="Downsample the images by this factor (the study: 4)."),
    sigma: float = typer.Option(25.0, help="Noise std on the 0–255 scale."),
    resize: str = typer.Option("study", help="study (plain bilinear, as the study), area (box average, OpenCV's INTER_AREA), antialias, "
                                             "or study-distorted (the study's swapped width/height for non-square images)."),
    quantize: bool = typer.Option(True, "--quantize/--no-quantize", help="Round clean and noisy images to 8 bits."),
    crop: int = typer.Option(0, help="Ignore a border of this many pixels in the PSNR."),
    profile: Profile = opt_profile("paper"),
    steps: list[str] = typer.Option([], help="Override a model's steps: MODEL=N (repeat)."),
    noise_seed: int = typer.Option(0, help="Seed of the noise."),
    report_only: bool = typer.Option(False, "--report-only", help="Run nothing: rebuild the table from finished runs."),
    baselines: bool = typer.Option(True, "--baselines/--no-baselines", help="Add the best Gaussian low-pass filter "
                                   "(oracle width) and, with the bm3d package installed, CBM3D."),
    data_dir: Optional[str] = opt_data_dir(),
    device: str = opt_device(),
    precision: Precision = opt_precision(),
    accept_precision: str = typer.Option("", help="Comma-separated precisions whose finished runs count as done "
                                         "(the table says per cell which made it); only where their parity with "
                                         "--precision is measured (benchmarks/table_parity.py)."),
    flush_denormals: bool = typer.Option(False, "--flush-denormals", help="On a CPU, flush subnormal floats "
                                         "to zero in new runs (much faster where Adam's state decays into them, "
                                         "as DIP-Linear-2048's does; the table marks those runs 'ftz'); finished "
                                         "runs made without it count as done; refused off the CPU. --report-only reads "
                                         "flushed and exact runs alike."),
    recover_divergence: bool = opt_recover(),
    force: bool = opt_force("runs"),
    executor: ExecutorOptions = None,  # the executor options (with_executor)
) -> None:
    """Claim 3: best PSNR of DIP, DIP-Linear and ReLUNet on noisy images, beside the published table."""
    from ..experiments.denoise_table import TableConfig, run

    all_runs, model_runs = _runs_option(runs)
    cfg = TableConfig(images=images or ["set:cbm3d9"], models=comma_list(models, "--models"), runs=all_runs,
                      model_runs=model_runs, factor=factor, sigma=sigma, resize=resize, quantize=quantize, crop=crop,
                      profile=profile.value, steps=_model_overrides(steps), noise_seed=noise_seed,
                      data_dir=data_dir, device=device, precision=precision.value, baselines=baselines,
                      accept_precisions=comma_list(accept_precision, "--accept-precision") if accept_precision else (),
                      flush_denormals=flush_denormals, recover_divergence=recover_divergence)
    print(run(cfg, out, force=force, report_only=report_only, executor=executor))


@experiment_app.command("gp-prior", cls=Command)
@with_executor
def experiment_gp_prior(
    out: Path = opt_out(),
    profile: Profile = opt_profile("cpu"),
    seed: int = typer.Option(0, help="Seed of the random networks."),
    monte_carlo: bool = typer.Option(True, "--monte-carlo/--no-monte-carlo", help="Also sample random networks (else analytic kernels only, seconds)."),
    force: bool = opt_force(),
    executor: ExecutorOptions = None,  # the executor options (with_executor)
) -> None:
    """DIP at initialisation as a Gaussian process: NNGP kernels vs random networks, half-width vs depth."""
    from ..experiments.gp_prior import GPPriorConfig, run

    print(run(GPPriorConfig(profile=profile.value, seed=seed, monte_carlo=monte_carlo), out, force=force,
              executor=executor))
