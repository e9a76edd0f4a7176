"""The CUDA-graph step (``FitConfig.cuda_graph``) on a CPU.

A CPU cannot capture a graph, so these tests stand an eager call in for the replay
(``StepGraph`` → ``body()``) and check everything around it: the fixed input buffer, the
update inside the step, observation and divergence checks after it. With no reset, the
replayed step must give exactly the numbers of the ordinary loop. The capture itself is
measured by ``benchmarks/gpu_check.sh`` on a GPU.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import dipscope.fit.loop as loop
from dipscope.errors import DipscopeError
from dipscope.fit import Callback, FitConfig, FitState, fit, fit_runs
from dipscope.models import SkipSpec
from dipscope.stopping import EarlyStopping

from test_fit import Poison, PoisonRun

SMALL = SkipSpec(in_channels=8, channels_down=(16, 16, 16), channels_up=(16, 16, 16), channels_skip=(4, 4, 4))
QUICK = FitConfig(steps=20, lr=0.01, observe_every=5, device="cpu", precision="fp32")


@pytest.fixture
def eager_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop, "graph_capture_possible", lambda device: True)
    monkeypatch.setattr(loop, "StepGraph", lambda body, device: body)


def same(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and torch.equal(a, b))


def test_the_replayed_step_computes_what_the_loop_computes(eager_graph: None, textured_grey: torch.Tensor) -> None:
    config = replace(QUICK, steps=23, reg_noise_std=0.05, ema=0.9)
    plain = fit(SMALL, textured_grey, config, clean=textured_grey, ssim=False)
    graphed = fit(SMALL, textured_grey, replace(config, cuda_graph=True), clean=textured_grey, ssim=False)
    assert same(plain.final, graphed.final) and same(plain.ema, graphed.ema) and same(plain.best, graphed.best)
    assert (plain.losses == graphed.losses).all() and plain.steps_done == graphed.steps_done == 23
    assert [r["psnr_ema"] for r in plain.history] == [r["psnr_ema"] for r in graphed.history]


def test_replayed_grouped_runs_and_a_stopping_rule_match_the_loop(eager_graph: None, textured_grey: torch.Tensor) -> None:
    noisy = (textured_grey + 0.1 * torch.randn(textured_grey.shape, generator=torch.Generator().manual_seed(1)))
    config = replace(QUICK, steps=60, lr=0.02)
    outcomes = []
    for graph in (False, True):
        stoppers = [EarlyStopping("discrepancy", noisy, sigma=0.1) for _ in range(2)]
        results = fit_runs(SMALL, noisy, replace(config, cuda_graph=graph), seeds=[0, 1], group=True,
                           callbacks=[[s] for s in stoppers], ssim=False)
        outcomes.append((results, [s.choice for s in stoppers]))
    (plain, plain_choice), (graphed, graphed_choice) = outcomes
    for p, g, pc, gc in zip(plain, graphed, plain_choice, graphed_choice):
        assert p.steps_done == g.steps_done and p.stopped_early == g.stopped_early
        assert same(p.final, g.final) and same(p.ema, g.ema)
        assert pc.step == gc.step and torch.equal(pc.image, gc.image)


class PoisonInPlace(Callback):
    """Corrupt run ``r``'s slice of every weight at step 5, in place: a captured graph keeps the
    storage it recorded, so the replayed step is poisoned the in-place way (the loop's own
    test poisons by re-binding, which leaves the step's autograd graph intact)."""

    def __init__(self, r: int = 0, runs: int = 1) -> None:
        self.r, self.runs = r, runs

    def observe(self, state: FitState) -> None:
        if state.step == 5:
            with torch.no_grad():
                for p in state.net.parameters():
                    p.unflatten(0, (self.runs, -1))[self.r].fill_(float("nan"))


def test_a_replayed_run_recovers_from_divergence_exactly_as_the_loop(eager_graph: None,
                                                                     textured_grey: torch.Tensor) -> None:
    """The check sees the loss of the weights before the replayed update; with the snapshot it
    keeps those as the good copy and restores the moments from before the bad step, so the
    reset run continues exactly as in the loop."""
    plain = fit(SMALL, textured_grey, QUICK, callbacks=[Poison()])
    graphed = fit(SMALL, textured_grey, replace(QUICK, cuda_graph=True), callbacks=[PoisonInPlace()])
    assert plain.recoveries == graphed.recoveries == [10]
    assert torch.equal(plain.final, graphed.final) and torch.equal(plain.ema, graphed.ema)
    config = replace(QUICK, cuda_graph=True)
    clean = fit_runs(SMALL, textured_grey, config, seeds=[0, 1], group=True)
    hit = fit_runs(SMALL, textured_grey, config, seeds=[0, 1], group=True, callbacks=[[], [PoisonInPlace(1, 2)]])
    loop_hit = fit_runs(SMALL, textured_grey, QUICK, seeds=[0, 1], group=True, callbacks=[[], [PoisonRun(1, 2)]])
    assert hit[0].recoveries == [] and hit[1].recoveries == [10] and torch.equal(hit[0].final, clean[0].final)
    assert torch.equal(hit[1].final, loop_hit[1].final)


def test_cuda_graphs_are_refused_off_cuda_and_off_the_fast_path(textured_grey: torch.Tensor) -> None:
    with pytest.raises(DipscopeError, match="CUDA device"):
        fit(SMALL, textured_grey, replace(QUICK, cuda_graph=True))
    for bad in (dict(fast=False), dict(compile=True), dict(pixel_batch=64)):
        with pytest.raises(DipscopeError, match="fast path"):
            replace(QUICK, cuda_graph=True, **bad).validate()
