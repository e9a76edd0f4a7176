"""The fitting engine: denoising works, every family fits, runs are reproducible, observers work."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from dipscope.callbacks import TrajectoryRecorder
from dipscope.errors import DipscopeError
from dipscope.fit import Callback, FitConfig, FitState, fit
from dipscope.metrics import psnr
from dipscope.models import LinearSpec, SkipSpec
from dipscope.physics import GaussianNoise, Mask
from dipscope.presets import preset

SMALL = SkipSpec(in_channels=8, channels_down=(16, 16, 16), channels_up=(16, 16, 16), channels_skip=(4, 4, 4))
QUICK = FitConfig(steps=20, lr=0.01, observe_every=5, device="cpu", precision="fp32")


def test_dip_denoises_a_textured_crop(textured_rgb: torch.Tensor) -> None:
    """σ = 25, 300 steps of the standard (ulyanov2018) network: ≥ 3 dB over the noisy input."""
    noisy = GaussianNoise(25 / 255, 0)(textured_rgb, clip=True)
    spec, config = preset("ulyanov2018")
    config = replace(config, steps=300, observe_every=50, device="cpu")
    result = fit(spec, noisy, config, clean=textured_rgb, ssim=False)
    gain = psnr(result.final, textured_rgb) - psnr(noisy, textured_rgb)
    assert gain >= 3.0, gain
    assert result.ema is not None and psnr(result.ema, textured_rgb) > psnr(noisy, textured_rgb) + 3.0


@pytest.mark.parametrize("family", ["skip", "linear", "relunet"])
def test_every_family_fits_a_clean_textured_image(family: str, textured_rgb: torch.Tensor) -> None:
    spec, config = preset("ulyanov2018" if family == "skip" else "chakrabarty2019", family)
    settings = {"skip": dict(steps=100, reg_noise_std=0.0), "linear": dict(steps=200),
                "relunet": dict(steps=700, pixel_batch=1024, lr=2e-3)}[family]
    config = replace(config, observe_every=100, device="cpu", precision="fp32", **settings)
    result = fit(spec, textured_rgb, config, ssim=False)
    assert result.final.shape == textured_rgb.shape
    start, end = float(result.losses[0]), float(result.losses[-20:].mean())
    assert start / end >= 10.0, (start, end)


def test_same_seed_same_numbers(textured_grey: torch.Tensor) -> None:
    a = fit(SMALL, textured_grey, QUICK, clean=textured_grey)
    b = fit(SMALL, textured_grey, QUICK, clean=textured_grey)
    c = fit(SMALL, textured_grey, replace(QUICK, seed=1), clean=textured_grey)
    def timeless(history: list[dict[str, float]]) -> list[dict[str, float]]:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in history]

    assert timeless(a.history) == timeless(b.history)
    assert torch.equal(a.final, b.final) and (a.losses == b.losses).all()
    assert not torch.equal(a.final, c.final)


@pytest.mark.parametrize("shape", [(1, 67, 93), (3, 67, 93)])
def test_odd_sizes_are_padded_and_cropped_back(shape: tuple[int, int, int]) -> None:
    image = torch.rand(shape)
    result = fit(SMALL, image, replace(QUICK, steps=3), clean=image)
    assert result.final.shape == shape and result.best is not None and result.best.shape == shape


def test_image_too_small_names_the_minimum() -> None:
    spec, config = preset("ulyanov2018")
    with pytest.raises(DipscopeError, match="at least 64 px"):
        fit(spec, torch.rand(3, 40, 40), replace(config, steps=1, device="cpu"))
    fit(spec.with_levels(4), torch.rand(3, 40, 40), replace(config, steps=1, device="cpu"))


def test_memory_estimate_refuses_huge_configurations() -> None:
    with pytest.raises(DipscopeError, match="GiB"):
        fit(LinearSpec(width=2048), torch.rand(3, 512, 768), replace(QUICK, steps=1))


class StopAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step
        self.seen: list[int] = []

    def observe(self, state: FitState) -> bool:
        self.seen.append(state.step)
        return state.step >= self.step


def test_callbacks_observe_and_stop(textured_grey: torch.Tensor) -> None:
    stop = StopAt(10)
    rec = TrajectoryRecorder(every=1, dtype="float16")
    result = fit(SMALL, textured_grey, QUICK, callbacks=[stop, rec])
    assert stop.seen == [0, 5, 10] and result.stopped_early and result.steps_done == 10
    frames = rec.frames()
    assert frames.shape == (3, 1, 64, 64) and rec.steps == [0, 5, 10]


class Interrupt(Callback):
    def observe(self, state: FitState) -> None:
        if state.step == 10:
            raise KeyboardInterrupt


def test_ctrl_c_returns_what_was_reached(textured_grey: torch.Tensor) -> None:
    result = fit(SMALL, textured_grey, QUICK, clean=textured_grey, callbacks=[Interrupt()])
    assert result.interrupted and result.steps_done == 10 and result.final.shape == textured_grey.shape


class Poison(Callback):
    """Corrupt the weights once, right after the step-5 good copy was taken."""

    def observe(self, state: FitState) -> None:
        if state.step == 5:
            for p in state.net.parameters():
                p.data = torch.full_like(p, float("nan"))  # new storage: the step's graph is untouched


def test_divergence_recovery_reloads_the_last_good_weights(textured_grey: torch.Tensor) -> None:
    result = fit(SMALL, textured_grey, QUICK, callbacks=[Poison()])
    assert result.recoveries == [10]
    assert torch.isfinite(result.final).all() and math.isfinite(float(result.losses[-1]))
    assert torch.isfinite(result.ema).all()


class PoisonRun(Callback):
    """In a grouped fit, corrupt only run ``r``'s slice of the weights at step 5."""

    def __init__(self, r: int, runs: int) -> None:
        self.r, self.runs = r, runs

    def observe(self, state: FitState) -> None:
        if state.step == 5:
            for p in state.net.parameters():
                data = p.detach().clone()
                data.unflatten(0, (self.runs, -1))[self.r] = float("nan")
                p.data = data


