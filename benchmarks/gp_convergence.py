"""Monte-Carlo convergence of the GP kernels: max |Δc(τ)| against width C and samples S.

For the depth-2 conv-ReLU net and the 3-level encoder-decoder of the tests (n = 128, white
input, no BatchNorm), compare the analytic stationarised correlation c(τ), τ ≤ 16, with the
empirical one of S random networks of width C. The error has two parts: Monte-Carlo noise
(∝ S^-1/2, estimated by the batch-means standard error) and finite-width bias (∝ 1/C, what
remains at large S). Writes results/gp/convergence.{md,csv}.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gp_convergence.py [--quick]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from dipscope import gp
from dipscope.experiments.common import markdown_table
from dipscope.files import write_csv
from dipscope.models import SkipSpec

N, LAG, SEED = 128, 16, 0


def specs() -> dict[str, gp.GPSpec]:
    ed = SkipSpec(channels_down=(4,) * 3, channels_up=(4,) * 3, channels_skip=(1,) * 3, in_channels=None,
                  act="relu", batchnorm=False, pad="zero", upsample="bilinear", sigmoid=False)
    return {"conv-relu d=2": gp.conv_relu(2), "enc-dec L=3 (bilinear)": gp.from_skip(ed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small grid (seconds)")
    parser.add_argument("--out", type=Path, default=Path("results/gp"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    widths = (8, 16) if args.quick else (8, 32, 128)
    counts = (200, 400) if args.quick else (500, 2000, 8000)
    rows, csv_rows = [], []
    for name, spec in specs().items():
        c = gp.correlation(gp.stationarize(gp.kernel(spec, N), LAG))
        for C in widths:
            for S in counts:
                t = time.perf_counter()
                mc = gp.monte_carlo(spec, N, width=C, samples=S, seed=SEED, max_lag=LAG)
                seconds = time.perf_counter() - t
                err = np.abs(mc.c(LAG) - c)
                se = float(mc.standard_error().max())
                rows.append([name, C, S, f"{err.max():.4f}", f"{err.mean():.4f}", f"{se:.4f}", f"{seconds:.1f}"])
                csv_rows.append({"model": name, "width": C, "samples": S, "max_abs_dc": float(err.max()),
                                 "mean_abs_dc": float(err.mean()), "batch_se_max": se, "seconds": seconds})
                print(*rows[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "convergence.csv", csv_rows)
    text = ("# GP kernels: Monte-Carlo error against width C and samples S\n\n"
            f"`benchmarks/gp_convergence.py`: n = {N}, white input, lags τ ≤ {LAG}, seed {SEED}, float32 networks, "
            "one CPU thread. Δc = empirical − analytic stationarised correlation; SE = batch-means standard "
            "error of ĉ (10 batches), max over τ.\n\n"
            + markdown_table(["model", "C", "S", "max |Δc|", "mean |Δc|", "SE (max)", "seconds"], rows))
    (args.out / "convergence.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
