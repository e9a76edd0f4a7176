"""Quality parity: the fast execution path restores as well as the reference one.

For 3 textured images shipped with scikit-image (crops of 'astronaut', 'coffee', 'chelsea'),
at 64×64 and 128×128, σ = 25, seeds 0–2, fit the ulyanov2018 preset in reference mode
(fp32, NCHW, eager, stock Adam) and in the default fast mode, and compare the mean best PSNR
(oracle pick over snapshots every 10 steps). Target: |Δ| ≤ 0.15 dB.

Usage: python benchmarks/quality_parity.py [--steps N] [--sizes 64,128] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from skimage import data

from dipscope.bench import FAST, REFERENCE
from dipscope.fit import fit
from dipscope.physics import GaussianNoise
from dipscope.presets import preset

IMAGES = {"astronaut": (data.astronaut, (0.12, 0.35)), "coffee": (data.coffee, (0.30, 0.35)),
          "chelsea": (data.chelsea, (0.25, 0.45))}


def crop(name: str, size: int) -> torch.Tensor:
    """A size×size crop at a fixed relative position (chosen on texture: hair, beans, fur)."""
    loader, (fy, fx) = IMAGES[name]
    a = loader()
    y, x = int(fy * a.shape[0]), int(fx * a.shape[1])
    patch = a[y:y + size, x:x + size].astype(np.float32) / 255.0
    return torch.from_numpy(np.moveaxis(patch, -1, 0).copy())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--sizes", default="64,128")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("quality_parity-latest.md"))
    args = parser.parse_args()
    spec, base = preset("ulyanov2018")
    lines = [f"Quality parity, ulyanov2018 preset, {args.steps} steps, σ = 25, seeds 0–{args.seeds - 1}, "
             "best PSNR over snapshots every 10 steps (dB).", "",
             "| size | image | reference (mean over seeds) | fast | Δ fast − ref |", "|---|---|---|---|---|"]
    summary = []
    for size in [int(s) for s in args.sizes.split(",")]:
        per_mode: dict[str, list[float]] = {"reference": [], "fast": []}
        for name in IMAGES:
            clean = crop(name, size)
            cell = {}
            for mode_name, mode in (("reference", REFERENCE), ("fast", FAST)):
                best = []
                for seed in range(args.seeds):
                    noisy = GaussianNoise(25 / 255, 100 + seed)(clean, clip=True)
                    t = time.perf_counter()
                    r = fit(spec, noisy, replace(base, steps=args.steps, seed=seed, **mode), clean=clean, ssim=False)
                    best.append(r.best_psnr)
                    print(f"{size} {name} {mode_name} seed {seed}: best {r.best_psnr:.2f} dB at {r.best_step} "
                          f"({time.perf_counter() - t:.0f} s)", flush=True)
                cell[mode_name] = statistics.mean(best)
                per_mode[mode_name] += best
            lines.append(f"| {size} | {name} | {cell['reference']:.2f} | {cell['fast']:.2f} | "
                         f"{cell['fast'] - cell['reference']:+.2f} |")
        d = statistics.mean(per_mode["fast"]) - statistics.mean(per_mode["reference"])
        summary.append(f"{size}×{size}: mean reference {statistics.mean(per_mode['reference']):.2f} dB, "
                       f"fast {statistics.mean(per_mode['fast']):.2f} dB, Δ = {d:+.3f} dB "
                       f"({'within' if abs(d) <= 0.15 else 'OUTSIDE'} 0.15 dB)")
    report = "\n".join(lines + [""] + summary) + "\n"
    args.out.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
