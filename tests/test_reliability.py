"""Issue 14: no finished run is ever lost, every bad setting is refused before the fit, every
signal ends cleanly. Signals are sent to a real ``dipscope`` subprocess."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
import torch

from dipscope.errors import DipscopeError
from dipscope.images import write_image
from dipscope.runs import Task, run_tasks
from dipscope.runs.executors import ExecutorOptions
from dipscope.runs.rundir import LOCK_FILE, RunWriter

SMALL = ["--levels", "3", "--device", "cpu"]


@pytest.fixture()
def image_file(tmp_path: Path, textured_rgb: torch.Tensor) -> Path:
    path = tmp_path / "I.png"
    write_image(path, textured_rgb)
    return path


def one_line_error(code: int, err: str, *fragments: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), (code, err)
    for fragment in fragments:
        assert fragment in lines[0], err
    assert "fitting" not in err  # refused before the fit started
    return lines[0]


def tree(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# --- signals, in a real subprocess -----------------------------------------------------------

def start_fit(image: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    """``dipscope denoise`` in a subprocess, returned once its fit has started."""
    argv = [sys.executable, "-m", "dipscope.cli", "denoise", str(image), "--out", str(out), "--steps", "100000",
            *SMALL, *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    for line in proc.stderr:
        if line.startswith("fitting"):
            break
        assert time.monotonic() < deadline, "the fit did not start"
    else:
        pytest.fail(f"the process ended before fitting: {proc.wait()}")
    time.sleep(1.0)  # some steps
    return proc


def stop(proc: subprocess.Popen[str], signum: int) -> tuple[int, str, str]:
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def test_ctrl_c_during_force_keeps_the_finished_run(tmp_path: Path, image_file: Path, cli) -> None:
    out = tmp_path / "R"
    code, _, err = cli(["denoise", str(image_file), "--out", str(out), "--steps", "5", *SMALL])
    assert code == 0, err
    (out / "notes.txt").write_text("mine")
    before = tree(out)
    code, stdout, err = stop(start_fit(image_file, out, "--force"), signal.SIGINT)
    assert code == 130, err
    assert tree(out) == before  # the finished run, and the user's file, untouched
    beside = list(tmp_path.glob("R.interrupted-*"))
    assert len(beside) == 1 and str(beside[0].name) in err and "unchanged" in err
    record = json.loads((beside[0] / "run.json").read_text())
    assert record["status"] == "interrupted" and record["stopping"]["interrupted"]
    assert "interrupted before the rule" in stdout and "ran to the maximum" not in stdout


def test_sigterm_saves_progress_and_exits_143(tmp_path: Path, image_file: Path) -> None:
    out = tmp_path / "R"
    code, _, err = stop(start_fit(image_file, out), signal.SIGTERM)
    assert code == 143, err
    assert "SIGTERM" in err
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "interrupted" and record["result"]["steps_done"] > 0
    assert (out / "denoised.png").is_file() and (out / "final.png").is_file()
    assert not list(tmp_path.glob(".R.partial-*"))


def test_sigint_without_an_old_run_writes_into_out_and_exits_130(tmp_path: Path, image_file: Path) -> None:
    out = tmp_path / "R"
    code, _, err = stop(start_fit(image_file, out), signal.SIGINT)
    assert code == 130, err
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"


# --- bad settings: refused before the fit, nothing written -----------------------------------

@pytest.mark.parametrize("args, fragment", [
    (["--sigma", "nan"], "--sigma"),
    (["--sigma", "-1"], "--sigma"),
    (["--lr", "inf"], "--lr"),
    (["--lr", "0"], "--lr"),
    (["--stop-sigma", "nan"], "--stop-sigma"),
    (["--seed", "-1"], "--seed"),
    (["--steps", "-1"], "--steps"),
    (["--width", "0"], "--width"),  # the skip model has no width: refused by name
    (["--model", "relunet", "--levels", "2"], "--levels"),
])
def test_bad_values_are_refused_before_the_fit(tmp_path: Path, image_file: Path, cli, args, fragment) -> None:
    code, _, err = cli(["denoise", str(image_file), "--out", str(tmp_path / "o"), "--steps", "3", *SMALL[2:], *args])
    one_line_error(code, err, fragment)
    assert not (tmp_path / "o").exists()


def test_width_is_refused_by_name_for_a_model_without_one(tmp_path: Path, image_file: Path, cli) -> None:
    code, _, err = cli(["denoise", str(image_file), "--out", str(tmp_path / "o"), "--width", "0"])
    one_line_error(code, err, "--width", "DIP-Linear", "skip")


def test_unwritable_output_is_refused_before_the_fit(tmp_path: Path, image_file: Path, cli) -> None:
    code, _, err = cli(["denoise", str(image_file), "--out", "/proc/dipscope-x", "--steps", "3", *SMALL])
    one_line_error(code, err, "/proc/dipscope-x")


def test_the_working_directory_is_never_replaced(tmp_path: Path, image_file: Path, cli, monkeypatch) -> None:
    run = tmp_path / "R"
    assert cli(["denoise", str(image_file), "--out", str(run), "--steps", "2", *SMALL])[0] == 0
    monkeypatch.chdir(run)
    before = tree(run)
    for out in (".", str(tmp_path)):
        code, _, err = cli(["denoise", str(image_file), "--out", out, "--force", "--steps", "2", *SMALL])
        one_line_error(code, err, "working directory")
    assert tree(run) == before


def test_force_replaces_only_a_dipscope_run(tmp_path: Path, image_file: Path, cli) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"not really")
    code, _, err = cli(["denoise", str(image_file), "--out", str(folder), "--force", "--steps", "2", *SMALL])
    one_line_error(code, err, "photos", "not a dipscope run")
    assert (folder / "holiday.jpg").read_bytes() == b"not really"
    (folder / "run.json").write_text('{"status": "complete"}')  # a run.json, but not ours
    code, _, err = cli(["denoise", str(image_file), "--out", str(folder), "--force", "--steps", "2", *SMALL])
    one_line_error(code, err, "not a dipscope run")


# --- denoised.png at the step limit ------------------------------------------------------------

def test_denoised_is_the_last_output_when_the_rule_never_fired(tmp_path: Path, image_file: Path, cli) -> None:
    out = tmp_path / "R"
    code, stdout, err = cli(["denoise", str(image_file), "--out", str(out), "--steps", "5", "--runs", "1", *SMALL])
    assert code == 0, err
    stopping = json.loads((out / "run.json").read_text())["stopping"]
    assert stopping["step"] == 5 and stopping["source"] == "output" and not stopping["stopped_early"]
    assert "before the rule stopped it" in stopping["reason"]
    assert (out / "denoised.png").read_bytes() == (out / "final.png").read_bytes()
    assert "ran to the maximum" in stdout


def test_a_rule_that_stops_still_returns_its_ema(textured_rgb: torch.Tensor) -> None:
    from dipscope.fit import FitConfig, fit
    from dipscope.models import SkipSpec
    from dipscope.stopping import EarlyStopping, Rule

    class StopAt20(Rule):
        name = "at-20"

        def update(self, obs) -> bool:
            self.candidate = self.last_step = obs.step
            if obs.step >= 20:
                self.stopped_at = obs.step
                return True
            return False

    stopper = EarlyStopping(StopAt20(), textured_rgb, sigma=25 / 255)
    spec = SkipSpec(channels_down=(8,) * 3, channels_up=(8,) * 3, channels_skip=(2,) * 3)
    fit(spec, textured_rgb, FitConfig(steps=50, device="cpu", precision="fp32"), callbacks=[stopper])
    assert stopper.choice is not None and stopper.choice.step == 20 and stopper.choice.source == "ema"
    assert "stopped the fit at step 20" in stopper.choice.reason


# --- experiments -------------------------------------------------------------------------------

def test_a_refused_table_rerun_changes_nothing(tmp_path: Path, image_file: Path, cli) -> None:
    out = tmp_path / "X"
    base = ["experiment", "denoise-table", str(image_file), "--models", "dip", "--runs", "1", "--profile", "smoke",
            "--factor", "1", "--device", "cpu", "--out", str(out)]
    code, _, err = cli(base)
    assert code == 0, err
    before = tree(out)
    code, _, err = cli([*base, "--sigma", "15"])
    one_line_error(code, err, "other settings")
    assert tree(out) == before


def _value(directory: Path) -> dict[str, Any]:
    (directory / "v.txt").write_text("1")
    return {"v": 1}


def test_a_corrupt_run_json_is_set_aside_and_rerun(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_tasks([Task("a", _value, {})], out, progress=lambda m: None)
    (out / "a" / "run.json").write_text('{"task": "a", "sum')  # truncated
    said: list[str] = []
    summaries = run_tasks([Task("a", _value, {})], out, progress=said.append)
    assert summaries["a"] == {"v": 1}
    aside = list(out.glob("a.unfinished-*"))
    assert len(aside) == 1 and any("moved aside" in m and aside[0].name in m for m in said)
    assert json.loads((out / "a" / "run.json").read_text())["summary"] == {"v": 1}


def test_stale_partials_are_removed_on_resume_but_live_ones_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    stale, live, old = (out / f".run-0.partial-{name}" for name in ("stale", "live", "old"))
    for d in (stale, live, old):
        d.mkdir()
        (d / "half.txt").write_text("x")
    (stale / LOCK_FILE).write_text("")  # its writer was killed: nobody holds the lock
    (live / LOCK_FILE).write_text("")
    fd = os.open(live / LOCK_FILE, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a writer still at work
    for d in (stale, live, old):  # all an hour old; old has no lock file (an older dipscope)
        os.utime(d, (time.time() - 3600,) * 2)
    young = out / ".run-0.partial-young"
    young.mkdir()  # just made: its writer may not have locked it yet
    try:
        said: list[str] = []
        run_tasks([Task("run-0", _value, {})], out, progress=said.append)
        assert not stale.exists() and not old.exists() and live.exists() and young.exists()
        assert sum("half-written" in m for m in said) == 2
    finally:
        os.close(fd)


def test_a_run_writer_removes_stale_partials_of_its_directory(tmp_path: Path) -> None:
    stale = tmp_path / ".R.partial-x"
    stale.mkdir()
    (stale / LOCK_FILE).write_text("")
    os.utime(stale, (time.time() - 60,) * 2)
    writer = RunWriter(tmp_path / "R")
    assert not stale.exists() and writer.discarded == [stale]


def test_experiments_default_to_the_same_thread_count_on_both_executors() -> None:
    assert ExecutorOptions().resolved_threads() == ExecutorOptions(name="ray").resolved_threads() == 1
    assert ExecutorOptions(cpus_per_task=2).resolved_threads() == ExecutorOptions(name="ray", cpus_per_task=2).resolved_threads()


def test_resuming_with_another_thread_count_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_tasks([Task("a", _value, {})], out, progress=lambda m: None, executor=ExecutorOptions(threads=2))
    assert json.loads((out / "a" / "run.json").read_text())["executor"]["threads"] == 2
    with pytest.raises(DipscopeError, match="--threads 2"):
        run_tasks([Task("a", _value, {}), Task("b", _value, {})], out, progress=lambda m: None)
    assert not (out / "b").exists()
    run_tasks([Task("a", _value, {})], out, progress=lambda m: None, executor=ExecutorOptions(threads=2))


# --- messages and help -------------------------------------------------------------------------

def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_a_huge_image_is_called_too_large(tmp_path: Path, cli) -> None:
    huge = tmp_path / "huge.png"
    huge.write_bytes(_png_header(100_000, 100_000))
    code, _, err = cli(["denoise", str(huge), "--out", str(tmp_path / "o")])
    one_line_error(code, err, "too large", "100000×100000")


def test_too_many_levels_names_the_most_that_fit(tmp_path: Path, image_file: Path, cli) -> None:
    code, _, err = cli(["denoise", str(image_file), "--out", str(tmp_path / "o"), "--levels", "99", "--device", "cpu"])
    line = one_line_error(code, err, "at most 5 levels")
    assert not any(len(word) > 12 and word.isdigit() for word in line.split())


def test_help_gives_the_presets_defaults_and_no_value_placeholders(cli) -> None:
    code, stdout, _ = cli(["denoise", "--help"])
    assert code == 0
    text = " ".join(stdout.replace("│", " ").split())
    assert "ulyanov2018 3000" in text and "chakrabarty2019 1000" in text  # --steps
    assert "ulyanov2018 0.01" in text and "chakrabarty2019 0.001" in text  # --lr
    assert "<bool>" not in text and "{" not in text.split("Denoise")[0] and "denoise [OPTIONS] IMAGE" in text


def test_an_interrupted_sweep_exits_130_not_0(tmp_path: Path, image_file: Path, cli, monkeypatch) -> None:
    """typer turns a KeyboardInterrupt escaping a command into a return value; main must still exit 130."""
    from dipscope.experiments import denoise_table

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(denoise_table, "run", interrupted)
    code, _, err = cli(["experiment", "denoise-table", str(image_file), "--out", str(tmp_path / "X"),
                        "--profile", "smoke"])
    assert code == 130 and "aborted by SIGINT" in err


def test_a_signal_while_saving_keeps_the_run_and_exits_with_its_code(tmp_path: Path, image_file: Path, cli,
                                                                     monkeypatch) -> None:
    """A stop signal after the fit (here: while the PNGs are written) must not lose the run."""
    from dipscope import interrupts, restoration

    real = restoration.write_image
    sent = []

    def write_and_signal(path, image):
        if not sent:
            sent.append(path)
            os.kill(os.getpid(), signal.SIGTERM)  # handled by interrupts: deferred while saving
        return real(path, image)

    monkeypatch.setattr(restoration, "write_image", write_and_signal)
    code, _, err = cli(["denoise", str(image_file), "--out", str(tmp_path / "R"), "--steps", "3", *SMALL])
    assert code == 143 and "while saving" in err
    assert json.loads((tmp_path / "R" / "run.json").read_text())["status"] == "complete"
    assert interrupts.received() is not None


@pytest.mark.parametrize("threads", [1, 2])
def test_an_ensemble_interrupted_in_its_second_run_averages_only_finished_runs(tmp_path: Path, image_file: Path,
                                                                               threads: int) -> None:
    """In turn (1 thread): run 0 finished and is the result; run 2 never starts. At once (2
    threads: runs 0 and 1 together): the interrupt stops both, none finished, and the result is
    run 0's output so far."""
    from dipscope.fit import Callback
    from dipscope.cli.request import RestoreRequest, run as run_request

    class CtrlCInRun1(Callback):
        def observe(self, state) -> None:
            if state.seed == 1 and state.step == 10:
                raise KeyboardInterrupt

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        run = run_request(RestoreRequest(image=image_file, out=tmp_path / "E", steps=30, levels=3, device="cpu",
                                         runs=3), callbacks=[CtrlCInRun1()]).restoration
    finally:
        torch.set_num_threads(before)
    assert run.stopping["interrupted"] and run.stopping["runs_averaged"] == 1
    if threads == 1:
        assert len(run.results) == 2 and not run.results[0].interrupted and run.results[0].steps_done == 30
    else:
        assert len(run.results) == 3 and all(r.interrupted for r in run.results) and run.results[1].steps_done == 10
    assert (tmp_path / "E" / "denoised.png").read_bytes() == (tmp_path / "E" / "denoised-run-0.png").read_bytes()


