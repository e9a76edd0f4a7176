"""One training step replayed as a CUDA graph.

A DIP fit repeats one step of fixed shapes thousands of times: the network's forward pass on
``z`` (plus a fresh perturbation), the loss, the backward pass and Adam's update. On a GPU
a small network's step is dominated by the CPU launching its hundreds of kernels; a CUDA graph
records those launches once and replays them with one call (``torch.cuda.graphs``).

What a captured step may do is narrow, and :class:`StepGraph` enforces it by construction:
``body`` reads only tensors whose storage never changes (the caller copies each step's fresh
input into a fixed buffer before calling), writes its results to tensors it keeps (the
optimiser's parameters and state, and whatever ``body`` stores on its owner), allocates
nothing that outlives the step, and synchronises nothing with the CPU. Adam must be created
with ``capturable=True`` (its step count then lives on the device) and autocast must run
with its weight cache off. Anything that changes the parameters between replays must do so
in place (``p.copy_``), never by re-binding ``p.data``: the graph keeps the storage it captured.
"""

from __future__ import annotations

from typing import Callable

import torch


def graph_capture_possible(device: torch.device) -> bool:
    """Whether a training step on ``device`` can be captured as a CUDA graph."""
    return device.type == "cuda" and torch.cuda.is_available()


class StepGraph:
    """Calls ``body`` as one training step on ``device``: eagerly for the first ``warmup``
    calls, then once captured into a CUDA graph that every later call replays.

    The warm-up calls run on a side stream, as capture requires (cuDNN picks its algorithms,
    autograd and Adam allocate their state there); they are real steps of the fit. The call
    that captures also replays, so every call performs exactly one step. Every call runs with
    ``device`` current, so ``cuda:1`` captures on device 1 whatever the current device is.
    """

    def __init__(self, body: Callable[[], None], device: torch.device, warmup: int = 3) -> None:
        self.body = body
        self.device = device
        self.warmup = warmup
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None

    def __call__(self) -> None:
        with torch.cuda.device(self.device):
            if self.graph is not None:
                self.graph.replay()
            elif self.calls < self.warmup:
                self._warm_up()
            else:
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    self.body()
                graph.replay()
                self.graph = graph

    def _warm_up(self) -> None:
        main = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(device=self.device)
        side.wait_stream(main)
        try:
            with torch.cuda.stream(side):
                self.body()
        finally:  # even when interrupted: later work on the main stream must see the step's writes
            main.wait_stream(side)
        self.calls += 1