def test_recovery_of_one_run_in_a_group_leaves_the_others_alone(textured_grey: torch.Tensor) -> None:
    from dipscope.fit import fit_runs

    clean = fit_runs(SMALL, textured_grey, QUICK, seeds=[0, 1], group=True)
    hit = fit_runs(SMALL, textured_grey, QUICK, seeds=[0, 1], group=True, callbacks=[[], [PoisonRun(1, 2)]])
    assert hit[0].recoveries == [] and hit[1].recoveries == [10]
    assert torch.equal(hit[0].final, clean[0].final)
    assert torch.isfinite(hit[1].final).all() and torch.isfinite(hit[1].ema).all()


def test_inpainting_operator_fits_only_the_known_pixels(textured_grey: torch.Tensor) -> None:
    mask = (torch.rand(1, 64, 64, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    result = fit(SMALL, textured_grey * mask, replace(QUICK, steps=40), operator=Mask(mask))
    known = ((result.final - textured_grey) ** 2 * mask).sum() / mask.sum()
    assert float(known) < float(((0.5 - textured_grey) ** 2).mean())


def test_pixel_batches_need_a_coordinate_model(textured_grey: torch.Tensor) -> None:
    with pytest.raises(DipscopeError, match="coordinate"):
        fit(SMALL, textured_grey, replace(QUICK, pixel_batch=64))


def test_a_fit_that_cannot_flush_subnormals_refuses_to_claim_it(textured_grey: torch.Tensor, monkeypatch) -> None:
    """run.json records ``flush_denormals``: a fit asked to flush where it cannot (a GPU, a CPU
    without FTZ) must stop before its first step rather than record what did not happen."""
    from dipscope import runtime

    monkeypatch.setattr(runtime, "can_flush_denormals", lambda device: False)
    config = FitConfig(steps=2, device="cpu", precision="fp32", flush_denormals=True)
    with pytest.raises(DipscopeError, match="flush_denormals needs a CPU"):
        fit(SMALL, textured_grey[:, :32, :32], config)


def test_reference_mode_runs_pytorchs_own_backward_kernels() -> None:
    """``fast=False`` (the reference mode) runs PyTorch's kernels; the fast path its own backward passes of padding and upsampling."""
    from dipscope.fit.loop import GroupFit
    from dipscope.models import SkipSpec
    from dipscope.models.skip import FixedUpsample, ReflectionPad

    spec = SkipSpec(in_channels=4, channels_down=(8, 8), channels_up=(8, 8), channels_skip=(2, 2), pad="reflection")
    target = torch.rand(3, 16, 16)
    for fast in (True, False):
        g = GroupFit(spec, target, FitConfig(steps=2, fast=fast, device="cpu"), [0], None, None, [[]], False)
        flags = {m.native for m in g.net.modules() if isinstance(m, (ReflectionPad, FixedUpsample))}
        assert flags == {not fast}
