"""Smoke profiles of the experiments: they run, write their summaries, and resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from dipscope.datasets import pattern_image
from dipscope.experiments import bias, trajectory
from dipscope.images import write_image


def test_bias_smoke_writes_summary_and_resumes(tmp_path: Path, textured_grey: torch.Tensor, capsys) -> None:
    image = tmp_path / "crop.png"
    write_image(image, textured_grey)
    cfg = bias.BiasConfig(images=[str(image)], models=["dip", "linear-32", "relunet"], profile="smoke",
                          factor=1, device="cpu")
    text = bias.run(cfg, tmp_path / "out")
    assert "| dip | crop |" in text and "| relunet | crop |" in text
    for model in ["dip", "linear-32", "relunet"]:
        run_dir = tmp_path / "out" / model / "crop"
        data = np.load(run_dir / "spectral.npz")
        assert data["errors/target"].shape == (len(data["steps"]), 9)
        assert (run_dir / "bias.png").is_file()
        record = json.loads((run_dir / "run.json").read_text())
        summary = record["summary"]
        assert len(summary["t_k"]) == 8 and -1 <= summary["rho"] <= 1
        # both quantities: the magnitude error (the study's) never exceeds the complex one
        magnitude = data["errors/magnitude/target"]
        assert magnitude.shape == data["errors/target"].shape
        assert (magnitude <= data["errors/target"] + 1e-9).all() and (magnitude < data["errors/target"]).any()
        assert len(summary["t_k_magnitude"]) == 8 and -1 <= summary["rho_magnitude"] <= 1
        assert (run_dir / "bias_magnitude.png").is_file()
        # no hidden recovery: off in the recorded settings, and the (empty) list of resets recorded
        assert record["config"]["fit"]["recover_divergence"] is False and summary["recoveries"] == []
    assert "ρ magnitude" in text and "| recoveries |" in text
    for quantity in ("magnitude", "complex"):
        assert (tmp_path / "out" / f"staircase-crop-{quantity}.png").stat().st_size > 0
    capsys.readouterr()
    bias.run(cfg, tmp_path / "out")
    assert capsys.readouterr().out.count("skipped") == 3


def test_band_times_and_rank_correlation() -> None:
    errors = np.array([[1.0, 1.0, 1.0, 0.5], [0.05, 1.0, 1.0, 0.5], [0.01, 0.05, 1.0, 0.5]])
    times = bias.band_times(errors, [0, 10, 20], 0.1)
    assert times == [10, 20, None]
    assert bias.rank_correlation(times) == 1.0
    assert bias.rank_correlation([20, 10, None]) < 1.0


def test_convergence_points_find_the_double_convergence() -> None:
    t = np.linspace(0, 1, 101)
    d = 1 - 0.8 * np.exp(-((t - 0.2) / 0.08) ** 2) - 0.9 * (t > 0.6) * (t - 0.6) / 0.4 - 0.3 * t
    d = d - d.min() + 0.01
    points = trajectory.convergence_points(trajectory.smooth_median(d, 5))
    assert 15 <= points["first_min"] <= 25 and points["peak"] > points["first_min"]
    assert points["final_min"] >= 95
    assert trajectory.convergence_points(np.linspace(1, 0, 10))["first_min"] is None


def test_trajectories_are_compared_at_the_same_steps() -> None:
    """A run reset after a divergence misses that observation; the other run's frame of that
    step must be dropped too, not paired with the next one."""
    from types import SimpleNamespace

    from dipscope.callbacks import TrajectoryRecorder

    first, second = TrajectoryRecorder(dtype="float32"), TrajectoryRecorder(dtype="float32")
    for step in (0, 10, 20, 30):
        if step != 20:
            first.observe(SimpleNamespace(step=step, output=torch.full((1, 2, 2), float(step))))
        if step != 10:
            second.observe(SimpleNamespace(step=step, output=torch.full((1, 2, 2), float(step))))
    a, b, steps = trajectory.common_steps(first, second)
    assert steps.tolist() == [0, 30] and np.array_equal(a, b)


def test_smooth_median_does_not_let_an_edge_spike_through() -> None:
    d = np.array([50.0, 4, 9, 2, 2, 2, 2, 30])  # a jump in the first steps, a spike in the last
    smoothed = trajectory.smooth_median(d, 5)
    assert smoothed[-1] == 2.0 and smoothed[3] == 2.0
    assert list(smoothed[:2]) == [50.0, 9.0]  # before step 0 the window sees d[0]: no dip at step 1


def test_convergence_points_skip_plateaus_and_shallow_dips() -> None:
    """A plateau on the way down is no minimum, and a dip that d barely climbs out of (the
    jitter of the first steps) is not the first meeting point; the clear one after it is."""
    falling_with_plateaus = np.array([100.0, 60, 30, 30, 30, 20, 10, 10, 5])
    assert trajectory.convergence_points(falling_with_plateaus)["first_min"] is None
    #                0    1   2   3   4   5   6   7   8   9  10  11
    d = np.array([100.0, 50, 40, 41, 39, 30, 20, 35, 60, 45, 30, 25])
    points = trajectory.convergence_points(d)
    assert (points["first_min"], points["peak"], points["final_min"]) == (6, 8, 11)
    assert trajectory.convergence_points(d, min_rise=0.0)["first_min"] == 2  # any rise counts
    wiggle = np.array([100.0, 50, 20, 21, 10, 5])  # climbs 5 % above the minimum
    assert trajectory.convergence_points(wiggle)["first_min"] is None
    late = np.array([100.0, 50, 20, 10, 30])  # still rising at the end: no final approach yet
    assert trajectory.convergence_points(late) == {"first_min": 3, "peak": 4, "final_min": None}


def test_trajectory_smoke_on_generated_patterns(tmp_path: Path) -> None:
    cfg = trajectory.TrajectoryConfig(images=["pattern:0.2,0.8"], profile="smoke", device="cpu")
    text = trajectory.run(cfg, tmp_path / "out")
    assert "pattern-0.20" in text and "pattern-0.80" in text and "Spearman" in text
    assert (tmp_path / "out" / "distance.png").is_file()
    rows = (tmp_path / "out" / "dip" / "pattern-0.80" / "distance.csv").read_text().splitlines()
    assert rows[0].startswith("step,d,d_smoothed,band_0") and len(rows) > 5


def test_trajectory_seed_pair_both_rises_and_recoveries_recorded(tmp_path: Path) -> None:
    cfg = trajectory.TrajectoryConfig(images=["pattern:0.2,0.5,0.8"], profile="smoke", device="cpu", seed=2,
                                      steps=20)
    text = trajectory.run(cfg, tmp_path / "out")
    record = json.loads((tmp_path / "out" / "dip" / "pattern-0.50" / "run.json").read_text())
    assert record["config"]["seeds"] == [2, 3] and record["config"]["fit"]["recover_divergence"] is False
    assert record["summary"]["recoveries"] == [[], []]
    assert "Seeds 2, 3" in text and "for the absolute rise and" in text and "relative to the first minimum" in text
    assert "converged twice" in text


def test_second_convergence_compares_the_final_approach_with_the_first_meeting() -> None:
    assert trajectory.second_convergence({"first_min_d": 20.0, "final_min_d": 15.0}) == "yes"
    assert trajectory.second_convergence({"first_min_d": 20.0, "final_min_d": 30.0}) == "no (1.50×)"
    assert trajectory.second_convergence({"first_min_d": None, "final_min_d": None}) == "–"


def test_pattern_image_fine_lines_sit_at_nyquist() -> None:
    from dipscope.spectral import band_energy

    none, full = pattern_image(64, 0.0), pattern_image(64, 1.0)
    assert none.shape == (1, 64, 64) and 0 <= float(full.min()) and float(full.max()) <= 1
    last_ring = band_energy(full)[0, -2] / band_energy(none)[0, -2]
    assert last_ring > 10  # the lines put their energy at 0.5 cycles/pixel
    half = pattern_image(64, 0.5)
    assert torch.equal(half[:, 40:, :], none[:, 40:, :]) and not torch.equal(half[:, :32, :32], none[:, :32, :32])
    # lines at 0.5 cycles/pixel in the top-left square of side F·size, nothing elsewhere
    assert torch.equal(half[:, 32:, :], none[:, 32:, :]) and torch.equal(half[:, :, 32:], none[:, :, 32:])
    assert torch.equal(half[:, 1:32:2, :32], none[:, 1:32:2, :32])
    assert torch.allclose(half[:, 0:32:2, :32], none[:, 0:32:2, :32] * 2 / 3)


def test_trajectory_recorder_keeps_uint8_frames_as_a_png_would() -> None:
    from types import SimpleNamespace

    from dipscope.callbacks import TrajectoryRecorder
    from dipscope.images import to_uint8

    rec = TrajectoryRecorder(dtype="uint8")
    x = torch.rand(3, 8, 5)
    rec.observe(SimpleNamespace(step=0, output=x, ema=None))
    rec.observe(SimpleNamespace(step=10, output=x[:1], ema=None))
    assert rec._frames[0].shape == (3, 8, 5) and rec._frames[1].shape == (1, 8, 5)
    assert np.array_equal(np.moveaxis(rec._frames[0], 0, -1), to_uint8(x))


def test_the_fit_pads_as_pad_to_multiple_does() -> None:
    from dipscope.fit import padded_shape
    from dipscope.images import pad_to_multiple
    from dipscope.models import SkipSpec

    spec = SkipSpec(channels_down=(4,) * 3, channels_up=(4,) * 3, channels_skip=(1,) * 3)
    image = torch.rand(3, 37, 50)
    shape, padding = padded_shape(spec, image.shape)
    padded, expected = pad_to_multiple(image, spec.pad_multiple)
    assert shape == tuple(padded.shape) and padding == expected


def test_the_public_api_resolves_every_name() -> None:
    import dipscope

    for name in dipscope.__all__:
        assert getattr(dipscope, name) is not None, name
    assert dipscope.fit_runs.__module__ == "dipscope.fit.loop" and "fit" not in dipscope.__all__