def test_without_force_a_run_finished_meanwhile_is_never_replaced(tmp_path: Path) -> None:
    out = tmp_path / "R"
    first, second = RunWriter(out), RunWriter(out)  # both checked while R was still absent
    with first as tmp:
        (tmp / "run.json").write_text("{}")
        first.commit()
    with pytest.raises(DipscopeError, match="another process") as e:
        with second as tmp:
            (tmp / "mine.txt").write_text("x")
            second.commit()
    assert (out / "run.json").is_file() and not (out / "mine.txt").exists()
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("R.conflict-")]
    assert len(kept) == 1 and (kept[0] / "mine.txt").is_file() and kept[0].name in str(e.value)


def test_a_delayed_rule_that_fired_returns_the_ema_when_cut_short(textured_rgb: torch.Tensor) -> None:
    """Past the noise level (the rule's signal came) the raw output holds noise: the EMA is returned."""
    from dipscope.fit import FitConfig, fit
    from dipscope.models import SkipSpec
    from dipscope.stopping import EarlyStopping, Rule

    class FiresAt10(Rule):
        name = "fires-at-10"

        def reset(self, context) -> None:
            super().reset(context)
            self.fired_at = None

        def update(self, obs) -> bool:
            self.candidate = self.last_step = obs.step
            if obs.step >= 10 and self.fired_at is None:
                self.fired_at = obs.step
            return False  # it would stop at 10 + 1000

    stopper = EarlyStopping(FiresAt10(), textured_rgb, sigma=25 / 255)
    spec = SkipSpec(channels_down=(8,) * 3, channels_up=(8,) * 3, channels_skip=(2,) * 3)
    fit(spec, textured_rgb, FitConfig(steps=30, device="cpu", precision="fp32"), callbacks=[stopper])
    assert stopper.choice.step == 30 and stopper.choice.source == "ema" and "signal came at step 10" in stopper.choice.reason


