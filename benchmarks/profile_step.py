"""Where the default network's step goes on a CPU, and its effective rate.

Usage: python benchmarks/profile_step.py [--size 128] [--steps 40] [--runs R] [--width W] [--native]

Two measurements of the ``dipscope`` preset's fit (its network, input noise and EMA; fp32 or the
``auto`` precision; no stopping rule):

1. **Per op**: ``torch.profiler`` over ``--steps`` steps of one run on one torch thread — what
   each of the default's runs does when R runs share the cores one thread each. Ops are grouped
   (convolution forward and backward, BatchNorm, activation, padding, upsampling, copies and
   fills, input noise, Adam, the rest) with their share of the profiled CPU time, and the
   convolutions' rate (their FLOPs from ``torch.utils.flop_counter`` over their profiled time).
2. **The default's wall time**: R runs at once, as ``dipscope denoise`` fits them
   (:func:`dipscope.fit.parallel.fit_in_threads`, the default threads), milliseconds per step of
   the ensemble and the effective rate ``R × FLOPs per step / seconds per step``.

``--native`` runs PyTorch's own backward kernels of padding and upsampling (the reference mode's,
:func:`dipscope.models.use_native_kernels`) instead of the vectorised adjoints. Time only on a
quiet machine; the report names the CPU.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch
from torch.profiler import ProfilerActivity, profile

from dipscope.bench import StepClock, step_flops
from dipscope.fit.loop import GroupFit
from dipscope.fit.parallel import fit_in_threads, parallel_workers
from dipscope.models import use_native_kernels
from dipscope.presets import default_runs, preset
from dipscope.runtime import machine

GROUPS = (  # (group, substrings of aten op names), first match wins
    ("convolution", ("conv",)),
    ("BatchNorm", ("batch_norm",)),
    ("activation", ("leaky_relu", "relu", "sigmoid")),
    ("padding", ("pad",)),
    ("upsampling", ("upsample", "interpolate")),
    ("copies and fills", ("copy", "fill", "zero", "contiguous", "cat", "clone")),
    ("input noise", ("normal", "randn")),
    ("Adam", ("adam", "Optimizer")),
)


def group_of(name: str) -> str:
    low = name.lower()
    for group, keys in GROUPS:
        if any(k.lower() in low for k in keys):
            return group
    return "other"


def make_fit(spec, config, target: torch.Tensor, seed: int, clocks: list, native: bool) -> GroupFit:
    fit = GroupFit(spec, target, replace(config, seed=seed), [seed], None, None, [clocks], False)
    if native:
        use_native_kernels(fit.net)
    return fit


def conv_flops(spec, size: int) -> int:
    """FLOPs of the convolutions alone in one forward + backward pass."""
    from torch.utils.flop_counter import FlopCounterMode

    from dipscope.models import build, input_shape

    shape = (3, size, size)
    net = build(spec, shape)
    z = torch.rand(1, *input_shape(spec, shape))
    with FlopCounterMode(display=False) as counter:
        net(z).square().mean().backward()
    return sum(v for op, v in counter.get_flop_counts()["Global"].items() if "conv" in str(op))


def per_op(spec, config, target: torch.Tensor, steps: int, native: bool) -> tuple[dict[str, float], float]:
    """Milliseconds per step by op group, one run on one thread; and the profiled step time."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fit = make_fit(spec, replace(config, steps=steps + 10), target, 0, [], native)
        fit.start = time.perf_counter()
        for s in range(1, 6):
            fit.step(s)
        t0 = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for s in range(6, 6 + steps):
                fit.step(s)
        wall = (time.perf_counter() - t0) / steps * 1e3
    finally:
        torch.set_num_threads(threads)
    groups: dict[str, float] = {}
    for event in prof.key_averages():
        groups[group_of(event.key)] = groups.get(group_of(event.key), 0.0) + event.self_cpu_time_total / 1e3 / steps
    return groups, wall


def at_once(spec, config, target: torch.Tensor, runs: int, steps: int, native: bool, every: int = 5) -> float:
    """Milliseconds per step of ``runs`` runs fitted at once, as ``dipscope denoise`` fits them."""
    clocks = [StepClock() for _ in range(runs)]
    config = replace(config, steps=every * (steps // every + 2), observe_every=every)
    fits = [make_fit(spec, config, target, seed, [clock], native) for seed, clock in enumerate(clocks)]
    fit_in_threads(fits, parallel_workers(runs, torch.device("cpu")))
    per_run = [(c.stamps[-1] - c.stamps[1]) / (every * (len(c.stamps) - 2)) for c in clocks]
    return max(per_run) * 1e3  # the ensemble moves at its slowest run's pace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--runs", type=int, default=default_runs("dipscope"))
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--native", action="store_true", help="PyTorch's own backward kernels of padding and upsampling")
    args = parser.parse_args()
    spec, config = preset("dipscope")
    if args.width:
        spec = replace(spec, channels_down=(args.width,) * spec.levels, channels_up=(args.width,) * spec.levels)
    config = replace(config, device="cpu")
    target = torch.rand(3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    flops = step_flops(spec, args.size)
    conv = conv_flops(spec, args.size)
    groups, wall = per_op(spec, config, target, args.steps, args.native)
    total = sum(groups.values())
    print(f"# {machine()}; {spec.channels_down[0]}-channel `dipscope` network, {args.size}×{args.size}, "
          f"{'native' if args.native else 'vectorised'} padding/upsampling backward")
    print(f"\nOne run, one thread, {args.steps} profiled steps: {wall:.1f} ms a step under the profiler "
          f"({total:.1f} ms of op time); {flops / 1e9:.2f} GFLOP a step, {conv / 1e9:.2f} of them convolutions.\n")
    print("| ops | ms / step | share |")
    print("|---|---|---|")
    for name, ms in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {ms:.1f} | {100 * ms / total:.0f} % |")
    print(f"\nConvolutions run at {conv / (groups.get('convolution', 0) / 1e3) / 1e9:.0f} GFLOP/s on one thread "
          f"(profiled time).")
    ms = at_once(spec, config, target, args.runs, args.steps, args.native)
    print(f"\n{args.runs} runs at once ({torch.get_num_threads()} torch threads, unprofiled): {ms:.1f} ms a step; "
          f"effective {args.runs * flops / (ms / 1e3) / 1e9:.0f} GFLOP/s.")


if __name__ == "__main__":
    main()
