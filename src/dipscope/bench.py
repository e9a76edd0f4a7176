"""Speed benchmark of the fit step: reference vs fast execution, and runs fitted together.

Timings come from the real fit loop (:func:`dipscope.fit.fit_runs`): a callback stamps the
clock at every step, the first ``warmup`` steps of each chunk are dropped, and the two modes
run in alternating chunks so that a change in machine load hits both alike. FLOPs per step
are counted once per configuration with ``torch.utils.flop_counter``; peak memory is measured
in a fresh subprocess per configuration (growth of the resident set over its value before the
fit, sampled every 2 ms, on a CPU; ``max_memory_allocated`` on CUDA).
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from .files import write_text
from .fit import REFERENCE_MODE, Callback, FitState, fit_runs
from .models import SkipSpec, build, input_shape, spec_to_dict
from .presets import preset
from .runtime import cpu_has_native_bf16, describe_device, resolve_device, versions

REFERENCE = REFERENCE_MODE  # the reference mode, defined once in dipscope.fit
FAST = dict(precision="auto", channels_last=None, fast=True, compile=False)
GRAPH = dict(FAST, cuda_graph=True)  # CUDA only: the fast step captured once and replayed


class StepClock(Callback):
    """Records the wall-clock time of every observation (observe_every = 1: every step)."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def observe(self, state: FitState) -> None:
        self.stamps.append(time.perf_counter())


@dataclass
class Case:
    name: str
    spec: SkipSpec
    size: int


def cases(quick: bool = False) -> list[Case]:
    standard, _ = preset("ulyanov2018")
    study, _ = preset("chakrabarty2019")
    sizes = [64, 128] if quick else [128, 256, 512]
    out = [Case(f"standard {s}×{s}", standard, s) for s in sizes]
    out.append(Case("study-256ch 128×128" if not quick else "study-256ch 64×64", study, 64 if quick else 128))
    return out


def step_flops(spec: SkipSpec, size: int, runs: int = 1) -> int:
    """FLOPs of one forward + backward pass (the Adam update itself is negligible)."""
    from torch.utils.flop_counter import FlopCounterMode

    shape = (3, size, size)
    net = build(spec, shape)
    z = torch.rand(1, *input_shape(spec, shape))
    with FlopCounterMode(display=False) as counter:
        out = net(z)
        out.square().mean().backward()
    return runs * counter.get_total_flops()


def time_modes(spec: SkipSpec, size: int, modes: dict[str, dict[str, Any]], steps: int, chunks: int = 2,
               device: str = "auto", runs: int = 1, group: bool | None = None, every: int = 5) -> dict[str, list[float]]:
    """Seconds per step of each mode, from ``chunks`` alternating fits per mode.

    Each fit runs ``every`` warm-up steps, then ``steps`` timed steps observed every ``every``
    steps — the loop's normal rhythm, so the per-observation work (a device sync, the
    divergence check's weight copy) is paid as often as in a real run. One sample is the
    mean step time over one observation interval.
    """
    _, base = preset("ulyanov2018")
    target = torch.rand(3, size, size, generator=torch.Generator().manual_seed(0))
    intervals = max(steps // every, 1)
    times: dict[str, list[float]] = {name: [] for name in modes}
    for _ in range(chunks):
        for name, mode in modes.items():
            clock = StepClock()
            config = replace(base, steps=every * (intervals + 1), observe_every=every, device=device, **mode)
            fit_runs(spec, target, config, seeds=list(range(runs)), callbacks=[[clock]] + [[] for _ in range(runs - 1)],
                     ssim=False, group=group, parallel=False)  # separate runs: in turn, as the report says
            stamps = clock.stamps[1:]  # from the end of the warm-up interval on
            times[name] += [(b - a) / every for a, b in zip(stamps[:-1], stamps[1:])]
    return times


def peak_memory(spec: SkipSpec, size: int, mode: dict[str, Any], device: str) -> float | None:
    """Peak memory (MiB) of a 3-step fit, measured in a fresh subprocess."""
    code = f"""
import os, threading, time, torch
from dataclasses import replace
from dipscope.fit import fit
from dipscope.models import spec_from_dict
from dipscope.presets import preset
spec = spec_from_dict({spec_to_dict(spec)!r})
_, base = preset("ulyanov2018")
target = torch.rand(3, {size}, {size})
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page
peak, done = [0], [False]
def sample():
    while not done[0]:
        peak[0] = max(peak[0], rss())
        time.sleep(0.002)
before = rss()
thread = threading.Thread(target=sample, daemon=True)
thread.start()
config = replace(base, steps=3, observe_every=10, device={device!r}, **{mode!r})
fit(spec, target, config, ssim=False)
done[0] = True
thread.join()
if torch.cuda.is_available() and {device!r} != "cpu":
    print(torch.cuda.max_memory_allocated() / 2**20)
else:
    print((peak[0] - before) / 2**20)
"""
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True)
        return float(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError):
        return None


