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
) -> None:
    """Time the DIP step: reference vs fast mode, GFLOP/s, peak memory, runs fitted together."""
    from ..bench import run

    if steps < 5:
        raise DipscopeError("--steps must be at least 5")
    if results is not None and not results.parent.is_dir():
        raise DipscopeError(f"folder {results.parent} for --results does not exist")
    print(run(steps=steps, quick=quick, device=device, memory=memory, results=results))
