"""Coloured-noise generators (checked with an independent spectral estimator) and smoke runs of
the lowfreq-noise and upsampling experiments."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from skimage import data

from dipscope.cli import main
from dipscope.errors import DipscopeError
from dipscope.images import write_image
from dipscope.physics import BandpassNoise, GaussianNoise, LowFreqNoise, MixedNoise


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These tests run on a shared 2-core machine: one intra-op thread, restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------------------------
# an estimator independent of the generators: Welch-averaged, Hann-windowed periodograms
# --------------------------------------------------------------------------------------------

SEG = 128  # Welch segment side; Hann's main lobe is ±2 bins = ±2/SEG cycles/pixel wide
LEAK = 2 / SEG


def welch_psd(fields: np.ndarray, seg: int = SEG) -> np.ndarray:
    """Mean of Hann-windowed periodograms over all realisations and 50 %-overlapping segments,
    normalised so that it sums to the mean per-pixel variance (numpy FFT, not torch's)."""
    win = np.outer(np.hanning(seg), np.hanning(seg))
    acc, count = np.zeros((seg, seg)), 0
    n = fields.shape[-1]
    for f in fields:
        for y in range(0, n - seg + 1, seg // 2):
            for x in range(0, n - seg + 1, seg // 2):
                acc += np.abs(np.fft.fft2(f[y:y + seg, x:x + seg] * win)) ** 2
                count += 1
    return acc / count / ((win ** 2).sum() * seg * seg)


def radial(seg: int = SEG) -> np.ndarray:
    f = np.fft.fftfreq(seg)
    return np.hypot(f[:, None], f[None, :])


def test_lowfreq_noise_power_lies_below_the_cutoff_and_std_is_sigma() -> None:
    sigma, fc = 0.1, 1 / 32
    fields = LowFreqNoise(sigma, fc, seed=3).sample((32, 256, 256)).numpy()
    psd, r = welch_psd(fields), radial()
    # ≥ 99 % of the power within fc (plus the estimator's own window leakage of 2 bins)
    assert psd[r <= fc + LEAK].sum() / psd.sum() >= 0.99
    assert psd[r > 2 * fc].sum() / psd.sum() < 1e-3
    # the estimator's total agrees with σ², and the per-realisation std scatters around σ
    assert psd.sum() == pytest.approx(sigma ** 2, rel=0.05)
    stds = fields.reshape(len(fields), -1).std(axis=1)
    assert np.sqrt(np.mean(stds ** 2)) == pytest.approx(sigma, rel=0.03)


def test_lowfreq_noise_std_over_many_small_realisations() -> None:
    sigma = 25 / 255
    fields = LowFreqNoise(sigma, 1 / 16, seed=0).sample((400, 64, 64)).numpy()
    assert fields.std() == pytest.approx(sigma, rel=0.03)
    assert abs(fields.mean()) < 0.05 * sigma
    exact = LowFreqNoise(sigma, 1 / 16, seed=1, exact=True).sample((5, 64, 64)).numpy().reshape(5, -1)
    np.testing.assert_allclose(exact.std(axis=1), sigma, rtol=1e-5)
    np.testing.assert_allclose(exact.mean(axis=1), 0, atol=1e-6)


def test_bandpass_noise_power_lies_in_the_ring() -> None:
    sigma, lo, hi = 0.05, 0.1, 0.2
    fields = BandpassNoise(sigma, lo, hi, seed=5).sample((16, 256, 256)).numpy()
    psd, r = welch_psd(fields), radial()
    assert psd[(r > lo - LEAK) & (r <= hi + LEAK)].sum() / psd.sum() >= 0.99
    assert psd[r <= lo / 2].sum() / psd.sum() < 1e-3
    assert fields.std() == pytest.approx(sigma, rel=0.03)


def test_mixed_noise_adds_a_flat_floor_to_the_low_band() -> None:
    sw, sl, fc = 0.03, 0.08, 1 / 32
    fields = MixedNoise(sw, sl, fc, seed=2).sample((48, 256, 256)).numpy()
    psd, r = welch_psd(fields), radial()
    assert fields.std() == pytest.approx(np.hypot(sw, sl), rel=0.03)
    # white part: flat power σ_w² per coefficient (normalised PSD × N) far from the low band
    high = psd[r > 0.2].mean() * SEG * SEG
    assert high == pytest.approx(sw ** 2, rel=0.05)
    # low-frequency part: the excess power within fc (+leakage) is σ_l²
    low_excess = (psd[r <= fc + LEAK] - psd[r > 0.2].mean()).sum()
    assert low_excess == pytest.approx(sl ** 2, rel=0.06)


def test_noise_errors_and_no_clipping_by_default() -> None:
    with pytest.raises(DipscopeError):
        LowFreqNoise(0.1, fc=0.0)
    with pytest.raises(DipscopeError):
        BandpassNoise(0.1, 0.3, 0.2)
    with pytest.raises(DipscopeError):
        BandpassNoise(0.1, 0.01, 0.02).sample((1, 8, 8))  # no grid frequency in the ring
    with pytest.raises(DipscopeError):
        GaussianNoise(float("nan"))
    image = torch.full((1, 32, 32), 0.95)
    noise = LowFreqNoise(0.2, 1 / 8, seed=0)
    assert noise(image).max() > 1.0
    assert noise(image, clip=True).max() <= 1.0


def test_each_noise_owns_its_stream() -> None:
    """The same seed gives the same noise every time, and different kinds of noise (and the
    parts of a mixture) never share random numbers."""
    shape = (1, 32, 32)
    white = GaussianNoise(0.1, seed=4)
    assert torch.equal(white.sample(shape), white.sample(shape))
    low, wide = LowFreqNoise(0.1, 0.5, seed=4), GaussianNoise(0.1, seed=4)
    corr = np.corrcoef(low.sample(shape).flatten(), wide.sample(shape).flatten())[0, 1]
    assert abs(corr) < 0.2  # a low-pass at 0.5 keeps nearly all of white noise: same stream would give ~0.9
    mixed = MixedNoise(0.1, 0.1, 1 / 8, seed=4)
    assert torch.equal(mixed.sample(shape), mixed.white.sample(shape) + mixed.low.sample(shape))


# --------------------------------------------------------------------------------------------
# the experiments (smoke profile, a few steps, a user image so no data directory is needed)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def striped_png(tmp_path_factory: pytest.TempPathFactory):
    """A 64×64 grey crop of scikit-image's 'camera' with added stripes at 0.25 cycles/pixel."""
    base = data.camera()[300:364, 200:264].astype(np.float32) / 255.0
    x = np.arange(64)
    stripes = 0.15 * np.cos(2 * np.pi * 0.25 * (x[None, :] + x[:, None] * 0))
    path = tmp_path_factory.mktemp("img") / "striped.png"
    write_image(path, np.clip(0.15 + 0.7 * base + stripes, 0, 1)[..., None])
    return path


def test_texture_band_finds_the_stripes(striped_png) -> None:
    from dipscope.images import read_image
    from dipscope.spectral import texture_band

    lo, peak, hi = texture_band(read_image(striped_png), min_freq=0.06)
    assert lo < 0.25 <= hi and abs(peak - 0.25) < 0.02


def test_lowfreq_noise_experiment_smoke(tmp_path, striped_png) -> None:
    out = tmp_path / "lf"
    main(["experiment", "lowfreq-noise", str(striped_png), "--out", str(out), "--profile", "smoke",
          "--steps", "10", "--device", "cpu"])
    summary = (out / "summary.md").read_text()
    assert "gain white" in summary
    for key in ("dip/striped/lowfreq", "dip/striped/white", "relunet/striped/lowfreq", "relunet/striped/white"):
        s = json.loads((out / key / "run.json").read_text())["summary"]
        assert s["noisy_psnr"] == pytest.approx(20.17, abs=0.05)  # σ = 25/255 exactly, both noises
        assert s["gain"] == pytest.approx(s["best_psnr"] - s["noisy_psnr"])
        assert (out / key / "spectral.npz").is_file() and (out / key / "bands.csv").is_file()
    for fig in ("grid-striped.png", "psnr-striped.png", "bands-striped.png"):
        assert (out / fig).stat().st_size > 0
    # resumable: a second run skips the finished tasks
    main(["experiment", "lowfreq-noise", str(striped_png), "--out", str(out), "--profile", "smoke",
          "--steps", "10", "--device", "cpu"])


def test_upsampling_experiment_smoke(tmp_path, striped_png) -> None:
    from dipscope.experiments.upsampling import levels_for

    assert [levels_for(s, 128, 5) for s in (2, 4, 8, 16, 32)] == [5, 3, 2, 1, 1]
    out = tmp_path / "up"
    main(["experiment", "upsampling", str(striped_png), "--out", str(out), "--profile", "smoke", "--steps", "10",
          "--mode", "nearest", "--mode", "transposed", "--stride", "4", "--stride", "32", "--device", "cpu"])
    text = (out / "summary.md").read_text()
    assert "stride 32 vs 4" in text
    s32 = json.loads((out / "bilinear-s32/seed-0/striped" / "run.json").read_text())
    assert s32["config"]["model"]["factor"] == 32 and len(s32["config"]["model"]["channels_down"]) == 1
    assert 0 <= s32["summary"]["init_hf_fraction"] <= 1
    for fig in ("radius-striped.png", "init-spectra-striped.png", "outputs-striped.png"):
        assert (out / fig).stat().st_size > 0
    # no hidden recovery, and the radius under both errors
    assert s32["config"]["fit"]["recover_divergence"] is False and s32["summary"]["recoveries"] == []
    assert len(s32["summary"]["radius_magnitude"]) == len(s32["summary"]["at_steps"])


def test_upsampling_strides_at_one_depth_over_several_seeds(tmp_path, striped_png) -> None:
    """--stride-levels gives every stride the same depth (and so the same parameters); --seeds
    runs each setting from several seeds and the report states each order with its count."""
    out = tmp_path / "up"
    main(["experiment", "upsampling", str(striped_png), "--out", str(out), "--profile", "smoke", "--steps", "10",
          "--mode", "nearest", "--mode", "bilinear", "--stride", "2", "--stride", "4", "--stride", "32",
          "--stride-levels", "1", "--seeds", "2", "--device", "cpu"])
    records = {(k, sd): json.loads((out / k / f"seed-{sd}" / "striped" / "run.json").read_text())
               for k in ("bilinear-s2-L1", "bilinear-s4-L1", "bilinear-s32-L1", "bilinear-s2", "nearest-s2")
               for sd in (0, 1)}
    for s in (2, 4, 32):
        model = records[(f"bilinear-s{s}-L1", 0)]["config"]["model"]
        assert model["factor"] == s and len(model["channels_down"]) == 1
    params = {records[(f"bilinear-s{s}-L1", 0)]["summary"]["n_parameters"] for s in (2, 4, 32)}
    assert len(params) == 1  # only the stride differs
    assert len(records[("bilinear-s2", 0)]["config"]["model"]["channels_down"]) > 1  # the mode setting keeps its depth
    assert records[("nearest-s2", 0)]["config"]["fit"]["seed"] == 0
    assert records[("nearest-s2", 1)]["config"]["fit"]["seed"] == 1
    text = (out / "summary.md").read_text()
    assert "in 2 seeds" not in text and "of 2 seeds" in text and "stride 32 vs 4 at step" in text
    assert "Seeds 0, 1" in text and " ± " in text
    with pytest.raises(SystemExit) as exc:  # stride 32 at 2 levels needs 2048 px
        main(["experiment", "upsampling", str(striped_png), "--out", str(tmp_path / "x"), "--profile", "smoke",
              "--stride", "32", "--stride-levels", "2", "--device", "cpu"])
    assert exc.value.code == 2 and not (tmp_path / "x").exists()


def test_upsampling_rejects_a_too_large_stride(tmp_path, striped_png) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["experiment", "upsampling", str(striped_png), "--out", str(tmp_path / "x"), "--profile", "smoke",
              "--steps", "5", "--stride", "64", "--device", "cpu"])
    assert exc.value.code == 2