# --- every command: usage errors, output folders, signals while renaming -----------------------

@pytest.mark.parametrize("argv, fragment", [
    (["denoise", "IMAGE", "--precision", "fp8"], "fp8"),
    (["denoise"], "IMAGE"),
    (["denoise", "IMAGE", "--steps", "abc"], "--steps"),
    (["experiment", "denoise-table", "IMAGE", "--precision", "fp8"], "fp8"),
    (["bench", "--sigmas"], "--sigmas"),
])
def test_parser_errors_are_one_error_line(tmp_path: Path, image_file: Path, cli, argv, fragment) -> None:
    """What the command-line parser refuses reads like every other user error: one line, status 2."""
    line = one_line_error(*cli([str(image_file) if a == "IMAGE" else a for a in argv])[::2], fragment)
    assert "--help" in line


def test_zero_steps_are_refused(tmp_path: Path, image_file: Path, cli) -> None:
    code, _, err = cli(["denoise", str(image_file), "--out", str(tmp_path / "o"), "--steps", "0", *SMALL])
    one_line_error(code, err, "--steps")
    assert not (tmp_path / "o").exists()


def test_bench_checks_its_files_and_options_before_timing(tmp_path: Path, cli) -> None:
    kept = tmp_path / "kept.md"
    kept.write_text("mine")
    (tmp_path / "folder").mkdir()
    for argv, fragment in [
        (["--results", str(tmp_path / "folder")], "is a folder"),
        (["--results", str(kept)], "--force"),
        (["--time-to-result", "--quick", "--crop", "5"], "--quick"),
        (["--sigmas", "15"], "--time-to-result"),
        (["--time-to-result", "--steps", "5"], "--steps"),
        (["--time-to-result", "--quick", "--parts", "original", "--out", str(kept)], "not a folder"),
    ]:
        code, out, err = cli(["bench", *argv])
        one_line_error(code, err, fragment)
        assert out == ""  # nothing was timed
    assert kept.read_text() == "mine"


