"""The study's own setting, stopped automatically: ``dipscope denoise NOISY --noisy --clean CLEAN``
with every other option at its default, on given noisy/clean pairs (by default the 9 pairs of
``results/denoise-table/cpu-study-x4/inputs/``: ×4 ``study`` resize, σ = 25, 8-bit).

    python benchmarks/study_pairs.py --out DIR --md FILE           # timed: run it on a quiet machine
    OMP_NUM_THREADS=1 python benchmarks/study_pairs.py --out DIR   # quality and steps only (background)
    python benchmarks/study_pairs.py --out DIR --runs 1            # one seed per image (default: the preset's runs)
    python benchmarks/study_pairs.py --out DIR2 --preset ulyanov2018  # the previous default, for a ratio

Per image: the PSNR of ``denoised.png`` (the clean image is only scored against, never read by
the rule), the step(s) the rule chose, the σ it estimated, the fit's steps and the wall time of
the whole call (reading, fitting, writing). For reference beside it: the best EMA and the best
raw output of run 0 over the steps it ran (oracles: they read the clean image).

Each image is one run directory ``DIR/NAME`` plus ``DIR/NAME.json`` (this benchmark's
measurement); both are kept and reused, so the benchmark resumes. A kept measurement is reused
only if it was made with the same runs, stopping default and step cap. Wall times are only
comparable within one quiet window: the report gives each image's thread count and machine.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dipscope.images import read_image
from dipscope.time_to_result import denoise_defaults, kept_part, network_of, timed_denoise

PAIRS = Path(__file__).resolve().parents[1] / "results" / "denoise-table" / "cpu-study-x4" / "inputs"


def pairs_in(folder: Path) -> dict[str, tuple[Path, Path]]:
    """``NAME-noisy.png`` / ``NAME-clean.png`` pairs of ``folder``, by name."""
    pairs = {p.name[: -len("-noisy.png")]: p for p in sorted(folder.glob("*-noisy.png"))}
    return {name: (noisy, folder / f"{name}-clean.png") for name, noisy in pairs.items()
            if (folder / f"{name}-clean.png").is_file()}


def settings(runs: int | None, max_steps: int | None, levels: int | None, preset: str | None = None) -> dict[str, Any]:
    """What a kept measurement must have been made with to be reused (``preset`` None: the
    denoising default; ``runs`` None: the preset's, recorded as the number it resolves to)."""
    return {**denoise_defaults(preset, runs), "max_steps": max_steps, "levels": levels}


def oracles(run_dir: Path) -> dict[str, float | None]:
    """Run 0's best EMA and best raw output over the steps it ran (from its metrics.csv)."""
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    best = {}
    for key, column in (("best_ema_psnr", "psnr_ema"), ("best_output_psnr", "psnr")):
        values = [float(r[column]) for r in rows if r.get(column) not in (None, "")]
        best[key] = max(values) if values else None
    return best


def measure(name: str, noisy: Path, clean: Path, out: Path, kept: dict[str, Any]) -> dict[str, Any]:
    """Denoise one pair with the defaults into ``out/name``; the measurement row (the machine
    and the settings are added where it is kept, :func:`~dipscope.time_to_result.kept_part`)."""
    run, seconds = timed_denoise(read_image(noisy), out / name, clean=read_image(clean), runs=kept["runs"],
                                 preset=kept["preset"], steps=kept["max_steps"],
                                 network=network_of(kept["preset"], kept["levels"]),
                                 record={"image": {"path": str(noisy)}})
    picks = run.stopping.get("runs", [run.stopping])
    return {"image": name, "psnr": run.stopping["result_psnr"], "run_psnrs": [p["result_psnr"] for p in picks],
            "steps_chosen": [p["step"] for p in picks],
            "steps_fitted": [r.steps_done for r in run.results], "sigma_255": picks[0].get("sigma_255"),
            "seconds": seconds, "fit_seconds": [r.seconds for r in run.results],
            "precision": run.results[0].precision, "threads": torch.get_num_threads(), **oracles(out / name)}


def measure_all(folder: Path, out: Path, runs: int | None = None, max_steps: int | None = None,
                levels: int | None = None, only: list[str] | None = None, preset: str | None = None) -> list[dict[str, Any]]:
    """Every pair of ``folder`` (or those named in ``only``), measured or reused from ``out``."""
    kept = settings(runs, max_steps, levels, preset)
    rows = []
    for name, (noisy, clean) in pairs_in(folder).items():
        if only and name not in only:
            continue
        rows.append(kept_part(out, name, kept, lambda: measure(name, noisy, clean, out, kept)))
    return rows


def report(rows: list[dict[str, Any]], folder: Path) -> str:
    """The per-image table, the mean PSNR and the total wall time."""
    from dipscope.experiments.common import fmt, markdown_table

    if not rows:
        return "No pair measured yet.\n"
    runs = rows[0]["settings"]["runs"]
    header = ["image", "PSNR dB", "step(s) chosen", "steps fitted", "σ̂ (0–255)", "wall s", "threads",
              "run 0: best EMA dB", "run 0: best output dB"]
    body = [[r["image"], f"{r['psnr']:.2f}", ", ".join(map(str, r["steps_chosen"])),
             ", ".join(map(str, r["steps_fitted"])), fmt(r["sigma_255"], ".1f"), f"{r['seconds']:.0f}",
             str(r["threads"]), fmt(r["best_ema_psnr"]), fmt(r["best_output_psnr"])] for r in rows]
    machines = sorted({r["machine"] for r in rows})
    total = sum(r["seconds"] for r in rows)
    return (f"# `dipscope denoise` with its defaults on the pairs of `{folder}`\n\n"
            f"Preset {rows[0]['settings']['preset']}, {runs} run(s) per image averaged; stopping rule "
            f"{rows[0]['settings']['stop']}; precision "
            f"{', '.join(sorted({r['precision'] for r in rows}))}. Measured on: {'; '.join(machines)}.\n\n"
            + markdown_table(header, body)
            + f"\n**Mean {np.mean([r['psnr'] for r in rows]):.2f} dB** over {len(rows)} images; total wall time "
              f"{total / 60:.1f} min ({sum(sum(r['steps_fitted']) for r in rows)} steps fitted in all).\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, default=PAIRS, help="folder of NAME-noisy.png / NAME-clean.png")
    parser.add_argument("--out", type=Path, required=True, help="run directories and kept measurements")
    parser.add_argument("--runs", type=int, default=None, help="seeds per image (default: the preset's, as dipscope denoise)")
    parser.add_argument("--images", default=None, help="comma-separated names (default: every pair)")
    parser.add_argument("--preset", default=None, help="another preset than the denoising default (e.g. ulyanov2018)")
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--levels", type=int, default=None)
    parser.add_argument("--md", type=Path, help="write the Markdown report here")
    args = parser.parse_args()
    rows = measure_all(args.pairs, args.out, args.runs, args.max_steps, args.levels,
                       args.images.split(",") if args.images else None, args.preset)
    text = report(rows, args.pairs)
    if args.md:
        args.md.write_text(text)
    print(text)
