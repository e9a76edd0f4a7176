"""CUDA graphs give the numbers of the eager step: the fast step replayed as a CUDA graph
(``--cuda-graph``) against the same step run eagerly, same seed, fp32.

Prints the largest relative difference of the per-step losses and the largest absolute
difference of the final outputs, and exits 1 when they disagree beyond what cuDNN's own
run-to-run nondeterminism explains (the tolerances below). CUDA only.

    python benchmarks/graph_parity.py [--steps 100] [--size 128] [--runs 1]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

import numpy as np
import torch

from dipscope.fit import fit_runs
from dipscope.physics import GaussianNoise
from dipscope.presets import preset
from dipscope.time_to_result import skimage_photo

LOSS_RTOL = 0.05  # largest relative difference of any step's loss
OUTPUT_ATOL = 0.02  # largest absolute difference of the final output, on [0, 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--runs", type=int, default=1, help="R runs fitted as one grouped network")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    if not torch.cuda.is_available() or not args.device.startswith("cuda"):
        print("error: CUDA graphs need a CUDA device", file=sys.stderr)
        return 2
    clean = skimage_photo("astronaut", args.size)
    noisy = GaussianNoise(25 / 255, 0)(clean, clip=True)
    spec, base = preset("ulyanov2018")
    config = replace(base, steps=args.steps, device=args.device, precision="fp32")
    seeds = list(range(args.runs))
    eager = fit_runs(spec, noisy, config, seeds=seeds, group=args.runs > 1, ssim=False)
    graphed = fit_runs(spec, noisy, replace(config, cuda_graph=True), seeds=seeds, group=args.runs > 1, ssim=False)
    worst_loss = max(float(np.max(np.abs(g.losses - e.losses) / np.abs(e.losses))) for e, g in zip(eager, graphed))
    worst_out = max(float((g.final - e.final).abs().max()) for e, g in zip(eager, graphed))
    # a graph that replayed nothing would leave the loss flat after the warm-up: far outside LOSS_RTOL
    ok = worst_loss <= LOSS_RTOL and worst_out <= OUTPUT_ATOL
    print(f"{args.steps} steps, {args.size}×{args.size}, R = {args.runs}, fp32, {torch.cuda.get_device_name()}: "
          f"max relative |Δ loss| {worst_loss:.2e} (≤ {LOSS_RTOL}), max |Δ final output| {worst_out:.2e} "
          f"(≤ {OUTPUT_ATOL}): {'agree' if ok else 'DISAGREE'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