def run(steps: int = 10, quick: bool = False, device: str = "auto", memory: bool = True,
        results: Path | None = None) -> str:
    """Run the whole benchmark; return (and optionally write) its Markdown report."""
    dev = resolve_device(device)
    lines: list[str] = []
    say = lines.append
    info = describe_device(dev)
    say(f"Machine: {info.get('name')} ({info['type']}, {info.get('cpu_count', '')} CPUs, torch threads "
        f"{info['torch_threads']}, CPU capability {info.get('cpu_capability', '-')}, native bf16: "
        f"{cpu_has_native_bf16() if dev.type == 'cpu' else 'n/a'})")
    v = versions()
    say(f"Software: dipscope {v['dipscope']}, torch {v['torch']}, Python {v['python']}, {platform.platform()}")
    say(f"Method: the real fit loop (ulyanov2018 settings: input noise, EMA, divergence checks, observation every "
        f"5 steps); per mode 2 alternating chunks of 5 warm-up + {max(steps // 5, 1) * 5} timed steps; the figure is "
        "the median over 5-step intervals of the mean step time.")
    say("Reference = fp32, NCHW, eager, stock Adam (the original implementation's execution). "
        "Fast = the default path (auto precision/layout, fused Adam).")
    say("")
    say("| network | reference ms/step | fast ms/step | speed-up | GFLOP/step | ref GFLOP/s | fast GFLOP/s | "
        "peak MiB ref | peak MiB fast |")
    say("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for case in cases(quick):
        n = steps if case.size <= 256 else max(5, steps // 2)  # 512²: ~5 s/step on 2 cores
        t = time_modes(case.spec, case.size, {"reference": REFERENCE, "fast": FAST}, n, device=device)
        ref, fast = statistics.median(t["reference"]), statistics.median(t["fast"])
        flops = step_flops(case.spec, case.size)
        mem = [peak_memory(case.spec, case.size, m, device) if memory else None for m in (REFERENCE, FAST)]
        fmt = [f"{m:.0f}" if m is not None else "-" for m in mem]
        say(f"| {case.name} | {1000 * ref:.0f} | {1000 * fast:.0f} | {ref / fast:.2f}× | {flops / 1e9:.1f} | "
            f"{flops / ref / 1e9:.0f} | {flops / fast / 1e9:.0f} | {fmt[0]} | {fmt[1]} |")
        rows.append((case.name, ref, fast))
        print(lines[-1], flush=True)
    if dev.type == "cuda":
        say("")
        say("The fast step captured once as a CUDA graph and replayed (`--cuda-graph`) against the fast step:")
        say("")
        say("| network | fast ms/step | fast + CUDA graph ms/step | speed-up |")
        say("|---|---|---|---|")
        for case in cases(quick):
            t = time_modes(case.spec, case.size, {"fast": FAST, "graph": GRAPH}, steps, device=device)
            fast, graph = statistics.median(t["fast"]), statistics.median(t["graph"])
            say(f"| {case.name} | {1000 * fast:.1f} | {1000 * graph:.1f} | {fast / graph:.2f}× |")
            print(lines[-1], flush=True)
    say("")
    say("Runs fitted together (fast mode, standard network): time per step of R runs, per run, and the "
        "throughput per run against R sequential single runs (grouped = one network of grouped convolutions"
        + ("; on CUDA also with the step replayed as a CUDA graph" if dev.type == "cuda" else "") + ").")
    say("")
    say("| size | R | mode | sequential ms/step/run | grouped ms/step | grouped ms/step/run | throughput gain |")
    say("|---|---|---|---|---|---|---|")
    standard, _ = preset("ulyanov2018")
    modes = {"fast": FAST, "fast + graph": GRAPH} if dev.type == "cuda" else {"fast": FAST}
    for size in ([64] if quick else [64, 128]):
        for name, mode in modes.items():
            single = statistics.median(time_modes(standard, size, {name: mode}, steps, device=device)[name])
            for R in ((1, 4, 16) if dev.type == "cuda" else (1, 2, 4)):
                grouped = statistics.median(
                    time_modes(standard, size, {name: mode}, steps, device=device, runs=R, group=True)[name]
                )
                say(f"| {size}×{size} | {R} | {name} | {1000 * single:.1f} | {1000 * grouped:.1f} | "
                    f"{1000 * grouped / R:.1f} | {single * R / grouped:.2f}× |")
                print(lines[-1], flush=True)
    report = "\n".join(lines) + "\n"
    if results is not None:
        write_text(results, report)
    return report
