"""Speed of one DIP step: reference vs fast execution, GFLOP/s, peak memory, grouped runs.

Usage: python benchmarks/step_speed.py [--quick] [--steps N] [--device D]
Prints the report and writes it to benchmarks/step_speed-latest.md (RESULTS.md quotes it).
See dipscope.bench for the method.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dipscope.bench import run

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-memory", action="store_true")
    args = parser.parse_args()
    out = Path(__file__).with_name("step_speed-latest.md")
    print(run(steps=args.steps, quick=args.quick, device=args.device, memory=not args.no_memory, results=out))
    print(f"(written to {out})")
