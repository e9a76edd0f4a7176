"""The denoising table (issue: data sets + architecture comparison) and its data sets."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dipscope import datasets
from dipscope.cli import main
from dipscope.errors import DipscopeError
from dipscope.experiments import denoise_table as dt
from dipscope.images import write_image
from dipscope.physics import denoising_pair, downsample, quantize8
from dipscope.runtime import STREAMS, derive_seed

def tree(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images"
DATA = Path(os.environ.get("DIPSCOPE_DATA", SHARED))
needs_data = pytest.mark.skipif(not (DATA / "house.png").is_file(),
                                reason=f"the cbm3d9 images are not in {DATA} (set DIPSCOPE_DATA)")


# --- degradations ---------------------------------------------------------------------------

def test_study_resize_is_plain_bilinear_at_pixel_centres() -> None:
    """×2 'study' = OpenCV INTER_LINEAR: output pixel i samples input at 2i + 0.5, i.e. the mean
    of pixels 2i and 2i+1 (no wider anti-aliasing window); 'antialias' averages more widely."""
    x = torch.arange(16.0).reshape(1, 1, 16).repeat(1, 4, 1) / 16
    study = downsample(x, 2, "study")
    assert torch.allclose(study[0, 0], (x[0, 0, 0::2] + x[0, 0, 1::2]) / 2)
    stripes = (torch.arange(64) % 8 < 4).float().reshape(1, 1, 64).repeat(1, 32, 1)
    # Period-8 stripes shrunk ×4 (to the new Nyquist): plain bilinear keeps their full contrast
    # (std 0.5), the anti-aliasing filter halves it.
    assert downsample(stripes, 4, "study").std() > 0.45
    assert downsample(stripes, 4, "antialias").std() < 0.3


def test_study_distorted_swaps_height_and_width() -> None:
    image = torch.rand(3, 40, 60)
    assert downsample(image, 4, "study").shape == (3, 10, 15)
    assert downsample(image, 4, "study-distorted").shape == (3, 15, 10)
    assert downsample(torch.rand(3, 32, 32), 4, "study-distorted").shape == (3, 8, 8)
    with pytest.raises(DipscopeError, match="choose one of"):
        downsample(image, 2, "cubic")


def test_area_resize_is_the_block_mean_and_keeps_the_aspect() -> None:
    """×f 'area' = OpenCV INTER_AREA at an integer factor: each output pixel is the mean of one
    f×f block; a 42×61 image keeps its whole blocks (10×15 at ×4)."""
    image = torch.rand(3, 42, 61, dtype=torch.float64)
    small = downsample(image, 4, "area")
    assert small.shape == (3, 10, 15)
    blocks = image[:, :40, :60].reshape(3, 10, 4, 15, 4).mean(dim=(2, 4)).float()
    assert torch.allclose(small, blocks, atol=1e-6)
    # Stripes of period 4 average out to flat grey; period-8 stripes keep half their contrast.
    def stripes(period: int) -> torch.Tensor:
        return (torch.arange(64) % period < period // 2).float().reshape(1, 1, 64).repeat(1, 32, 1)
    assert downsample(stripes(4), 4, "area").std() < 1e-6
    assert torch.allclose(downsample(stripes(8), 4, "area")[0, 0, :2], torch.tensor([1.0, 0.0]))


def test_denoising_pair_is_8_bit_seeded_and_clipped() -> None:
    image = torch.rand(3, 64, 64)
    clean, noisy = denoising_pair(image, 2, 25 / 255, resize="study", seed=3)
    assert clean.shape == noisy.shape == (3, 32, 32)
    for x in (clean, noisy):
        assert torch.equal(x, quantize8(x)) and x.min() >= 0 and x.max() <= 1
    again = denoising_pair(image, 2, 25 / 255, resize="study", seed=3)[1]
    other = denoising_pair(image, 2, 25 / 255, resize="study", seed=4)[1]
    assert torch.equal(noisy, again) and not torch.equal(noisy, other)
    residual = (noisy - downsample(image, 2, "study")).std().item()
    assert 0.085 < residual < 0.1  # σ = 25/255 = 0.098, slightly less after clipping


def test_quantize8_rounds_exact_ties_whatever_the_float_noise() -> None:
    """Averages of 8-bit pixels sit on exact ties; float32 noise either side must not decide them."""
    ties = torch.tensor([12.5, 13.5, 200.25, 7.75, 254.5])
    expected = torch.tensor([12.0, 14.0, 200.0, 8.0, 254.0]) / 255.0  # half to even
    for noise in (-3e-5, 0.0, 3e-5):
        assert torch.equal(quantize8((ties + noise) / 255.0), expected)


def test_study_pair_is_the_same_at_any_thread_count() -> None:
    """The clean reference must not depend on torch's thread count (it once did, at ties).

    The noisy image can differ in a rare pixel: noise is added to the float resize, whose last
    bits depend on the thread count, so an 8-bit rounding of noisy = small + n very close to a
    half step can flip (measured: 1 pixel of 786 432 for 2 of 6 random images, by 1/255)."""
    image = torch.randint(0, 256, (3, 512, 512), generator=torch.Generator().manual_seed(0)).float() / 255.0
    threads = torch.get_num_threads()
    try:
        pairs = []
        for n in (1, 2):
            torch.set_num_threads(n)
            pairs.append(denoising_pair(image, 4, 25 / 255, resize="study", seed=0))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(pairs[0][0], pairs[1][0])
    differ = pairs[0][1] != pairs[1][1]
    assert differ.sum() <= 3 and (pairs[0][1] - pairs[1][1]).abs().max() <= 1 / 255 + 1e-7


def test_random_streams_of_a_run_are_distinct() -> None:
    """Weights, input, input noise and degradation use different seeds for every run seed (the
    shared-seed input made seed 0 a pathological network, see runtime.derive_seed)."""
    for seed in range(20):
        derived = [derive_seed(seed, s) for s in STREAMS]
        assert len(set(derived)) == len(derived)
        firsts = [torch.rand(4, generator=torch.Generator().manual_seed(d)) for d in derived]
        assert all(not torch.equal(firsts[0], f) for f in firsts[1:])


# --- data sets ------------------------------------------------------------------------------

@needs_data
def test_cbm3d9_loads_with_sha256(tmp_path: Path) -> None:
    images = datasets.load("cbm3d9", DATA)
    assert list(images) == [e.name for e in datasets.CBM3D9]
    assert images["kodim01"].shape == (3, 512, 768) and images["house"].shape == (3, 256, 256)
    bad = tmp_path / "images"
    shutil.copytree(DATA, bad, ignore=shutil.ignore_patterns("triangle*"))
    write_image(bad / "house.png", torch.zeros(3, 8, 8))
    with pytest.raises(DipscopeError, match="sha256"):
        datasets.load("cbm3d9", bad)


@needs_data
def test_fetch_checks_sha256_and_never_overwrites(tmp_path: Path) -> None:
    """fetch() with a stand-in downloader (no network in tests) that copies the local files."""
    by_url = {e.url: DATA / e.file for e in datasets.BARBARA}
    fetched = datasets.fetch("barbara", tmp_path / "a", download=lambda url, path: shutil.copy(by_url[url], path),
                             progress=lambda m: None)
    assert [p.name for p in fetched] == ["barbara.png"]
    assert datasets.fetch("barbara", tmp_path / "a", download=None, progress=lambda m: None) == []  # present
    corrupt = lambda url, path: path.write_bytes(b"not an image")  # noqa: E731
    with pytest.raises(DipscopeError, match="sha256"):
        datasets.fetch("barbara", tmp_path / "b", download=corrupt, progress=lambda m: None)
    assert not any((tmp_path / "b").iterdir())  # nothing half-written left behind
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "barbara.png").write_bytes(b"mine")
    with pytest.raises(DipscopeError, match="other content"):
        datasets.fetch("barbara", tmp_path / "c", download=corrupt, progress=lambda m: None)
    assert (tmp_path / "c" / "barbara.png").read_bytes() == b"mine"


def test_every_entry_has_a_pinned_url() -> None:
    for name in datasets.SETS:
        for e in datasets.entries(name):
            assert e.url.startswith("https://raw.githubusercontent.com/") and len(e.sha256) == 64
            assert any(len(part) == 40 for part in e.url.split("/"))  # a commit, not a branch


# --- the table ------------------------------------------------------------------------------

def _images(tmp_path: Path, textured_rgb: torch.Tensor) -> list[str]:
    paths = []
    for name, crop in [("house", textured_rgb), ("mine", textured_rgb.flip(-1))]:
        path = tmp_path / f"{name}.png"
        write_image(path, crop)
        paths.append(str(path))
    return paths


def test_table_smoke_resumes_and_compares_with_published(tmp_path: Path, textured_rgb: torch.Tensor, capsys) -> None:
    cfg = dt.TableConfig(images=_images(tmp_path, textured_rgb), models=["dip"], runs=2, factor=1,
                         profile="smoke", device="cpu")
    out = tmp_path / "table"
    text = dt.run(cfg, out)
    assert "4 of 4 runs finished" in text
    csv = {(r["image"], r["model"]): r for r in _csv(out / "table.csv")}
    summaries = [json.loads(p.read_text())["summary"] for p in sorted(out.glob("dip/house/run-*/run.json"))]
    resets = sum(bool(s["recoveries"]) for s in summaries + [json.loads(p.read_text())["summary"]
                                                             for p in out.glob("dip/mine/run-*/run.json")])
    assert f"Divergence resets (weights restored after a loss jump): {resets} of 4 runs" in text
    values = [s["best_psnr"] for s in summaries]
    assert float(csv["house", "dip"]["best_psnr_mean"]) == pytest.approx(np.mean(values))
    assert float(csv["house", "dip"]["best_psnr_std"]) == pytest.approx(np.std(values, ddof=1))
    assert float(csv["house", "dip"]["published_mean"]) == 26.89  # a named image gets its published cell
    assert csv["mine", "dip"]["published_mean"] == ""  # a user's image has none
    for s in summaries:
        curve = np.genfromtxt(out / "dip" / "house" / f"run-{s['run']}" / "curve.csv", delimiter=",", names=True)
        assert s["best_psnr"] == pytest.approx(curve["psnr"].max()) and s["best_step"] in curve["step"]
        assert s["best_psnr"] > s["noisy_psnr"]
    assert (out / "curves.png").is_file() and (out / "means.png").is_file()
    assert (out / "inputs" / "house-noisy.png").is_file()
    # how each cell was made: its runs' precision, resets per run (in run order) and best steps
    house_resets = " / ".join(str(len(s["recoveries"])) for s in sorted(summaries, key=lambda s: s["run"]))
    best_steps = " / ".join(str(s["best_step"]) for s in sorted(summaries, key=lambda s: s["run"]))
    line = next(row for row in text.splitlines() if row.startswith("| house | dip | 2 |"))
    assert f"| {summaries[0]['precision']} | {house_resets} | {best_steps} |" in line
    assert csv["house", "dip"]["precision"] == summaries[0]["precision"]
    assert int(csv["house", "dip"]["divergence_resets"]) == sum(len(s["recoveries"]) for s in summaries)
    capsys.readouterr()
    dt.run(cfg, out)  # resume: everything is done already
    assert capsys.readouterr().out.count("skipped") == 4


def test_partial_sweeps_fill_the_table_and_report_only_runs_nothing(tmp_path: Path, textured_rgb: torch.Tensor,
                                                                     capsys) -> None:
    images = _images(tmp_path, textured_rgb)[:1]
    out = tmp_path / "table"
    dt.run(dt.TableConfig(images=images, models=["dip"], runs=1, factor=1, profile="smoke", device="cpu"), out)
    full = dt.TableConfig(images=images, models=["dip"], runs=3, factor=1, profile="smoke", device="cpu")
    text = dt.run(full, out, report_only=True)
    assert "1 of 3 runs finished" in text and "(n=1)" in text
    assert not (out / "dip" / "house" / "run-1").exists()


def test_a_run_recorded_before_a_setting_existed_is_still_finished(tmp_path: Path, textured_rgb: torch.Tensor,
                                                                  capsys) -> None:
    """A fit setting added later (fit.types.ADDED_SETTINGS) at the value older runs had does not
    turn a finished run into an unfinished one; any other difference in the settings does."""
    images = _images(tmp_path, textured_rgb)[:1]
    out = tmp_path / "table"
    cfg = dt.TableConfig(images=images, models=["dip"], runs=1, factor=1, profile="smoke", device="cpu")
    dt.run(cfg, out)
    record_file = out / "dip" / "house" / "run-0" / "run.json"
    record = json.loads(record_file.read_text())
    del record["config"]["fit"]["cuda_graph"]  # as runs.json were written before --cuda-graph existed
    record_file.write_text(json.dumps(record))
    assert "1 of 1 runs finished" in dt.run(cfg, out, report_only=True)
    record["config"]["fit"]["lr"] = 0.5  # another setting differs: not the same run, and a report
    record_file.write_text(json.dumps(record))  # of these settings would replace the table of that one
    before = tree(out)
    with pytest.raises(DipscopeError, match="no finished run .* these settings"):
        dt.run(cfg, out, report_only=True)
    assert tree(out) == before


def test_table_config_errors() -> None:
    for bad, match in [(dict(runs=0), "--runs"), (dict(sigma=-1), "--sigma"), (dict(steps={"relunet": 5}, models=["dip"]), "--steps"),
                       (dict(crop=-2), "--crop")]:
        with pytest.raises(DipscopeError, match=match):
            dt.TableConfig(**bad).validate()


def test_cli_table_usage_errors(tmp_path: Path, capsys) -> None:
    for args, match in [(["--steps", "dip"], "MODEL=N"), (["--models", ","], "empty"),
                        (["--resize", "cubic"], "choose one of"), (["--models", "cnn"], "unknown model")]:
        with pytest.raises(SystemExit) as e:
            main(["experiment", "denoise-table", str(tmp_path / "x.png"), "--out", str(tmp_path / "o"), *args])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and match in err and "Traceback" not in err


@needs_data
def test_cli_data_check(capsys) -> None:
    main(["data", "check", "barbara", "--data-dir", str(DATA)])
    assert "barbara: 512×512, 1 channel(s), sha256 ok" in capsys.readouterr().out


def _csv(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path) as f:
        return list(csv.DictReader(f))


def test_no_profile_has_divergence_recovery_as_the_study_scripts() -> None:
    from dipscope.experiments.common import PROFILES, model_choice
    from dipscope.presets import preset

    assert not preset("chakrabarty2019", "skip")[1].recover_divergence
    for model in ("dip", "linear-128", "relunet", "linear-2048:lr=1e-4"):
        for profile in PROFILES:
            assert not model_choice(model, profile)[1].recover_divergence
            assert model_choice(model, profile, recover=True)[1].recover_divergence  # only when asked


def test_a_model_name_may_change_the_learning_rate(tmp_path: Path, cli) -> None:
    from dipscope.experiments.common import model_choice

    spec, config = model_choice("linear-2048:lr=1e-4", "paper")
    assert config.lr == 1e-4 and spec == model_choice("linear-2048", "paper")[0]
    for bad in ("linear-2048:lr=0", "linear-2048:lr=x", "linear-2048:steps=5", "dip:lr=nan"):
        with pytest.raises(DipscopeError, match="model option"):
            model_choice(bad, "paper")
    image = tmp_path / "tiny.png"
    write_image(image, torch.rand(3, 64, 64))
    out = tmp_path / "table"
    code, stdout, err = cli(["experiment", "denoise-table", str(image), "--out", str(out), "--models",
                             "linear-128,linear-128:lr=1e-4", "--runs", "1", "--factor", "1", "--profile", "smoke",
                             "--steps", "linear-128:lr=1e-4=10", "--device", "cpu", "--no-baselines"])
    assert code == 0, err
    assert (out / "linear-128:lr=1e-4" / "tiny" / "run-0" / "run.json").is_file()
    assert "linear-128:lr=1e-4 (ours, not the study's setting)" in stdout and "Adam lr 0.0001" in stdout


def test_the_oracle_lowpass_filter_finds_the_right_width() -> None:
    """On a smooth image the best Gaussian low-pass is wide and well above the noisy input; on
    pure fine texture it is the identity (width 0)."""
    from dipscope.baselines import best_gaussian_lowpass, gaussian_lowpass
    from dipscope.metrics import psnr
    from dipscope.physics import GaussianNoise

    y, x = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    smooth = (0.3 + 0.4 * x * y)[None]
    noisy = GaussianNoise(25 / 255, 0)(smooth)
    value, width = best_gaussian_lowpass(noisy, smooth)
    assert width > 2 and value > psnr(noisy, smooth) + 8
    assert value == pytest.approx(psnr(gaussian_lowpass(noisy, width), smooth))
    checker = ((torch.arange(64)[:, None] + torch.arange(64)[None]) % 2).float()[None]
    assert best_gaussian_lowpass(checker * 0.98 + 0.01, checker)[1] == 0.0


def test_table_reports_the_lowpass_baseline(tmp_path: Path, textured_rgb: torch.Tensor, capsys) -> None:
    image = tmp_path / "crop.png"
    write_image(image, textured_rgb)
    cfg = dt.TableConfig(images=[str(image)], models=["dip"], runs=1, factor=1, profile="smoke", device="cpu")
    text = dt.run(cfg, tmp_path / "out")
    assert "best Gaussian low-pass (oracle width)" in text and "(s = " in text
    rows = list(csv.DictReader(open(tmp_path / "out" / "table.csv")))
    assert {r["model"] for r in rows} >= {"dip", "lowpass"}
    text = dt.run(replace(cfg, baselines=False), tmp_path / "out", report_only=True)
    assert "low-pass" not in text


def test_runs_of_an_accepted_precision_count_as_done_and_each_cell_says_which(tmp_path: Path,
                                                                              textured_rgb: torch.Tensor,
                                                                              capsys) -> None:
    images = _images(tmp_path, textured_rgb)[:1]
    common = dict(images=images, models=["dip"], factor=1, profile="smoke", device="cpu", baselines=False)
    out = tmp_path / "table"
    dt.run(dt.TableConfig(runs=1, precision="fp32", **common), out)
    bf16 = dt.TableConfig(runs=2, precision="bf16", **common)
    with pytest.raises(DipscopeError, match="other settings"):  # not accepted: a finished fp32 run is not redone
        dt.run(bf16, out)
    capsys.readouterr()
    text = dt.run(replace(bf16, accept_precisions=("fp32",)), out)
    assert capsys.readouterr().out.count("skipped") == 1  # run 0 (fp32) kept, run 1 made in bf16
    made = {p.parent.name: json.loads(p.read_text())["summary"]["precision"] for p in out.glob("dip/house/run-*/run.json")}
    assert made == {"run-0": "fp32", "run-1": "bf16"}
    assert next(row for row in text.splitlines() if row.startswith("| house | dip | 2 |")).split(" | ")[3] == "bf16, fp32"
    assert _csv(out / "table.csv")[0]["precision"] == "bf16, fp32"
    with pytest.raises(DipscopeError, match="--accept-precision"):
        dt.TableConfig(accept_precisions=("half",)).validate()


def test_a_model_can_have_its_own_run_count(tmp_path: Path, textured_rgb: torch.Tensor, capsys) -> None:
    """``--runs 1 --runs linear-128=2``: one run of DIP, two of DIP-Linear-128, and the table counts
    the runs of that plan (a column of one run is complete, not "n=1")."""
    image = _images(tmp_path, textured_rgb)[0]
    out = tmp_path / "table"
    main(["experiment", "denoise-table", image, "--models", "dip,linear-128", "--runs", "1", "--runs",
          "linear-128=2", "--profile", "smoke", "--factor", "1", "--no-baselines", "--device", "cpu",
          "--out", str(out)])
    runs = sorted(p.parent.relative_to(out).as_posix() for p in out.glob("*/*/*/run.json"))
    assert runs == ["dip/house/run-0", "linear-128/house/run-0", "linear-128/house/run-1"]
    text = (out / "table.md").read_text()
    assert "3 of 3 runs finished" in text and "linear-128: 2" in text and "(n=" not in text


def test_flushed_runs_resume_exact_ones_and_are_marked(tmp_path: Path, textured_rgb: torch.Tensor, capsys) -> None:
    """--flush-denormals keeps the finished runs made with exact arithmetic, makes the missing
    ones flushing subnormals to zero, records it, and the table marks those runs 'ftz'."""
    images = _images(tmp_path, textured_rgb)[:1]
    common = dict(images=images, models=["dip"], factor=1, profile="smoke", device="cpu", baselines=False,
                  precision="fp32")
    out = tmp_path / "table"
    dt.run(dt.TableConfig(runs=1, **common), out)
    capsys.readouterr()
    text = dt.run(dt.TableConfig(runs=2, flush_denormals=True, **common), out)
    assert capsys.readouterr().out.count("skipped") == 1
    made = {p.parent.name: json.loads(p.read_text()) for p in out.glob("dip/house/run-*/run.json")}
    assert {k: r["config"]["fit"].get("flush_denormals", False) for k, r in made.items()} == \
        {"run-0": False, "run-1": True}
    assert next(row for row in text.splitlines() if row.startswith("| house | dip | 2 |")).split(" | ")[3] == \
        "fp32, fp32 ftz"
    assert "'ftz': runs that flushed subnormal floats" in text
    with pytest.raises(DipscopeError, match="other settings"):  # flushed runs are not exact ones
        dt.run(dt.TableConfig(runs=2, **common), out)
    report = dt.run(dt.TableConfig(runs=2, **common), out, report_only=True)  # a report reads both
    assert "2 of 2 runs finished" in report and "fp32, fp32 ftz" in report


def test_flush_denormals_is_refused_before_any_fit_where_it_cannot_flush(tmp_path: Path, textured_rgb: torch.Tensor,
                                                                         monkeypatch) -> None:
    from dipscope import runtime

    monkeypatch.setattr(runtime, "can_flush_denormals", lambda device: False)  # as on a GPU, or a CPU without FTZ
    out = tmp_path / "table"
    with pytest.raises(DipscopeError, match="--flush-denormals needs a CPU"):
        dt.run(dt.TableConfig(images=_images(tmp_path, textured_rgb)[:1], models=["dip"], runs=1, factor=1,
                              profile="smoke", device="cpu", baselines=False, precision="fp32",
                              flush_denormals=True), out)
    assert not out.exists()
