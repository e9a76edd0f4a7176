"""Several runs fitted as one grouped network equal the same runs fitted one by one."""

from __future__ import annotations

import pytest
import torch

from dipscope.errors import DipscopeError
from dipscope.fit import FitConfig, fit, fit_runs
from dipscope.models import LinearSpec, SkipSpec, build, build_group

# Every option that groups: skip channels on and off, all three upsampling kinds.
EXOTIC = SkipSpec(in_channels=8, channels_down=(16, 24, 16), channels_up=(16, 24, 16), channels_skip=(4, 0, 4),
                  upsample=("bilinear", "nearest", "transposed"), pad="reflection")
# For the 50-step comparison: 3 levels, so the deepest map is 8×8. With BatchNorm over a 2×2
# map (5 levels at 64×64) the step-0 gradient itself changes by ~5e-4 relative when the input
# changes by one ulp (measured), so no two summation orders can agree to 1e-5 there.
SPEC = SkipSpec(in_channels=8, channels_down=(16, 16, 16), channels_up=(16, 16, 16), channels_skip=(4, 4, 4),
                upsample="bilinear", pad="reflection")
CONFIG = FitConfig(steps=50, lr=0.01, observe_every=10, device="cpu", precision="fp32", channels_last=False,
                   reg_noise_std=1 / 30, ema=0.99)


def test_grouped_network_computes_each_member() -> None:
    nets = []
    for seed in range(3):
        torch.manual_seed(seed)
        nets.append(build(EXOTIC, (3, 32, 32)))
    grouped = build_group(EXOTIC, (3, 32, 32), nets)
    zs = [torch.rand(1, 8, 32, 32) for _ in nets]
    with torch.no_grad():
        together = grouped(torch.cat(zs, dim=1)).reshape(3, 3, 32, 32)
        for r, (net, z) in enumerate(zip(nets, zs)):
            torch.testing.assert_close(together[r], net(z)[0], rtol=1e-5, atol=1e-6)


def test_fifty_steps_of_grouped_runs_equal_separate_runs(textured_rgb: torch.Tensor) -> None:
    """The grouping is exact: in float64, 50 steps of 3 grouped runs equal 3 separate fits.

    The comparison is in float64 because the DIP trajectory itself is chaotic at float32's
    roundoff: measured on this configuration, perturbing the input scale of *one* fp32 fit by
    3e-7 relative changes its output by 6e-6 after 1 step, 5e-3 after 5 and 2e-2 after 50
    (Adam normalises every gradient element, so roundoff-sized differences become lr-sized
    steps). Any change of summation order (grouped kernels) therefore departs by ~1e-2 after
    50 fp32 steps; in fp32 the two agree to 1e-5 only for the first step, checked below.
    """
    seeds = [0, 1, 2]
    config = FitConfig(**{**CONFIG.__dict__, "precision": "fp64"})
    crop = textured_rgb[:, :32, :32]  # float64 convolutions are slow: a 32×32 crop keeps this test short
    together = fit_runs(SPEC, crop, config, seeds=seeds, clean=crop, group=True)
    apart = [fit(SPEC, crop, FitConfig(**{**config.__dict__, "seed": s}), clean=crop) for s in seeds]
    for a, b in zip(together, apart):
        assert a.seed == b.seed and a.grouped == 3 and b.grouped == 1
        assert (a.final - b.final).norm() / b.final.norm() < 1e-5
        assert (a.ema - b.ema).norm() / b.ema.norm() < 1e-5
        torch.testing.assert_close(torch.from_numpy(a.losses), torch.from_numpy(b.losses), rtol=1e-5, atol=0)
        assert [r["step"] for r in a.history] == [r["step"] for r in b.history]
    assert not torch.allclose(together[0].final, together[1].final)

    first = FitConfig(**{**CONFIG.__dict__, "steps": 1})
    together = fit_runs(SPEC, textured_rgb, first, seeds=seeds, group=True)
    for a, s in zip(together, seeds):
        b = fit(SPEC, textured_rgb, FitConfig(**{**first.__dict__, "seed": s}))
        assert (a.final - b.final).norm() / b.final.norm() < 1e-3


def test_only_the_convolutional_family_groups(textured_rgb: torch.Tensor) -> None:
    with pytest.raises(DipscopeError, match="skip family"):
        fit_runs(LinearSpec(width=8), textured_rgb, CONFIG, seeds=[0, 1], group=True)
    results = fit_runs(LinearSpec(width=8), textured_rgb, FitConfig(**{**CONFIG.__dict__, "steps": 3}), seeds=[0, 1])
    assert [r.seed for r in results] == [0, 1]
