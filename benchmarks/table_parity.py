"""Two denoising tables made two ways (fp32 and bf16, CPU and GPU, two code versions), compared
run by run.

For every run ``MODEL/IMAGE/run-K`` finished in both folders (``dipscope experiment denoise-table
--out A`` and ``--out B``, the same pairs and seeds), the difference of the best-snapshot PSNR
``Δ = PSNR_B − PSNR_A``; the summary is the mean |Δ| and the mean Δ per model, with the target
of issue 15 (mean |Δ| ≤ 0.15 dB before a precision may make cells of the published table).
The inputs must be the same pairs: each folder's ``inputs/IMAGE-noisy.png`` is compared byte
for byte, and a run whose pair differs is refused.

Two runs of one seed in two precisions follow different trajectories after the first rounding
difference, so Δ includes a share of the run-to-run spread (compare it with the spread of two
seeds in one precision).

Usage: python benchmarks/table_parity.py A B [--out FILE.md]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

from dipscope.runs import read_record
from dipscope.runtime import device_in_words

TARGET_DB = 0.15


def finished_runs(table: Path) -> dict[str, dict[str, Any]]:
    """``MODEL/IMAGE/run-K`` → the run's summary, for every finished run under ``table``."""
    runs = {}
    for path in sorted(table.glob("*/*/run-*/run.json")):
        record = read_record(path.parent)
        if record and isinstance(record.get("summary"), dict):
            runs[str(path.parent.relative_to(table))] = record["summary"]
    return runs


def same_pair(a: Path, b: Path, image: str) -> bool:
    """True when both tables denoised the same noisy image (byte-identical input PNG)."""
    pa, pb = (t / "inputs" / f"{image}-noisy.png" for t in (a, b))
    return pa.is_file() and pb.is_file() and pa.read_bytes() == pb.read_bytes()


def compare(a: Path, b: Path) -> tuple[list[dict[str, Any]], dict[str, dict[str, float]]]:
    """Rows (one per run in both tables) and, per model, mean |Δ|, mean Δ and the count;
    ValueError if an image's noisy input differs between the tables."""
    ra, rb = finished_runs(a), finished_runs(b)
    rows = []
    for key in sorted(set(ra) & set(rb)):
        model, image, _ = key.split("/")
        if not same_pair(a, b, image):
            raise ValueError(f"{image}: the two tables' noisy inputs differ; compare runs on the same pairs")
        sa, sb = ra[key], rb[key]
        rows.append({"key": key, "model": model, "a": sa["best_psnr"], "b": sb["best_psnr"],
                     "delta": sb["best_psnr"] - sa["best_psnr"], "steps": (sa["best_step"], sb["best_step"]),
                     "minutes": (sa["seconds"] / 60, sb["seconds"] / 60),
                     "made_with": (f"{sa.get('precision')}, {device_in_words(sa.get('device'))}",
                                   f"{sb.get('precision')}, {device_in_words(sb.get('device'))}")})
    summary = {}
    for model in sorted({r["model"] for r in rows}):
        deltas = [r["delta"] for r in rows if r["model"] == model]
        summary[model] = {"mean_abs": statistics.mean(abs(d) for d in deltas), "mean": statistics.mean(deltas),
                          "n": len(deltas)}
    return rows, summary


def report(a: Path, b: Path, rows: list[dict[str, Any]], summary: dict[str, dict[str, float]]) -> str:
    lines = [f"Best-snapshot PSNR (dB) of the same runs in two tables: A = `{a}`, B = `{b}`.", "",
             "| run | A | B | Δ = B − A | best step A / B | min A / B |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['key']} | {r['a']:.2f} | {r['b']:.2f} | {r['delta']:+.2f} | {r['steps'][0]} / {r['steps'][1]} | "
              f"{r['minutes'][0]:.1f} / {r['minutes'][1]:.1f} |" for r in rows]
    lines += [""] + [f"A made with: {m}" for m in sorted({r['made_with'][0] for r in rows})]
    lines += [f"B made with: {m}" for m in sorted({r['made_with'][1] for r in rows})] + [""]
    for model, s in summary.items():
        verdict = "within" if s["mean_abs"] <= TARGET_DB else "OUTSIDE"
        lines.append(f"- {model}: mean |Δ| = {s['mean_abs']:.3f} dB, mean Δ = {s['mean']:+.3f} dB over {s['n']:g} runs "
                     f"({verdict} {TARGET_DB} dB)")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--out", type=Path, help="also write the Markdown report here")
    args = parser.parse_args(argv)
    for table in (args.a, args.b):
        if not table.is_dir():
            print(f"error: {table} is not a folder", file=sys.stderr)
            return 2
    try:
        rows, summary = compare(args.a, args.b)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not rows:
        print("error: no run is finished in both tables", file=sys.stderr)
        return 2
    text = report(args.a, args.b, rows, summary)
    if args.out:
        args.out.write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
