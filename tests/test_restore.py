"""Beyond denoising: the forward operators, ``dipscope restore`` for every task on a 64×64 image,
and its refusals of bad input (one ``error:`` line, exit 2, before any fitting)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dipscope.errors import DipscopeError
from dipscope.fit import FitConfig, check_inputs, fit
from dipscope.images import read_image, write_image
from dipscope.models import ReLUNetSpec, SkipSpec
from dipscope.physics import Blur, Downsample, Mask, box_kernel, gaussian_kernel, lanczos_taps, parse_blur
from dipscope.stopping import EarlyStopping

from test_cli import one_line_error

SMALL = SkipSpec(channels_down=(8,) * 3, channels_up=(8,) * 3, channels_skip=(2,) * 3, in_channels=4)


# --- operators ----------------------------------------------------------------------------------

@pytest.mark.parametrize("factor", [2, 4])
def test_lanczos_taps_are_the_windowed_sinc_at_half_pixel_phase(factor: int) -> None:
    taps = lanczos_taps(factor)
    assert taps.shape == (4 * factor,) and taps.sum().item() == pytest.approx(1.0)
    assert torch.allclose(taps, taps.flip(0))  # symmetric about the block centre
    d = (np.arange(4 * factor) + 0.5 - 2 * factor) / factor
    direct = np.sinc(d) * np.sinc(d / 2)
    assert np.allclose(taps.numpy(), direct / direct.sum())
    assert (taps[:factor] < 0).any()  # the negative lobes of a Lanczos filter


def test_downsample_shape_constants_and_aliasing() -> None:
    op = Downsample(4)
    assert op.domain_shape((3, 16, 12)) == (3, 64, 48)
    flat = torch.full((1, 3, 64, 48), 0.3)
    assert torch.allclose(op(flat), torch.full((1, 3, 16, 12), 0.3), atol=1e-6)
    checker = ((torch.arange(64)[:, None] + torch.arange(64)[None]) % 2).float()[None, None]  # HR Nyquist
    assert op(checker - 0.5).abs().max() < 0.02  # the anti-aliasing filter removes it
    ramp = torch.linspace(0, 1, 64).expand(1, 1, 64, 64).contiguous()
    block_means = ramp[0, 0, 0].reshape(16, 4).mean(1)  # a symmetric filter keeps a linear ramp's block means
    assert torch.allclose(op(ramp)[0, 0, 8, 2:-2], block_means[2:-2], atol=1e-5)


@pytest.mark.parametrize("factor", [0, 1, 3])
def test_downsample_needs_an_even_factor(factor: int) -> None:
    with pytest.raises(DipscopeError, match="even"):
        Downsample(factor)


def test_blur_kernels_and_operator() -> None:
    assert gaussian_kernel(1.5).sum().item() == pytest.approx(1.0) and gaussian_kernel(1.5).shape == (11, 11)
    assert box_kernel(3).shape == (3, 3)
    x = torch.rand(1, 2, 20, 20)
    y = Blur(box_kernel(3))(x)
    assert y.shape == x.shape
    assert torch.allclose(y[0, :, 5, 7], x[0, :, 4:7, 6:9].mean(dim=(1, 2)), atol=1e-6)
    for bad in ("disk:3", "gaussian:", "gaussian:-1", "box:4", "box:2.5", "gaussian:x"):
        with pytest.raises(DipscopeError):
            parse_blur(bad)


def test_random_mask_is_seeded_and_drops_the_fraction() -> None:
    a, b, c = (Mask.random((3, 64, 64), 0.5, seed) for seed in (0, 0, 1))
    assert torch.equal(a.mask, b.mask) and not torch.equal(a.mask, c.mask)
    assert 0.45 < a.mask.mean().item() < 0.55
    with pytest.raises(DipscopeError):
        Mask.random((3, 8, 8), 1.0)


def test_fit_outputs_the_operator_domain() -> None:
    lr = torch.rand(3, 16, 16)
    r = fit(SMALL, lr, FitConfig(steps=3, device="cpu", precision="fp32"), operator=Downsample(2),
            clean=torch.rand(3, 32, 32), ssim=False)
    assert r.final.shape == (3, 32, 32) and r.best_psnr is not None
    with pytest.raises(DipscopeError, match="restored image"):
        check_inputs(SMALL, lr, FitConfig(), torch.rand(3, 16, 16), Downsample(2))
    with pytest.raises(DipscopeError, match="pixel-wise"):
        check_inputs(ReLUNetSpec(), lr, FitConfig(pixel_batch=64), None, Blur(box_kernel(3)))


def test_stopping_rule_sees_the_measurement_the_output_predicts() -> None:
    """With an operator, the discrepancy is ||y − A(x)||²: a perfect x gives the noise's power."""
    torch.manual_seed(0)
    x = torch.rand(1, 32, 32)
    op = Blur(gaussian_kernel(1.0))
    y = op(x[None])[0] + 0.05 * torch.randn(1, 32, 32)
    with_op = EarlyStopping("discrepancy", y, sigma=0.05, operator=op)
    without = EarlyStopping("discrepancy", y, sigma=0.05)
    assert with_op._measured(x).shape == x.shape
    assert ((with_op._measured(x) - y) ** 2).mean() < ((without._measured(x) - y) ** 2).mean()
    assert ((with_op._measured(x) - y) ** 2).mean().item() == pytest.approx(0.05 ** 2, rel=0.15)


