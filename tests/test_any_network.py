"""Any network: a user's ``torch.nn.Module`` fitted by ``fit``, restored with, and probed by the
bias and trajectory experiments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import dipscope
from dipscope.errors import DipscopeError
from dipscope.fit import FitConfig, fit


class TinyDecoder(nn.Module):
    """A user's decoder: 1×1 and 3×3 convolutions from an 8-channel input to C channels."""

    def __init__(self, out_channels: int = 1, in_channels: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(16, out_channels, 1), nn.Sigmoid())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z)


def stripes(side: int = 32) -> torch.Tensor:
    x = torch.linspace(0, 1, side)
    return (0.5 + 0.4 * torch.sin(8 * x)[None, :] * torch.cos(5 * x)[:, None])[None].float()


CONFIG = FitConfig(steps=40, lr=0.01, reg_noise_std=0.0, ema=None, observe_every=10, device="cpu", precision="fp32")


def test_fit_takes_a_users_module_and_leaves_it_untouched() -> None:
    net = TinyDecoder()
    before = [p.detach().clone() for p in net.parameters()]
    spec = dipscope.NetworkSpec(net, in_channels=8)
    result = fit(spec, stripes(), CONFIG, clean=stripes())
    assert result.steps_done == 40 and result.final.shape == (1, 32, 32)
    assert result.n_parameters == sum(p.numel() for p in net.parameters())
    assert result.losses[-1] < result.losses[0]  # it fitted
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))  # each run fits a copy
    same = fit(spec, stripes(), CONFIG)
    assert torch.equal(same.final, result.final)  # seeded: the same input, the same weights


def test_a_factory_draws_weights_per_seed_and_a_given_input_is_used() -> None:
    z = torch.rand(1, 8, 32, 32, generator=torch.Generator().manual_seed(3))
    spec = dipscope.NetworkSpec(lambda shape: TinyDecoder(shape[0]), input=z)
    a = fit(spec, stripes(), CONFIG)
    b = fit(spec, stripes(), CONFIG)
    c = fit(spec, stripes(), FitConfig(**{**CONFIG.__dict__, "seed": 1}))
    assert torch.equal(a.final, b.final) and not torch.equal(a.final, c.final)
    module = fit(TinyDecoder(in_channels=32), stripes(), CONFIG)  # a bare module: the DIP's 32-channel noise input
    assert module.steps_done == 40
    with pytest.raises(DipscopeError, match="input must be"):
        dipscope.NetworkSpec(TinyDecoder(), input="zeros")


def test_denoise_takes_a_users_module(tmp_path: Path) -> None:
    clean = (stripes(64)[0].numpy() * 255).round().astype(np.uint8)
    r = dipscope.denoise(dipscope.add_noise(clean, 25), clean=clean, network=TinyDecoder(in_channels=32),
                         steps=20, device="cpu")
    assert r.image.dtype == np.uint8 and r.image.shape == clean.shape and len(r.runs) == 1
    record = json.loads((r.save(tmp_path / "run") / "run.json").read_text())
    assert record["model"] == {"family": "custom", "name": "TinyDecoder", "module": "TinyDecoder", "input": "noise",
                               "in_channels": 32, "pad_multiple": 1}


def test_the_bias_and_trajectory_experiments_probe_a_users_module(tmp_path: Path) -> None:
    from dipscope.experiments.bias import BiasConfig
    from dipscope.experiments.bias import run as run_bias
    from dipscope.experiments.trajectory import TrajectoryConfig
    from dipscope.experiments.trajectory import run as run_trajectory
    from dipscope.images import write_image

    write_image(tmp_path / "stripes.png", stripes(64)[0])
    networks = {"tiny": dipscope.NetworkSpec(TinyDecoder(), in_channels=8)}
    text = run_bias(BiasConfig(images=[str(tmp_path / "stripes.png")], models=["tiny"], profile="smoke", factor=1,
                               device="cpu", networks=networks), tmp_path / "bias")
    assert "tiny" in text
    summary = (tmp_path / "bias" / "summary.csv").read_text().splitlines()
    assert summary[1].startswith("tiny,stripes")
    run_json = json.loads(next((tmp_path / "bias").rglob("run.json")).read_text())
    assert "TinyDecoder" in json.dumps(run_json)
    text = run_trajectory(TrajectoryConfig(images=["pattern:0.5"], model="tiny", profile="smoke", steps=30,
                                           device="cpu", networks=networks), tmp_path / "trajectory")
    assert "tiny" in text
