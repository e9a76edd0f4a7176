"""Early-stopping rules on synthetic trajectories whose right answer is known, and the CLI default."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from dipscope import stopping as S
from dipscope.fit import FitState
from dipscope.images import write_image
from dipscope.metrics import psnr

SIGMA = 25 / 255
EVERY = 10  # steps between observations, as the ulyanov2018 preset


@pytest.fixture(scope="module")
def scene(textured_rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    clean = textured_rgb.double()
    noisy = clean + SIGMA * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return clean.float(), noisy.float()


def lowpass_trajectory(noisy: torch.Tensor, steps: int = 3000) -> list[tuple[int, torch.Tensor]]:
    """The study's picture of a DIP fit: ``x_t`` = ``y`` through a Gaussian low-pass filter whose
    radius widens geometrically from 0.01 to 3 cycles/pixel — the clean image is approached
    (the signal's low frequencies come first) and then the noise is fitted (the output tends to ``y``)."""
    h, w = noisy.shape[-2:]
    r2 = torch.fft.fftfreq(h)[:, None] ** 2 + torch.fft.fftfreq(w)[None, :] ** 2
    spectrum = torch.fft.fft2(noisy.double())
    out = []
    for t in range(0, steps + 1, EVERY):
        rho = 0.01 * 300 ** (t / steps)
        x = torch.fft.ifft2(spectrum * torch.exp(-r2 / (2 * rho ** 2))).real.float()
        out.append((t, x))
    return out


def observe_all(rule: S.Rule, noisy: torch.Tensor, trajectory, sigma: float | None = None):
    context = S.Context.from_target(noisy, sigma)
    probe = S.Probe(noisy, context, needs=rule.needs)
    observations = [probe(t, x, x) for t, x in trajectory]
    return S.replay(rule, context, observations), observations, context


def best_step(clean: torch.Tensor, trajectory) -> tuple[int, float]:
    scores = [(psnr(x.clamp(0, 1), clean), t) for t, x in trajectory]
    value, step = max(scores)
    return step, value


def psnr_at(clean, trajectory, step):
    return psnr(dict(trajectory)[step].clamp(0, 1), clean)


def test_estimate_sigma_recovers_white_noise() -> None:
    smooth = torch.linspace(0.2, 0.8, 96)[None, None, :].expand(3, 96, 96)
    for sigma in (15, 25, 50):
        noisy = smooth + sigma / 255 * torch.randn(3, 96, 96, generator=torch.Generator().manual_seed(sigma))
        assert 255 * S.estimate_sigma(noisy) == pytest.approx(sigma, rel=0.05)


def test_discrepancy_stops_where_the_residual_reaches_sigma(scene) -> None:
    clean, noisy = scene
    traj = lowpass_trajectory(noisy)
    (chosen, stopped), _, _ = observe_all(S.DiscrepancyRule(), noisy, traj, sigma=SIGMA)
    expected = next(t for t, x in traj if float(torch.mean((noisy - x) ** 2)) <= SIGMA ** 2)
    assert stopped == chosen == expected
    oracle_step, oracle = best_step(clean, traj)
    assert chosen < traj[-1][0] and oracle - psnr_at(clean, traj, chosen) < 2.0


def test_spectral_rule_stops_near_the_best_step_of_a_low_pass_fit(scene) -> None:
    clean, noisy = scene
    traj = lowpass_trajectory(noisy)
    oracle_step, oracle = best_step(clean, traj)
    for sigma in (SIGMA, None):  # the noise level given, and estimated
        (chosen, stopped), obs, context = observe_all(S.SpectralRule(), noisy, traj, sigma=sigma)
        assert stopped == chosen
        band = S.crossing_band(context)
        assert 0 <= band < len(context.edges) - 1
        # the rule's test, recomputed from the residual spectrum directly
        first = next(o.step for o in obs if o.res_band[band] <= context.sigma ** 2)
        assert chosen == first
        assert oracle - psnr_at(clean, traj, chosen) < 1.0, (chosen, oracle_step)


def test_crossing_band_follows_the_noise_level(scene) -> None:
    _, noisy = scene
    context = S.Context.from_target(noisy)
    bands = [S.crossing_band(context.with_sigma(s / 255)) for s in (5, 25, 100)]
    assert bands[0] >= bands[1] >= bands[2]


def fluctuating_trajectory(clean: torch.Tensor, t_star: int, steps: int = 3000):
    """Outputs around the clean image whose step-to-step fluctuation is least at ``t_star`` (the
    U shape ES-WMV looks for: fast change early, noise fitting late)."""
    gen = torch.Generator().manual_seed(1)
    out = []
    for t in range(0, steps + 1, EVERY):
        amplitude = 0.005 + 0.1 * abs(t - t_star) / steps
        out.append((t, clean + amplitude * torch.randn(clean.shape, generator=gen)))
    return out


@pytest.mark.parametrize("rule", [S.WMVRule(), S.EMVRule()], ids=["wmv", "emv"])
def test_variance_rules_return_the_calmest_output_after_their_patience(scene, rule) -> None:
    clean, noisy = scene
    t_star = 1200
    traj = fluctuating_trajectory(clean, t_star)
    (chosen, stopped), _, _ = observe_all(rule, noisy, traj)
    assert abs(chosen - t_star) <= 100
    assert stopped == chosen + 1000  # the patience, in steps, at one observation every 10 steps


def test_wmv_window_is_counted_in_steps(scene) -> None:
    clean, noisy = scene
    context = S.Context.from_target(noisy)
    for every in (1, 10, 25):
        probe = S.Probe(noisy, context, needs=("wmv",))
        values = [probe(t, clean + 0.01 * t * torch.ones_like(clean)).wmv for t in range(0, 200, every)]
        first = next(i for i, v in enumerate(values) if math.isfinite(v)) * every
        assert 100 - every <= first <= 100, every


def test_shi_stops_once_the_blur_sharpness_ratio_settles(scene) -> None:
    clean, noisy = scene
    t_settle, n = 1000, 100
    h, w = clean.shape[-2:]
    r2 = torch.fft.fftfreq(h)[:, None] ** 2 + torch.fft.fftfreq(w)[None, :] ** 2
    spectrum = torch.fft.fft2(clean.double())
    traj = []
    for t in range(0, 2001, EVERY):  # a blurred image sharpening until t_settle, then constant
        width = 3.0 * max(0.0, 1 - t / t_settle)  # pixels
        x = torch.fft.ifft2(spectrum * torch.exp(-2 * math.pi ** 2 * width ** 2 * r2)).real.float()
        traj.append((t, x))
    (chosen, stopped), obs, _ = observe_all(S.ShiRule(n=n), noisy, traj)
    ratios = [o.blur / o.sharp for o in obs]
    assert ratios[0] > ratios[t_settle // EVERY]  # blurrier at the start
    assert stopped is not None and t_settle < stopped <= t_settle + 2 * n
    assert chosen == stopped


def test_blur_and_sharpness_measures_order_images(scene) -> None:
    clean, _ = scene
    grey = S.to_grey(clean)
    blurred = torch.nn.functional.avg_pool2d(grey[None, None], 5, 1, 2)[0, 0]
    assert S.perceptual_blur(blurred) > S.perceptual_blur(grey)
    assert S.mlv_sharpness(blurred) < S.mlv_sharpness(grey)


def test_callback_keeps_the_image_of_the_chosen_step(scene) -> None:
    """Inside a fit the rule's image at an earlier step must be the one handed back."""
    clean, noisy = scene
    traj = fluctuating_trajectory(clean, 600, steps=2000)
    ema = {t: x * 0.5 for t, x in traj}
    cb = S.EarlyStopping(S.WMVRule(), noisy, return_ema=True)

    def state(t, x):
        return FitState(t, 2000, 0.0, None, lambda: x, lambda: ema[t])

    cb.on_start(state(0, traj[0][1]))
    for t, x in traj:
        if cb.observe(state(t, x)):
            break
    cb.on_end(state(t, x))
    choice = cb.choice
    assert choice is not None and choice.stopped_at == t and abs(choice.step - 600) <= 100
    assert choice.source == "ema" and torch.equal(choice.image, ema[choice.step])
    assert torch.equal(choice.output, dict(traj)[choice.step])
    assert choice.summary()["stopped_early"] and not choice.sigma_given


def test_make_rule_knows_auto_and_rejects_unknown() -> None:
    assert make_name(S.make_rule("auto")) == S.DEFAULT_RULE
    assert {"wmv", "emv", "shi", "discrepancy", "spectral", "discrepancy-lag", "spectral-lag"} <= set(S.RULES)
    with pytest.raises(S.DipscopeError):
        S.make_rule("oracle")


def make_name(rule: S.Rule) -> str:
    return rule.name


def test_denoise_stops_automatically_and_records_the_step(tmp_path: Path, textured_rgb, cli) -> None:
    image = tmp_path / "astro.png"
    write_image(image, textured_rgb)
    out = tmp_path / "auto"
    code, stdout, err = cli(["denoise", str(image), "--out", str(out), "--steps", "30", "--levels", "3",
                             "--device", "cpu"])
    assert code == 0, err
    assert (out / "denoised.png").is_file() and (out / "final.png").is_file()
    record = json.loads((out / "run.json").read_text())
    stop = record["stopping"]
    assert stop["requested"] == "auto" and stop["rule"] == S.DEFAULT_RULE and stop["max_steps"] == 30
    assert 0 <= stop["step"] <= 30 and stop["source"] == "mean of 3 runs"  # the default preset's three runs
    for run in stop["runs"]:
        assert run["rule"] == S.DEFAULT_RULE and run["step"] % 10 == 0 and run["source"] in ("ema", "output")
    assert stop["result_psnr"] is not None and "denoised.png" in stdout

    out2 = tmp_path / "none"
    code, stdout, err = cli(["denoise", str(image), "--out", str(out2), "--steps", "12", "--levels", "3",
                             "--device", "cpu", "--stop", "none"])
    assert code == 0, err
    stop = json.loads((out2 / "run.json").read_text())["stopping"]
    assert stop["rule"] is None and stop["step"] == 12 and (out2 / "denoised.png").is_file()

    code, _, err = cli(["denoise", str(image), "--out", str(tmp_path / "bad"), "--stop", "oracle"])
    assert code == 2 and "unknown --stop" in err


def test_delayed_rule_waits_its_lag_after_the_inner_rule(scene) -> None:
    clean, noisy = scene
    traj = lowpass_trajectory(noisy)
    (fired, _), _, _ = observe_all(S.DiscrepancyRule(), noisy, traj, sigma=SIGMA)
    for rule in (S.Delayed(S.DiscrepancyRule(), 200), S.LaggedDiscrepancyRule(delay=200)):
        (chosen, stopped), _, _ = observe_all(rule, noisy, traj, sigma=SIGMA)
        assert chosen == stopped == fired + 200
    assert S.make_rule("auto").name == S.DEFAULT_RULE == "spectral-lag"


def test_scaled_rule_waits_in_proportion_to_the_inner_step(scene) -> None:
    clean, noisy = scene
    traj = lowpass_trajectory(noisy)
    (fired, _), _, _ = observe_all(S.DiscrepancyRule(), noisy, traj, sigma=SIGMA)
    for factor, delay in ((2.0, 0), (1.5, 100)):
        rule = S.ScaledDiscrepancyRule(factor=factor, delay=delay)
        (chosen, stopped), _, _ = observe_all(rule, noisy, traj, sigma=SIGMA)
        target = factor * fired + delay
        assert chosen == stopped and target <= chosen < target + EVERY
    assert S.make_rule("spectral-scaled").factor == S.DEFAULT_FACTOR
    with pytest.raises(S.DipscopeError, match="factor"):
        S.Delayed(S.DiscrepancyRule(), 0, factor=0.5)


def test_lag_is_dropped_without_an_ema(scene) -> None:
    clean, noisy = scene
    traj = lowpass_trajectory(noisy, steps=2000)
    (fired, _), _, _ = observe_all(S.DiscrepancyRule(), noisy, traj)
    cb = S.EarlyStopping("discrepancy-lag", noisy)
    cb.on_start(FitState(0, 2000, 0.0, None, lambda: traj[0][1], lambda: None))
    for t, x in traj:
        if cb.observe(FitState(t, 2000, 0.0, None, lambda x=x: x, lambda: None)):
            break
    cb.on_end(FitState(t, 2000, 0.0, None, lambda x=x: x, lambda: None))
    assert cb.choice.step == fired and cb.choice.source == "output"


@pytest.mark.parametrize("sigma", [5.0, 15.0, 25.0])
def test_the_patch_pca_sigma_estimate_is_not_fooled_by_texture(textured_rgb, sigma: float) -> None:
    """Hair and fabric fill the finest wavelet band, which inflates the wavelet estimate; the
    smallest eigenvalues of the patch covariance stay near σ²."""
    from dipscope.physics import GaussianNoise
    from dipscope.stopping import estimate_sigma

    noisy = GaussianNoise(sigma / 255, 3)(textured_rgb, clip=False)
    pca, wavelet = 255 * estimate_sigma(noisy, "pca"), 255 * estimate_sigma(noisy, "wavelet")
    assert abs(pca - sigma) < 0.1 * sigma + 0.5
    assert abs(pca - sigma) < abs(wavelet - sigma)
    with pytest.raises(Exception, match="unknown σ estimator"):
        estimate_sigma(noisy, "mad")


def test_the_context_records_its_sigma_estimator_and_reads_old_records_as_wavelet() -> None:
    """The default rule estimates σ with the patch-PCA estimator; a recorded context says which
    estimator made its σ̂, and one recorded before the field existed was the wavelet one."""
    from dipscope.stopping import DEFAULT_SIGMA_ESTIMATOR, Context

    noisy = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    ctx = Context.from_target(noisy)
    assert ctx.estimator == DEFAULT_SIGMA_ESTIMATOR == "pca"
    assert Context.from_dict(ctx.to_dict()).estimator == "pca"
    old = {k: v for k, v in ctx.to_dict().items() if k != "estimator"}
    assert Context.from_dict(old).estimator == "wavelet"
    assert Context.from_target(noisy, estimator="wavelet").sigma_estimated == pytest.approx(
        S.estimate_sigma(noisy, "wavelet"))
    cb = S.EarlyStopping("auto", noisy)
    cb.on_start(None)  # type: ignore[arg-type]
    assert cb.context.estimator == "pca" and cb.rule.name == "spectral-lag"
