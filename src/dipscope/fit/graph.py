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
with its weight cache off.
"""

from __future__ import annotations

from typing import Callable

import torch


def graph_capture_possible(device: torch.device) -> bool:
    """Whether a training step on ``device`` can be captured as a CUDA graph."""
    return device.type == "cuda" and torch.cuda.is_available()


class StepGraph:
    """Calls ``body`` as one training step: eagerly for the first ``warmup`` calls, then once
    captured into a CUDA graph that every later call replays.

    The warm-up calls run on a side stream, as capture requires (cuDNN picks its algorithms,
    autograd and Adam allocate their state there); they are real steps of the fit. The call
    that captures also replays, so every call performs exactly one step.
    """

    def __init__(self, body: Callable[[], None], warmup: int = 3) -> None:
        self.body = body
        self.warmup = warmup
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None

    def __call__(self) -> None:
        if self.graph is not None:
            self.graph.replay()
            return
        if self.calls < self.warmup:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self.body()
            torch.cuda.current_stream().wait_stream(side)
            self.calls += 1
            return
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self.body()
        graph.replay()
        self.graph = graph
