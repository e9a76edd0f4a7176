"""Seconds a step of each model of the denoising table at ``--profile paper``, in fp32 and bf16,
to project what a sweep costs on this machine.

Each (model, precision) is fitted twice on a random 128×128 colour image, for ``n`` and ``N``
steps (no observation in between) after a one-step warm-up fit; the step time is ``(t_N − t_n) / (N − n)`` and the setup
(building the network, Adam's state, the first steps' allocations) is ``t_n − n · step``. Run it
on a quiet machine with the thread count of the sweep (one thread for a background sweep).

Freed memory is kept for reuse as the ``dipscope`` command keeps it
(:func:`dipscope.runtime.keep_freed_memory`); ``DIPSCOPE_MALLOC=system`` times glibc's default.

Usage: OMP_NUM_THREADS=1 python benchmarks/paper_step_speed.py [--models dip,relunet,linear-2048] [--size 128]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from dipscope.experiments.common import model_choice
from dipscope.fit import fit
from dipscope.runtime import keep_freed_memory, machine

#: (n, N) steps timed per model: enough for a stable difference, little enough to take seconds
STEPS = {"dip": (3, 13), "relunet": (50, 300), "linear-2048": (3, 23), "linear-128": (10, 100)}


def seconds(model: str, precision: str, steps: int, size: int) -> float:
    spec, config = model_choice(model, "paper")
    config = replace(config, steps=steps, device="cpu", precision=precision, observe_every=10**9)
    noisy = torch.rand(3, size, size, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    fit(spec, noisy, config, ssim=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="dip,relunet,linear-2048")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    print(f"{machine()}; allocator: {keep_freed_memory()}; {args.size}×{args.size}\n")
    print("| model | precision | ms a step | setup s | a run of the paper's steps, min |")
    print("|---|---|---|---|---|")
    for model in args.models.split(","):
        n, big_n = STEPS.get(model.split(":")[0], (3, 13))
        for precision in args.precisions.split(","):
            seconds(model, precision, 1, args.size)  # warm-up: one-time costs of the first fit
            short, long = seconds(model, precision, n, args.size), seconds(model, precision, big_n, args.size)
            step = (long - short) / (big_n - n)
            run_steps = model_choice(model, "paper")[1].steps
            print(f"| {model} | {precision} | {step * 1000:.0f} | {short - n * step:.1f} | "
                  f"{(short - n * step + run_steps * step) / 60:.1f} |", flush=True)


if __name__ == "__main__":
    main()
