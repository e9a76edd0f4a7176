"""``dipscope data …``, ``dipscope gp kernel`` and ``dipscope bench``: data sets, kernels, speed."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import DipscopeError
from .base import Command, app, data_app, gp_app


@data_app.command("fetch", cls=Command)
def data_fetch(
    name: str = typer.Argument(..., help="Data set: cbm3d9, barbara or triangle."),
    to: Path = typer.Option(..., "--to", help="Folder to download into (then pass it as --data-dir or $DIPSCOPE_DATA)."),
) -> None:
    """Download a named set from its pinned public URLs; every file is checked by sha256."""
    from ..datasets import fetch

    fetch(name, to)


@data_app.command("check", cls=Command)
def data_check(
    name: str = typer.Argument(..., help="Data set: cbm3d9, barbara or triangle."),
    data_dir: Optional[str] = typer.Option(None, help="Folder of the data sets (else $DIPSCOPE_DATA)."),
) -> None:
    """Check that a folder holds every image of a set with the right sha256."""
    from ..datasets import load

    images = load(name, data_dir)
    for key, image in images.items():
        print(f"{key}: {image.shape[-2]}×{image.shape[-1]}, {image.shape[0]} channel(s), sha256 ok")


@gp_app.command("kernel", cls=Command)
def gp_kernel(
    model_spec: str = typer.Option("skip:5", help="conv-relu:D[:K], dense:L, relunet:D, skip:L[:nearest], or SkipSpec JSON (file or inline)."),
    length: int = typer.Option(256, help="Signal length n (1-D)."),
    max_lag: int = typer.Option(16, help="Print c(τ) for τ up to this lag."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Also write correlation.csv and spectrum.csv here."),
) -> None:
    """Print the stationarised correlation c(τ) and power spectrum S(ω) of a network's NNGP kernel."""
    from ..experiments.gp_prior import kernel_report
    from ..experiments.gp_prior import model_spec as parse

    print(kernel_report(parse(model_spec), length, max_lag, out))


@app.command(cls=Command)
def bench(
    steps: int = typer.Option(10, help="Timed steps per mode and chunk (two chunks; medians over 5-step intervals)."),
    quick: bool = typer.Option(False, "--quick", help="Small sizes only (a minute or two)."),
    device: str = typer.Option("auto", help="Device to benchmark."),
    memory: bool = typer.Option(True, "--memory/--no-memory", help="Measure peak memory in subprocesses."),
    results: Optional[Path] = typer.Option(None, help="Also write the Markdown report to this file."),
    time_to_result: bool = typer.Option(False, "--time-to-result", help="Instead: time until denoised.png with the "
                                        "defaults against the original protocol (3 000 reference steps), per image "
                                        "and σ (hours on a CPU; --quick for a smoke run)."),
    sigmas: str = typer.Option("15,25,50", help="--time-to-result: noise levels σ (0–255), comma-separated."),
    measure_steps: Optional[int] = typer.Option(None, help="--time-to-result: run only this many reference steps "
                                                           "(≥ 50) and extrapolate the reference time."),
    data_dir: Optional[str] = typer.Option(None, help="--time-to-result: also the cbm3d9 images ×4 from here."),
    crop: int = typer.Option(256, help="--time-to-result: side of the scikit-image crops."),
    out: Optional[Path] = typer.Option(None, help="--time-to-result: keep every measured part here and reuse it "
                                                  "(the benchmark resumes; parts can run at different times)."),
    parts: str = typer.Option("original,timing,ours,ensemble", help="--time-to-result: which parts to measure now: original "
                              "(the full reference run, untimed), timing (--measure-steps reference steps, timed), "
                              "ours (dipscope denoise, timed), ensemble (dipscope denoise --runs 4, scored at 1, 2 and 4 "
                              "runs), or none (only report); parts kept in --out are always reported."),
) -> None:
    """Time the DIP step (reference vs fast mode, GFLOP/s, peak memory, runs fitted together), or
    with --time-to-result the whole way to denoised.png."""
    if results is not None and not results.parent.is_dir():
        raise DipscopeError(f"folder {results.parent} for --results does not exist")
    if time_to_result:
        from dataclasses import replace

        from ..time_to_result import TimeToResult, parse_parts, run as run_ttr

        try:
            levels = tuple(float(v) for v in sigmas.split(",") if v.strip())
        except ValueError:
            raise DipscopeError(f"bad --sigmas {sigmas!r}; write e.g. 15,25,50") from None
        cfg = TimeToResult.quick() if quick else TimeToResult(sigmas=levels, measure_steps=measure_steps, crop=crop)
        cfg = replace(cfg, device=device, out=out, parts=parse_parts(parts))
        cfg.validate()
        _, text = run_ttr(cfg, data_dir=data_dir)
        if results is not None:
            results.write_text(text)
        print(text)
        return
    from ..bench import run

    if steps < 5:
        raise DipscopeError("--steps must be at least 5")
    print(run(steps=steps, quick=quick, device=device, memory=memory, results=results))
