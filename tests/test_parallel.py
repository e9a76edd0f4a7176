"""Runs fitted at once on a multi-core CPU (dipscope.fit.parallel): same numbers as in turn, one stop for all."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from dipscope.fit import Callback, FitConfig, fit_runs
from dipscope.fit.parallel import parallel_workers
from dipscope.models import SkipSpec

SPEC = SkipSpec(in_channels=8, channels_down=(16, 16, 16), channels_up=(16, 16, 16), channels_skip=(4, 4, 4))
CONFIG = FitConfig(steps=30, lr=0.01, observe_every=10, device="cpu", precision="fp32", channels_last=False,
                   reg_noise_std=1 / 30, ema=0.99)


@pytest.fixture
def threads():
    """Set torch's thread count for a test, and put the old one back."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def test_how_many_runs_at_once() -> None:
    cpu = torch.device("cpu")
    assert parallel_workers(3, cpu, threads=2) == 3 and parallel_workers(2, cpu, threads=16) == 2
    assert parallel_workers(9, cpu, threads=2) == 4  # at most two runs per thread
    assert parallel_workers(1, cpu, threads=2) == 1 and parallel_workers(3, cpu, threads=1) == 1
    assert parallel_workers(4, torch.device("cuda"), threads=8) == 1  # CUDA groups runs into one network instead


def test_runs_at_once_equal_the_same_runs_in_turn(textured_rgb: torch.Tensor, threads) -> None:
    crop = textured_rgb[:, :32, :32]
    threads(1)
    apart = fit_runs(SPEC, crop, CONFIG, seeds=[0, 1, 2], clean=crop, parallel=False)
    threads(2)  # the three at once, one thread each
    together = fit_runs(SPEC, crop, CONFIG, seeds=[0, 1, 2], clean=crop)
    assert torch.get_num_threads() == 2  # the caller's thread count is back
    for a, b in zip(together, apart):
        assert a.seed == b.seed and not a.interrupted and a.steps_done == 30
        assert torch.equal(a.final, b.final) and torch.equal(a.ema, b.ema)
        np.testing.assert_array_equal(a.losses, b.losses)
        assert [r["psnr"] for r in a.history] == [r["psnr"] for r in b.history]
    assert not torch.equal(together[0].final, together[1].final)
    # run.json says how each run was fitted: one thread, three runs at once
    assert together[0].summary()["runs_at_once"] == 3 and apart[0].summary()["runs_at_once"] == 1
    assert together[0].device["torch_threads"] == 1


def test_an_interrupt_in_one_run_stops_the_runs_beside_it(textured_rgb: torch.Tensor, threads) -> None:
    class CtrlCInRun1(Callback):
        def observe(self, state) -> None:
            if state.seed == 1 and state.step == 20:
                raise KeyboardInterrupt

    threads(2)
    crop = textured_rgb[:, :32, :32]
    stop = CtrlCInRun1()
    results = fit_runs(SPEC, crop, replace(CONFIG, steps=5000), seeds=[0, 1, 2, 3, 4], callbacks=[[stop]] * 5)
    assert [r.seed for r in results] == [0, 1, 2, 3, 4] and all(r.interrupted for r in results)
    assert results[1].steps_done == 20 and all(r.steps_done < 5000 for r in results)
    assert results[4].steps_done == 0  # queued behind the first four (two per thread): it never starts
    assert torch.get_num_threads() == 2
