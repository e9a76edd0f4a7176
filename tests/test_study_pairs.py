"""benchmarks/study_pairs.py: dipscope denoise with its defaults on given noisy/clean pairs, kept and resumed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

from dipscope.images import write_image
from dipscope.physics import GaussianNoise
from dipscope.time_to_result import skimage_photo

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "study_pairs.py"


def load_script():
    spec = importlib.util.spec_from_file_location("study_pairs", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pairs_are_denoised_with_the_defaults_and_kept(tmp_path: Path) -> None:
    bench = load_script()
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: an ensemble's runs go in turn, run 0 with the single run's numbers
    try:
        check_pairs(bench, tmp_path)
    finally:
        torch.set_num_threads(before)


def check_pairs(bench, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    for k, name in enumerate(("camera", "coffee")):
        clean = skimage_photo(name, 32)
        write_image(pairs / f"{name}-clean.png", clean)
        write_image(pairs / f"{name}-noisy.png", GaussianNoise(25 / 255, k)(clean, clip=True))
    write_image(pairs / "lonely-noisy.png", clean)  # no clean partner: not a pair
    assert sorted(bench.pairs_in(pairs)) == ["camera", "coffee"]
    out = tmp_path / "out"
    rows = bench.measure_all(pairs, out, runs=1, max_steps=30, levels=2)
    assert [r["image"] for r in rows] == ["camera", "coffee"]
    for row in rows:
        record = json.loads((out / row["image"] / "run.json").read_text())
        assert record["stopping"]["result_psnr"] == row["psnr"]
        assert row["steps_fitted"][0] <= 30 and row["seconds"] >= row["fit_seconds"][0] > 0
        assert row["best_output_psnr"] >= record["result"]["best_psnr"] - 1e-9  # the run's own best output
        assert 5 < row["sigma_255"] < 60  # estimated from the noisy image
    kept = (out / "camera.json").read_text()
    again = bench.measure_all(pairs, out, runs=1, max_steps=30, levels=2, only=["camera"])  # reused, not refitted
    assert (out / "camera.json").read_text() == kept and again[0] == rows[0]
    # without --runs: the default preset's runs (dipscope: 3), averaged; other settings, so refitted
    three = bench.measure_all(pairs, out, max_steps=30, levels=2, only=["camera"])
    assert three[0]["settings"]["runs"] == 3 and three[0]["settings"]["preset"] == "dipscope"
    assert three[0]["settings"]["width"] == 48  # the preset's network is part of what a kept row was made with
    assert len(three[0]["steps_chosen"]) == 3 and len(three[0]["run_psnrs"]) == 3
    assert three[0]["run_psnrs"][0] == rows[0]["psnr"]  # run 0 is the single run (same seed and settings)
    other = bench.measure_all(pairs, tmp_path / "u", max_steps=10, levels=2, only=["coffee"], preset="ulyanov2018")
    record = json.loads((tmp_path / "u" / "coffee" / "run.json").read_text())
    assert other[0]["settings"]["runs"] == 1 and record["preset"] == "ulyanov2018"  # its own default runs
    text = bench.report(rows, pairs)
    mean = (rows[0]["psnr"] + rows[1]["psnr"]) / 2
    assert f"**Mean {mean:.2f} dB** over 2 images" in text and "| camera |" in text