def _table(image: Path, out: Path, *extra: str) -> list[str]:
    return ["experiment", "denoise-table", str(image), "--models", "dip", "--runs", "1", "--profile", "smoke",
            "--factor", "1", "--no-baselines", "--out", str(out), *extra]


def test_a_sweep_claims_only_a_new_or_empty_folder_or_its_own(tmp_path: Path, image_file: Path, cli) -> None:
    from dipscope.runs import SWEEP_MARK

    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "table.md").write_text("my notes")
    run = tmp_path / "run"
    assert cli(["denoise", str(image_file), "--out", str(run), "--steps", "2", *SMALL])[0] == 0
    before = {p: tree(p) for p in (folder, run)}
    nested = tmp_path / "nested"  # a user's folder that happens to hold a dipscope run
    nested.mkdir()
    (nested / "failures.txt").write_text("my notes")
    assert cli(["denoise", str(image_file), "--out", str(nested / "house"), "--steps", "2", *SMALL])[0] == 0
    before[nested] = tree(nested)
    for out, fragment in [(folder, "no dipscope sweep wrote"), (run, "one dipscope run"),
                          (nested, "no dipscope sweep wrote"), (tmp_path / "mine" / "table.md", "not a folder")]:
        code, _, err = cli(_table(image_file, out, "--device", "cpu"))
        one_line_error(code, err, fragment)
    assert {p: tree(p) for p in before} == before
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli(_table(image_file, empty, "--device", "cpu"))[0] == 0
    assert (empty / SWEEP_MARK).is_file() and (empty / "table.md").is_file()
    assert cli(_table(image_file, empty, "--device", "cpu"))[0] == 0  # its own folder: resumes


