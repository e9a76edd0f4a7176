"""``dipscope data …``, ``dipscope gp kernel``, ``dipscope bench`` and ``dipscope report``: data sets,
kernels, speed, and the HTML page of a run or an experiment."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import DipscopeError
from ..files import write_text
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
    steps: Optional[int] = typer.Option(None, help="Timed steps per mode and chunk (two chunks; medians over 5-step "
                                                   "intervals; default 10)."),
    quick: bool = typer.Option(False, "--quick", help="Small sizes only (a minute or two)."),
    device: str = typer.Option("auto", help="Device to benchmark."),
    memory: bool = typer.Option(True, "--memory/--no-memory", help="Measure peak memory in subprocesses."),
    results: Optional[Path] = typer.Option(None, help="Also write the Markdown report to this file (a new one, or "
                                                      "with --force an existing one)."),
    force: bool = typer.Option(False, "--force", help="Replace the --results file if it exists."),
    time_to_result: bool = typer.Option(False, "--time-to-result", help="Instead: time until denoised.png with the "
                                        "defaults against the original protocol (3 000 reference steps), per image "
                                        "and σ (hours on a CPU; --quick for a smoke run)."),
    sigmas: Optional[str] = typer.Option(None, help="--time-to-result: noise levels σ (0–255), comma-separated "
                                                    "(default 15,25,50)."),
    measure_steps: Optional[int] = typer.Option(None, help="--time-to-result: run only this many reference steps "
                                                           "(≥ 50) and extrapolate the reference time."),
    data_dir: Optional[str] = typer.Option(None, help="--time-to-result: also the cbm3d9 images ×4 from here."),
    crop: Optional[int] = typer.Option(None, help="--time-to-result: side of the scikit-image crops (default 256)."),
    out: Optional[Path] = typer.Option(None, help="--time-to-result: keep every measured part here and reuse it "
                                                  "(the benchmark resumes; parts can run at different times)."),
    parts: Optional[str] = typer.Option(None, help="--time-to-result: which parts to measure now (default all): original "
                                        "(the full reference run, untimed), timing (--measure-steps reference steps, timed), "
                                        "ours (dipscope denoise, timed), ensemble (dipscope denoise --runs 4, scored at 1, 2 and 4 "
                                        "runs), or none (only report); parts kept in --out are always reported."),
) -> None:
    """Time the DIP step (reference vs fast mode, GFLOP/s, peak memory, runs fitted together), or
    with --time-to-result the whole way to denoised.png."""
    check_results_file(results, force)
    ttr_only = {"--sigmas": sigmas, "--measure-steps": measure_steps, "--data-dir": data_dir, "--crop": crop,
                "--out": out, "--parts": parts}
    if time_to_result:
        from dataclasses import replace

        from ..time_to_result import TimeToResult, parse_parts, run as run_ttr

        if steps is not None:
            raise DipscopeError("--steps times the step benchmark; --time-to-result runs every fit to its end")
        sizes = {k: v for k, v in ttr_only.items() if k in ("--sigmas", "--measure-steps", "--crop") and v is not None}
        if quick and sizes:
            raise DipscopeError(f"--quick sets its own sizes; drop {', '.join(sizes)} or --quick")
        try:
            levels = tuple(float(v) for v in (sigmas or "15,25,50").split(",") if v.strip())
        except ValueError:
            raise DipscopeError(f"bad --sigmas {sigmas!r}; write e.g. 15,25,50") from None
        cfg = TimeToResult.quick() if quick else TimeToResult(sigmas=levels, measure_steps=measure_steps,
                                                              crop=256 if crop is None else crop)
        cfg = replace(cfg, device=device, out=out, parts=parse_parts(parts) if parts is not None else cfg.parts)
        cfg.validate()
        _, text = run_ttr(cfg, data_dir=data_dir)
        if results is not None:
            write_text(results, text)
        print(text)
        return
    given = [k for k, v in ttr_only.items() if v is not None]
    if given:
        raise DipscopeError(f"{', '.join(given)} {'is an option' if len(given) == 1 else 'are options'} of "
                            "--time-to-result")
    from ..bench import run

    steps = 10 if steps is None else steps
    if steps < 5:
        raise DipscopeError("--steps must be at least 5")
    print(run(steps=steps, quick=quick, device=device, memory=memory, results=results))


def check_results_file(results: Optional[Path], force: bool) -> None:
    """``--results``: a file in an existing folder, new unless ``--force``; checked before any timing."""
    if results is None:
        return
    if results.is_dir():
        raise DipscopeError(f"--results {results} is a folder; give a file name")
    if not results.parent.is_dir():
        raise DipscopeError(f"folder {results.parent} for --results does not exist")
    if results.exists() and not force:
        raise DipscopeError(f"--results {results} exists; pass --force to replace it or choose another file")


@app.command(cls=Command)
def report(
    directory: Path = typer.Argument(..., metavar="DIR", help="A run directory (denoise, restore) or an experiment's "
                                                              "folder."),
) -> None:
    """Write DIR/report.html, one self-contained page: for a run directory its images, curves,
    choices and spectra; for an experiment's folder its verdict (README.md), tables and figures."""
    from ..report import write_report

    print(f"wrote {write_report(directory)}")