# --- the command --------------------------------------------------------------------------------

@pytest.fixture()
def files(tmp_path: Path, textured_rgb: torch.Tensor) -> dict[str, Path]:
    """A 64×64 clean image, its 32×32 low-resolution version (PIL Lanczos) and a 64×64 mask."""
    paths = {k: tmp_path / f"{k}.png" for k in ("clean", "lr", "mask", "small_mask")}
    write_image(paths["clean"], textured_rgb)
    Image.open(paths["clean"]).resize((32, 32), Image.LANCZOS).save(paths["lr"])
    hole = np.full((64, 64), 255, np.uint8)
    hole[20:40, 10:50] = 0
    Image.fromarray(hole).save(paths["mask"])
    Image.fromarray(hole[:32, :32]).save(paths["small_mask"])
    return paths


FAST = ["--steps", "6", "--levels", "3", "--device", "cpu"]


@pytest.mark.parametrize("task, args, measured_file", [
    ("inpaint", ["--drop", "0.5"], "masked.png"),
    ("inpaint", ["--mask", "{mask}"], "masked.png"),
    ("superres", ["--factor", "2", "--clean", "{clean}", "--spectra"], "low-resolution.png"),
    ("deblur", ["--kernel", "gaussian:1.2", "--sigma", "5"], "blurred.png"),
])
def test_restore_runs_every_task(tmp_path: Path, files, cli, task: str, args: list[str], measured_file: str) -> None:
    image = files["lr"] if task == "superres" else files["clean"]
    out = tmp_path / "run"
    argv = ["restore", str(image), "--task", task, "--out", str(out), *[a.format(**files) for a in args], *FAST]
    code, stdout, err = cli(argv)
    assert code == 0, err
    for name in ("restored.png", measured_file, "final.png", "best.png", "metrics.csv", "run.json"):
        assert (out / name).is_file(), name
    record = json.loads((out / "run.json").read_text())
    assert record["task"] == task and record["status"] == "complete"
    assert read_image(out / "restored.png").shape == (3, 64, 64)
    stopping = record["stopping"]
    assert (stopping["rule"] is None) == (task != "deblur")  # noiseless inpainting/superres: no rule
    assert stopping["result_psnr"] is not None and "restored.png" in stdout
    if task == "inpaint":
        assert (out / "mask.png").is_file() and record["preset"] == "ulyanov2018-inpaint"
        assert record["model"]["upsample"] == "nearest"
    if task == "superres":
        assert read_image(out / "low-resolution.png").shape == (3, 32, 32)
        assert record["degradation"]["factor"] == 2 and record["preset"] == "ulyanov2018-superres"
        assert (out / "spectral.csv").is_file() and (out / "spectrum.png").is_file()


@pytest.mark.parametrize("args, fragment", [
    (["{clean}", "--task", "inpaint"], "--mask MASK.png or --drop"),
    (["{clean}", "--task", "inpaint", "--mask", "{small_mask}"], "the mask"),
    (["{clean}", "--task", "inpaint", "--drop", "1"], "--drop must be"),
    (["{lr}", "--task", "superres", "--factor", "3"], "even --factor"),
    (["{lr}", "--task", "superres"], "even --factor"),
    (["{lr}", "--task", "superres", "--factor", "4", "--clean", "{clean}"], "high-resolution"),
    (["{clean}", "--task", "deblur", "--kernel", "disk:3"], "unknown blur kernel"),
    (["{clean}", "--task", "deblur"], "--kernel"),
    (["{clean}", "--task", "deblur", "--kernel", "box:3", "--drop", "0.5"], "--drop is an option of --task inpaint"),
    (["{clean}", "--task", "deblur", "--kernel", "box:3", "--clean", "{clean}"], "--clean is for --measured"),
])
def test_restore_refuses_bad_input_before_fitting(tmp_path: Path, files, cli, args: list[str], fragment: str) -> None:
    out = tmp_path / "never"
    code, _, err = cli(["restore", *[a.format(**files) for a in args], "--out", str(out), *FAST])
    one_line_error(code, err, fragment)
    assert not out.exists()
