"""Several runs at once on a multi-core CPU: one Python thread per run, the cores split between them.

A DIP network of a few hundred thousand parameters on a 128×128 image does not keep two CPU
cores busy: its convolutions are too small to split well across threads (on a 2-core AMD EPYC a
64-channel step took 80 ms with 2 threads and ~95 ms with one, ``benchmarks/RESULTS.md``). Two
such runs, each on its own core, therefore finish much sooner than the same two runs one after the
other with both cores each; three one-thread runs share two cores without loss. PyTorch releases
the GIL inside its kernels, so plain threads do this within one process: the runs keep their
callbacks, their interrupt handling and their results in the caller's process, exactly as runs
fitted in turn.

Each run draws from its own generators (weights and input are made before the threads start, in
the caller's thread), so its numbers do not depend on the other runs; with the same intra-op
thread count a run fitted here equals the same run fitted alone.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Protocol, Sequence

import torch

from .types import FitResult


class Runnable(Protocol):
    stop_event: threading.Event | None

    def run(self) -> list[FitResult]: ...


#: At most this many runs per torch thread at once (more wait for a free slot).
RUNS_PER_THREAD = 2


def parallel_workers(runs: int, device: torch.device, threads: int | None = None) -> int:
    """How many runs to fit at once: on a CPU with two or more torch threads, every run (up to
    :data:`RUNS_PER_THREAD` per thread), each with ``threads // workers`` threads (at least one);
    elsewhere 1 (CUDA groups runs into one network instead; one thread fits them in turn).

    More runs than threads share the cores: three one-thread runs on two cores took 1.51× the
    time of two (``benchmarks/RESULTS.md``), where two at once and the third after them would
    take about 2× with one core idle during the third.
    """
    threads = threads if threads is not None else torch.get_num_threads()
    if device.type != "cpu" or runs < 2 or threads < 2:
        return 1
    return min(runs, RUNS_PER_THREAD * threads)


def fit_in_threads(fits: Sequence[Runnable], workers: int) -> list[FitResult]:
    """Run every fit's ``run()``, ``workers`` at a time, each with ``threads // workers`` torch
    threads; the results in the order of ``fits``.

    A stop signal (Ctrl-C, SIGTERM) reaches the calling thread as :class:`KeyboardInterrupt`;
    it is passed on to every fit through its ``stop_event``, each of which then ends as an
    interrupted result with the outputs it reached — the same as an interrupted fit in turn.
    """
    threads = torch.get_num_threads()
    stop = threading.Event()
    for f in fits:
        f.stop_event = stop
    torch.set_num_threads(max(1, threads // workers))
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dipscope-run") as pool:
            futures: list[Future[list[FitResult]]] = []
            try:
                for f in fits:
                    futures.append(pool.submit(f.run))
                while wait(futures, timeout=0.2).not_done:
                    pass
            except KeyboardInterrupt:
                stop.set()  # every running fit stops at its next step; the ones not started stop at once
            # (a fit not yet submitted when the signal came has no result: the caller sees fewer results
            # than fits, as when fits in turn are interrupted before the last one)
            results = [r for future in futures for r in future.result()]
    finally:
        torch.set_num_threads(threads)
    for r in results:
        r.at_once = workers
    return results