def test_a_folder_whose_mark_is_being_written_is_a_sweeps(tmp_path: Path) -> None:
    """Two sweeps started at once into one new folder: the second may look while the first
    writes its mark (a temporary file, then a rename); that folder is not a user's."""
    from dipscope.runs import SWEEP_MARK
    from dipscope.runs.sweep import check_sweep_folder

    out = tmp_path / "table"
    out.mkdir()
    (out / f".{SWEEP_MARK}.k2j4x.tmp").write_text("{")
    check_sweep_folder(out)  # no error
    (out / "table.md").write_text("my notes")
    with pytest.raises(DipscopeError, match="no dipscope sweep wrote"):
        check_sweep_folder(out)


def test_a_sweep_refuses_a_missing_device_and_a_too_small_image_before_writing(tmp_path: Path, cli) -> None:
    tiny = tmp_path / "tiny.png"
    write_image(tiny, torch.rand(3, 16, 16))
    for argv, fragment in [(_table(tiny, tmp_path / "a", "--device", "tpu"), "tpu"),
                           (_table(tiny, tmp_path / "b", "--device", "cpu", "--factor", "4"), "--factor")]:
        argv = [a for k, a in enumerate(argv) if not (a == "--factor" and argv[k + 1] == "1")
                and not (a == "1" and argv[k - 1] == "--factor")] if "4" in argv else argv
        code, _, err = cli(argv)
        one_line_error(code, err, fragment)
    if torch.cuda.is_available():
        return
    code, _, err = cli(_table(tiny, tmp_path / "c", "--device", "cuda"))
    one_line_error(code, err, "cuda")
    assert not any(tmp_path.glob("[abc]"))


