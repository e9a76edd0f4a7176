"""Time to the denoised image, per image and σ: ``dipscope denoise`` with its defaults against the
original protocol (the ``ulyanov2018`` preset in reference mode, 3 000 steps). See
:mod:`dipscope.time_to_result`; this is ``dipscope bench --time-to-result`` with file outputs.

    python benchmarks/time_to_result.py --md benchmarks/time-to-result.md            # hours on a CPU
    python benchmarks/time_to_result.py --quick                                        # a smoke run, a minute

Split into parts kept under --out, so that the long untimed part runs in the background and
the timed parts on a quiet machine:

    OMP_NUM_THREADS=1 python benchmarks/time_to_result.py --out DIR --crop 128 --parts original
    python benchmarks/time_to_result.py --out DIR --crop 128 --measure-steps 50 --parts timing,ours --md FILE

The ``ensemble`` part (``dipscope denoise --runs 4``, scored as the mean of the first 1, 2 and 4
runs' stopped images) is a quality measurement with each run's fit time; it can run in the
background too:

    OMP_NUM_THREADS=1 python benchmarks/time_to_result.py --out DIR --crop 128 --sigmas 25 --parts ensemble

``--parts none`` measures nothing and reports the parts kept in ``--out``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from dipscope.time_to_result import PARTS, SKIMAGE_PHOTOS, TimeToResult, parse_parts, run

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sigmas", default="15,25,50")
    parser.add_argument("--images", default=",".join(SKIMAGE_PHOTOS))
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--measure-steps", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="keep (and reuse) every measured part here")
    parser.add_argument("--parts", default=",".join(PARTS), help="which parts to measure now; none: only report the parts kept in --out")
    parser.add_argument("--data-dir", default=None, help="also the cbm3d9 images ×4 from this folder")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--md", type=Path, help="write the Markdown report here")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    cfg = TimeToResult.quick() if args.quick else TimeToResult(
        images=tuple(args.images.split(",")), sigmas=tuple(float(v) for v in args.sigmas.split(",")),
        crop=args.crop, measure_steps=args.measure_steps)
    cfg = replace(cfg, device=args.device, out=args.out, parts=parse_parts(args.parts))
    rows, text = run(cfg, data_dir=args.data_dir)
    if args.md:
        args.md.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str) + "\n")
    print(text)
