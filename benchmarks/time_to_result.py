"""Time to the denoised image, per image and σ: ``dipscope denoise`` with its defaults against the
original protocol (the ``ulyanov2018`` preset in reference mode, 3 000 steps). See
:mod:`dipscope.time_to_result`; this is ``dipscope bench --time-to-result`` with a file output.

    python benchmarks/time_to_result.py --md benchmarks/time-to-result.md            # hours on a CPU
    python benchmarks/time_to_result.py --measure-steps 100 --md …                    # reference time extrapolated
    python benchmarks/time_to_result.py --quick                                        # a smoke run, a minute
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from dipscope.time_to_result import TimeToResult, run

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sigmas", default="15,25,50")
    parser.add_argument("--measure-steps", type=int, default=None)
    parser.add_argument("--data-dir", default=None, help="also the cbm3d9 images ×4 from this folder")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--md", type=Path, help="write the Markdown report here")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    cfg = TimeToResult.quick() if args.quick else TimeToResult(
        sigmas=tuple(float(v) for v in args.sigmas.split(",")), measure_steps=args.measure_steps)
    rows, text = run(replace(cfg, device=args.device), data_dir=args.data_dir)
    if args.md:
        args.md.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str) + "\n")
    print(text)