def test_a_signal_during_a_commit_waits_for_the_renames(tmp_path: Path, monkeypatch) -> None:
    """SIGINT while a forced commit swaps the old run for the new: both renames are done (the new
    run in place, the old one gone), then the interrupt is raised."""
    from dipscope import interrupts
    from dipscope.runs import rundir

    out = tmp_path / "R"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"versions": {"dipscope": "0"}, "old": True}))
    real, calls = os.rename, []

    def rename_and_signal(a, b):
        calls.append((a, b))
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # between the two renames
        return real(a, b)

    previous = interrupts.install()
    try:
        writer = RunWriter(out, force=True)
        with writer as tmp:
            (tmp / "run.json").write_text(json.dumps({"versions": {"dipscope": "0"}, "old": False}))
            monkeypatch.setattr(rundir.os, "rename", rename_and_signal)
            with pytest.raises(KeyboardInterrupt):
                writer.commit()
    finally:
        monkeypatch.setattr(rundir.os, "rename", real)
        interrupts.restore(previous)
    assert len(calls) == 2 and json.loads((out / "run.json").read_text())["old"] is False
    assert not list(tmp_path.glob(".R.*"))


def test_a_run_moved_aside_by_a_killed_commit_is_put_back(tmp_path: Path) -> None:
    from dipscope.runs.rundir import replacing_note

    out = tmp_path / "R"
    aside = tmp_path / ".R.old-abc"  # a forced commit killed (SIGKILL) between its two renames
    aside.mkdir()
    (aside / "run.json").write_text('{"versions": {"dipscope": "0"}}')
    note = replacing_note(out)
    note.write_text(aside.name)
    os.utime(note, (time.time() - 60,) * 2)
    backup = tmp_path / ".R.old-backup"  # a user's folder of that name, not named by a note: left alone
    backup.mkdir()
    (backup / "data.txt").write_text("mine")
    os.utime(backup, (time.time() - 3600,) * 2)
    writer = RunWriter(out, force=True)
    assert writer.recovered == [aside] and (out / "run.json").is_file() and not aside.exists()
    assert not note.exists() and (backup / "data.txt").read_text() == "mine"
    leftover = tmp_path / ".R.old-def"  # killed after both renames: the replaced copy is left over
    leftover.mkdir()
    note.write_text(leftover.name)
    os.utime(note, (time.time() - 60,) * 2)
    assert RunWriter(out, force=True).recovered == [leftover] and not leftover.exists() and out.is_dir()
    assert RunWriter(out, force=True).recovered == [] and (backup / "data.txt").read_text() == "mine"


