"""The command line: a full small run, and one clear line with exit status 2 for each bad input."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from dipscope.images import write_image


@pytest.fixture()
def image_file(tmp_path: Path, textured_rgb: torch.Tensor) -> Path:
    path = tmp_path / "astro.png"
    write_image(path, textured_rgb)
    return path


def test_denoise_writes_a_complete_run(tmp_path: Path, image_file: Path, cli) -> None:
    out = tmp_path / "run"
    code, stdout, _ = cli(["denoise", str(image_file), "--out", str(out), "--steps", "20", "--levels", "3",
                           "--device", "cpu", "--seed", "3"])
    assert code == 0, stdout
    for name in ["noisy.png", "final.png", "ema.png", "best.png", "metrics.csv", "losses.csv", "curves.png", "run.json"]:
        assert (out / name).is_file(), name
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "complete" and record["seed"] == 3 and record["preset"] == "dipscope"
    # the default preset: a 48-channel trunk, three seeds averaged
    assert record["model"]["family"] == "skip" and record["model"]["channels_down"] == [48] * 3
    assert record["stopping"]["seeds"] == [3, 4, 5] and (out / "denoised-run-2.png").is_file()
    assert record["fit"]["steps"] == 20 and record["degradation"] == {"kind": "gaussian", "operator": "identity", "sigma": 25.0, "seed": 3, "clip": True}
    assert record["versions"]["torch"] == torch.__version__ and record["device"]["type"] == "cpu"
    assert "PSNR" in stdout


def test_noisy_input_with_clean_reference(tmp_path: Path, image_file: Path, textured_rgb, cli) -> None:
    clean = tmp_path / "clean.png"
    write_image(clean, textured_rgb)
    out = tmp_path / "run"
    code, _, err = cli(["denoise", str(image_file), "--noisy", "--clean", str(clean), "--out", str(out),
                        "--steps", "5", "--levels", "3", "--device", "cpu"])
    assert code == 0, err
    assert json.loads((out / "run.json").read_text())["degradation"]["kind"] == "given"


def one_line_error(code: int, err: str, fragment: str) -> None:
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], err


def test_missing_path(tmp_path: Path, cli) -> None:
    code, _, err = cli(["denoise", str(tmp_path / "nope.png"), "--out", str(tmp_path / "o")])
    one_line_error(code, err, "nope.png")


def test_directory_and_unreadable_file(tmp_path: Path, cli) -> None:
    code, _, err = cli(["denoise", str(tmp_path), "--out", str(tmp_path / "o")])
    one_line_error(code, err, str(tmp_path))
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not a png")
    code, _, err = cli(["denoise", str(junk), "--out", str(tmp_path / "o")])
    one_line_error(code, err, "junk.png")


def test_one_pixel_and_too_small_images(tmp_path: Path, cli) -> None:
    tiny = tmp_path / "tiny.png"
    write_image(tiny, np.zeros((1, 1), np.float32))
    code, _, err = cli(["denoise", str(tiny), "--out", str(tmp_path / "o")])
    one_line_error(code, err, "tiny.png")
    small = tmp_path / "small.png"
    write_image(small, torch.rand(3, 40, 40))
    code, _, err = cli(["denoise", str(small), "--out", str(tmp_path / "o"), "--device", "cpu"])
    one_line_error(code, err, "64")
    assert not (tmp_path / "o").exists()


def test_configuration_too_large_for_memory(tmp_path: Path, cli) -> None:
    kodak = tmp_path / "kodak.png"
    write_image(kodak, torch.rand(3, 512, 768))
    code, _, err = cli(["denoise", str(kodak), "--out", str(tmp_path / "o"), "--model", "linear",
                        "--width", "2048", "--device", "cpu"])
    one_line_error(code, err, "GiB")


def test_existing_output_is_never_lost(tmp_path: Path, image_file: Path, cli) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    code, _, err = cli(["denoise", str(image_file), "--out", str(out), "--steps", "2"])
    one_line_error(code, err, "--force")
    assert (out / "precious.txt").read_text() == "keep me"


def test_conflicting_options(tmp_path: Path, image_file: Path, cli) -> None:
    code, _, err = cli(["denoise", str(image_file), "--noisy", "--sigma", "10", "--out", str(tmp_path / "o")])
    one_line_error(code, err, "--sigma")
    code, _, err = cli(["denoise", str(image_file), "--out", str(tmp_path / "o"), "--device", "tpu"])
    one_line_error(code, err, "tpu")


def test_interrupted_fit_still_writes_its_outputs(tmp_path: Path, image_file: Path) -> None:
    from dipscope.fit import Callback, FitState
    from dipscope.cli.request import RestoreRequest, run

    class CtrlC(Callback):
        def observe(self, state: FitState) -> None:
            if state.step == 10 and state.seed == 0:  # in the first run; the runs beside it stop with it
                raise KeyboardInterrupt

    request = RestoreRequest(image=image_file, out=tmp_path / "run", steps=50, levels=3, device="cpu")
    saved = run(request, callbacks=[CtrlC()])
    out, result = saved.out, saved.restoration.results[0]
    record = json.loads((out / "run.json").read_text())
    assert result.interrupted and record["status"] == "interrupted" and record["result"]["steps_done"] == 10
    assert (out / "final.png").is_file() and (out / "best.png").is_file()


def test_usage_errors_exit_2_without_traceback(tmp_path: Path, image_file: Path, cli) -> None:
    code, _, err = cli(["denoise", str(image_file), "--out", str(tmp_path / "o"), "--model", "cnn"])
    assert code == 2 and "Traceback" not in err and "cnn" in err


def test_demo_runs_and_writes_its_comparison(tmp_path: Path, cli) -> None:
    code, out, err = cli(["demo", "--out", str(tmp_path / "demo"), "--steps", "2"])
    assert code == 0, err
    assert (tmp_path / "demo" / "comparison.png").is_file() and "PSNR" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # nothing written beside --out


def test_an_ensemble_returns_the_mean_of_its_runs(tmp_path: Path, image_file: Path, cli) -> None:
    from dipscope.images import read_image

    args = ["--steps", "12", "--levels", "3", "--device", "cpu", "--precision", "fp32", "--seed", "3"]
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # runs in turn, each with the single run's thread count (so with its numbers)
    try:
        assert cli(["denoise", str(image_file), "--out", str(tmp_path / "one"), "--runs", "1", *args])[0] == 0
        code, out, err = cli(["denoise", str(image_file), "--out", str(tmp_path / "two"), "--runs", "2", *args])
    finally:
        torch.set_num_threads(before)
    assert code == 0, err
    two = tmp_path / "two"
    # run 0 of the ensemble is the single run of the same seed; the result is the runs' mean
    assert (two / "denoised-run-0.png").read_bytes() == (tmp_path / "one" / "denoised.png").read_bytes()
    runs = [read_image(two / f"denoised-run-{k}.png") for k in range(2)]
    assert not torch.equal(runs[0], runs[1])
    assert torch.allclose(read_image(two / "denoised.png"), (runs[0] + runs[1]) / 2, atol=1 / 255 + 1e-6)
    record = json.loads((two / "run.json").read_text())
    assert record["stopping"]["seeds"] == [3, 4] and len(record["ensemble"]) == 2 and "run 1 (seed 4)" in out


def test_time_to_result_measures_both_protocols(tmp_path: Path) -> None:
    from dipscope.time_to_result import TimeToResult, run

    with pytest.raises(Exception, match="50 measured steps"):
        run(TimeToResult(measure_steps=20))
    cfg = TimeToResult(images=("camera",), sigmas=(25.0,), crop=64, reference_steps=60, measure_steps=50,
                       max_steps=10, levels=3, device="cpu", out=tmp_path / "ttr", parts=("original",))
    rows, text = run(cfg)  # the untimed part alone: no row yet
    assert rows == [] and "No (image, σ)" in text
    kept = tmp_path / "ttr" / "camera-s25" / "original.json"
    before = kept.read_text()
    rows, text = run(replace(cfg, parts=("timing", "ours")))  # the timed parts later, the first one reused
    (row,) = rows
    assert kept.read_text() == before
    assert row["reference_steps_run"] == 60 and row["reference_time_extrapolated"]
    assert row["reference_seconds"] > 0 and row["ours_seconds"] > 0 and row["ours_step"] <= 10
    assert row["time_ratio"] == pytest.approx(row["reference_seconds"] / row["ours_seconds"])
    assert "50 timed steps" in text and "Measured on:" in text and row["reference_timed_by"] == "timing"
    assert f"- **σ = 25** (1 image; timed on {row['ours_machine']}): mean time ratio {row['time_ratio']:.2f}×" in text
    rows, _ = run(replace(cfg, seed=1, parts=("timing",)))  # other settings: the kept original is not reused
    assert rows == [] and kept.read_text() == before
    rows, text = run(replace(cfg, parts=("ensemble",), ensemble_runs=3))  # R = 3 runs of ours, scored at 1, 2, 3
    (row, ens) = rows
    assert ens["kind"] == "ensemble" and set(ens["psnr"]) == {1, 2, 3} and len(ens["steps"]) == 3
    # ours is the default preset's 3 runs: the ensemble's three (same seeds, same settings)
    assert row["ours_runs"] == 3 and ens["psnr"][3] == pytest.approx(row["ours_psnr"], abs=1e-6)
    assert ens["gain"][2] == pytest.approx(ens["psnr"][2] - ens["psnr"][1]) and ens["time_cost"][2] > 1.0
    assert "## Ensembles" in text and "Mean gain over one run: 2 runs" in text
    assert run(replace(cfg, parts=(), ensemble_runs=3))[1] == text  # no part to measure: the kept ones reported as they are
    with pytest.raises(Exception, match="--parts none"):
        run(replace(cfg, parts=(), out=None))