def test_a_failed_write_leaves_the_previous_file(tmp_path: Path) -> None:
    from dipscope.files import atomic_open, write_text

    path = tmp_path / "table.md"
    write_text(path, "complete table\n")
    with pytest.raises(RuntimeError):
        with atomic_open(path) as f:
            f.write("half a ta")
            raise RuntimeError("killed mid-write")
    assert path.read_text() == "complete table\n" and [p.name for p in tmp_path.iterdir()] == ["table.md"]


def test_deferrals_that_end_out_of_order_end_the_deferral() -> None:
    """Runs fitted at once save their results in their own threads, so one deferral can end
    before another that began after it; afterwards a signal must interrupt again."""
    from dipscope import interrupts

    first, second = interrupts.deferred(), interrupts.deferred()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    second.__exit__(None, None, None)
    previous = interrupts.install()
    try:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs in the main thread, between bytecodes
    finally:
        interrupts.restore(previous)


def test_a_warning_is_one_line(tmp_path: Path, cli) -> None:
    rgba = tmp_path / "rgba.png"
    write_image(rgba, torch.rand(3, 32, 32))
    from PIL import Image

    Image.open(rgba).convert("RGBA").save(rgba)
    code, _, err = cli(["denoise", str(rgba), "--out", str(tmp_path / "o"), "--steps", "1", *SMALL])
    warned = [line for line in err.splitlines() if "alpha" in line]
    assert code == 0 and len(warned) == 1 and warned[0].startswith("warning: "), err


def test_a_rewritten_file_keeps_its_permissions_and_a_link_is_written_through(tmp_path: Path) -> None:
    from dipscope.files import write_text

    private = tmp_path / "private.md"
    private.write_text("old")
    private.chmod(0o600)
    write_text(private, "new")
    assert private.read_text() == "new" and private.stat().st_mode & 0o777 == 0o600
    real, link = tmp_path / "real.md", tmp_path / "link.md"
    real.write_text("old")
    link.symlink_to(real)
    write_text(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
