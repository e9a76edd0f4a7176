"""More of the guarantees of ``docs/reliability.md``: no stop signal is swallowed, ``--force``
never removes an input, a sweep never mixes two images, the Python API refuses tensors it cannot
fit, and odd paths (mount points, links, FIFOs, long names, full disks) give one ``error:`` line.
Signals are sent to a real subprocess, or by a callback or patched function to the test process
itself with the handlers of :mod:`dipscope.interrupts` installed, which reproduces them every time."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dipscope.errors import DipscopeError
from dipscope.images import write_image
from dipscope.runs import Task, run_tasks
from dipscope.runs.rundir import RunWriter

SMALL = ["--levels", "3", "--device", "cpu"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


@pytest.fixture()
def image_file(tmp_path: Path, textured_rgb: torch.Tensor) -> Path:
    path = tmp_path / "I.png"
    write_image(path, textured_rgb)
    return path


@pytest.fixture()
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # runs fitted in turn
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def handlers():
    """The command line's signal handlers, installed in this process for the test."""
    from dipscope import interrupts

    previous = interrupts.install()
    yield interrupts
    interrupts.restore(previous)


def one_error_line(code: int, err: str, *fragments: str, status: int = 2) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == status and len(lines) == 1 and lines[0].startswith("error:"), (code, err)
    for fragment in fragments:
        assert fragment in lines[0], err
    return lines[0]


def _value(directory: Path) -> dict:
    (directory / "v.txt").write_text("1")
    return {"v": 1}


# --- no signal is swallowed ------------------------------------------------------------------

def test_a_signal_while_a_run_is_saved_stops_the_next_runs(tmp_path: Path, image_file: Path, one_thread,
                                                           handlers) -> None:
    """A signal during ``on_end`` (inside the deferral that saves run 0) used to be recorded and
    never raised: runs 1 and 2 were fitted and the run said complete."""
    from dipscope import Callback
    from dipscope.cli.request import RestoreRequest, run as run_request

    class SignalAtEnd(Callback):
        def on_end(self, state) -> None:
            if state.seed == 0:
                os.kill(os.getpid(), signal.SIGINT)

    saved = run_request(RestoreRequest(image=image_file, out=tmp_path / "E", steps=5, levels=3, device="cpu", runs=3),
                        callbacks=[SignalAtEnd()])
    run = saved.restoration
    assert len(run.results) == 1 and not run.results[0].interrupted
    assert run.stopping["interrupted"] and run.stopping["runs_averaged"] == 1
    assert json.loads((saved.out / "run.json").read_text())["status"] == "interrupted"
    assert handlers.received() == signal.SIGINT


def test_a_signal_while_a_task_is_saved_stops_the_sweep(tmp_path: Path, handlers) -> None:
    """The finished task is kept, the next one never starts, and the sweep ends as interrupted."""
    ran: list[str] = []

    def saving_when_signalled(directory: Path) -> dict:
        ran.append(directory.name)
        with handlers.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)  # the handler runs, and records the signal
        return _value(directory)

    tasks = [Task(key, saving_when_signalled, {}) for key in ("a", "b", "c")]
    with pytest.raises(KeyboardInterrupt):
        run_tasks(tasks, tmp_path / "out", progress=lambda m: None)
    assert len(ran) == 1 and json.loads((tmp_path / "out" / "a" / "run.json").read_text())["summary"] == {"v": 1}
    assert not (tmp_path / "out" / "b").exists()


def test_a_signal_while_the_next_run_is_built_keeps_the_finished_runs(tmp_path: Path, image_file: Path, one_thread,
                                                                      handlers, monkeypatch) -> None:
    from dipscope.cli.request import RestoreRequest, run as run_request
    from dipscope.fit import loop

    real, calls = loop.check_inputs, []

    def check_and_signal(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # building run 1
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "check_inputs", check_and_signal)
    saved = run_request(RestoreRequest(image=image_file, out=tmp_path / "E", steps=5, levels=3, device="cpu", runs=3))
    assert len(saved.restoration.results) == 1 and saved.restoration.stopping["interrupted"]
    assert json.loads((saved.out / "run.json").read_text())["stopping"]["runs_averaged"] == 1


def test_sigterm_during_many_short_runs_exits_143_and_keeps_them(tmp_path: Path, image_file: Path) -> None:
    out = tmp_path / "R"
    argv = [sys.executable, "-m", "dipscope.cli", "denoise", str(image_file), "--out", str(out), "--steps", "5",
            "--runs", "1000", *SMALL]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("fitting"):
            break
    time.sleep(3.0)
    proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and time.monotonic() - t0 < 30, err
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "interrupted" and 1 <= record["stopping"]["runs_averaged"] < 1000


# --- nothing the user has is lost --------------------------------------------------------------

def test_force_never_replaces_a_run_that_holds_its_input(tmp_path: Path, image_file: Path, cli) -> None:
    out = tmp_path / "run1"
    assert cli(["denoise", str(image_file), "--out", str(out), "--steps", "2", *SMALL])[0] == 0
    photo = out / "photo.png"
    photo.write_bytes(image_file.read_bytes())
    code, _, err = cli(["denoise", str(photo), "--out", str(out), "--force", "--steps", "2", *SMALL])
    one_error_line(code, err, "photo.png", "input")
    assert photo.read_bytes() == image_file.read_bytes()


def test_a_sweep_mark_that_is_not_ours_is_not_trusted(tmp_path: Path) -> None:
    from dipscope.runs import check_sweep_folder

    user = tmp_path / "U"
    user.mkdir()
    (user / "table.md").write_text("mine")
    (user / ".dipscope-sweep").touch()
    with pytest.raises(DipscopeError, match="no dipscope sweep wrote"):
        check_sweep_folder(user)
    with pytest.raises(DipscopeError):
        run_tasks([Task("a", _value, {})], user, progress=lambda m: None)
    assert (user / "table.md").read_text() == "mine" and not (user / "a").exists()


def test_a_sweep_never_reuses_a_run_made_from_another_image(tmp_path: Path) -> None:
    from dipscope.runs import tensor_digest

    first, second = torch.zeros(1, 8, 8), torch.ones(1, 8, 8)
    run_tasks([Task("a", _value, {"image": "x"}, inputs={"image": tensor_digest(first)})], tmp_path / "o",
              progress=lambda m: None)
    with pytest.raises(DipscopeError, match="made from another x"):
        run_tasks([Task("a", _value, {"image": "x"}, inputs={"image": tensor_digest(second)})], tmp_path / "o",
                  progress=lambda m: None)
    said: list[str] = []
    run_tasks([Task("a", _value, {"image": "x"}, inputs={"image": tensor_digest(first.clone())})], tmp_path / "o",
              progress=said.append)
    assert any("done already" in m for m in said)


def test_a_table_rerun_on_a_replaced_image_is_refused(tmp_path: Path, textured_rgb: torch.Tensor, cli) -> None:
    image = tmp_path / "A" / "x.png"
    image.parent.mkdir()
    write_image(image, textured_rgb)
    base = ["experiment", "denoise-table", str(image), "--models", "dip", "--runs", "1", "--profile", "smoke",
            "--factor", "1", "--device", "cpu", "--out", str(tmp_path / "X")]
    assert cli(base)[0] == 0
    write_image(image, textured_rgb.flip(-1))  # another image, same name and size
    code, _, err = cli(base)
    one_error_line(code, err, "made from another x")


# --- wrong results refused -------------------------------------------------------------------

def test_inpainting_with_every_value_dropped_is_refused(tmp_path: Path, image_file: Path, cli) -> None:
    code, _, err = cli(["restore", str(image_file), "--task", "inpaint", "--drop", "0.9999", "--out",
                        str(tmp_path / "o"), "--steps", "2", *SMALL])
    one_error_line(code, err, "none known")
    assert "fitting" not in err and not (tmp_path / "o").exists()


@pytest.mark.parametrize("make, name, fragment", [
    (lambda t: t.clone().index_put_((torch.tensor([0]),), torch.tensor(float("nan"))), "target", "NaN or infinite"),
    (lambda t: t.clone().fill_(float("inf")), "target", "NaN or infinite"),
    (lambda t: t * 255, "target", "divide them by 255"),
    (lambda t: (t * 255).to(torch.uint8), "target", "uint8"),
    (lambda t: t.permute(1, 2, 0).contiguous(), "target", "(H, W, C)"),
])
def test_fit_refuses_a_target_it_cannot_fit(textured_rgb: torch.Tensor, make, name, fragment) -> None:
    from dipscope import FitConfig, SkipSpec
    from dipscope.fit import fit

    spec = SkipSpec(channels_down=(8,) * 3, channels_up=(8,) * 3, channels_skip=(2,) * 3)
    with pytest.raises(DipscopeError) as error:
        fit(spec, make(textured_rgb[:, :32, :32]), FitConfig(steps=2, device="cpu"))
    assert name in str(error.value) and fragment in str(error.value) and "--" not in str(error.value)


def test_fit_refuses_a_clean_image_with_nan(textured_rgb: torch.Tensor) -> None:
    from dipscope import FitConfig, SkipSpec
    from dipscope.fit import fit

    clean = textured_rgb[:, :32, :32].clone()
    clean[0, 0, 0] = float("nan")
    with pytest.raises(DipscopeError, match="clean holds 1 NaN"):
        fit(SkipSpec(channels_down=(8,) * 3, channels_up=(8,) * 3, channels_skip=(2,) * 3), textured_rgb[:, :32, :32], FitConfig(steps=2, device="cpu"), clean=clean)


# --- one error line, not a traceback ------------------------------------------------------------

def test_a_full_disk_is_one_error_line(tmp_path: Path, image_file: Path, cli, monkeypatch) -> None:
    from dipscope import files

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.tempfile, "mkstemp", no_space)
    code, _, err = cli(["denoise", str(image_file), "--out", str(tmp_path / "o"), "--steps", "2", *SMALL])
    lines = [line for line in err.splitlines() if line.startswith(("error", "Traceback"))]
    assert code == 2 and len(lines) == 1 and "No space left" in lines[0] and "free some space" in lines[0], err
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.partial-*"))


def test_a_mount_point_is_refused_before_the_fit(tmp_path: Path, image_file: Path, cli, monkeypatch) -> None:
    from dipscope.runs import rundir

    volume = tmp_path / "volume"
    volume.mkdir()
    monkeypatch.setattr(rundir.os.path, "ismount", lambda p: Path(p) == volume)
    code, _, err = cli(["denoise", str(image_file), "--out", str(volume), "--steps", "2", *SMALL])
    one_error_line(code, err, "mount point", str(volume / "run"))
    assert "fitting" not in err


def test_a_huge_step_budget_allocates_nothing_up_front(textured_rgb: torch.Tensor, monkeypatch) -> None:
    from dipscope import Callback, FitConfig, SkipSpec
    from dipscope.fit import fit, loop

    monkeypatch.setattr(loop.GroupFit, "loss_chunk", 8)  # the first buffer, small here, must grow

    class StopAt(Callback):
        def observe(self, state) -> bool:
            return state.step >= 40

    result = fit(SkipSpec(channels_down=(4, 4), channels_up=(4, 4), channels_skip=(1, 1)),
                 textured_rgb[:, :16, :16], FitConfig(steps=10**12, device="cpu", observe_every=10),
                 callbacks=[StopAt()], ssim=False)
    assert result.steps_done == 40 and len(result.losses) == 40 and bool((result.losses > 0).all())


def test_from_dipscope_import_restore_is_the_function() -> None:
    code = ("import dipscope.restoration, dipscope\n"
            "from dipscope import restore, denoise\n"
            "assert callable(restore) and dipscope.restore is restore and callable(denoise), restore\n"
            "assert dipscope.restoration.restore is restore\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    assert proc.returncode == 0, proc.stderr


def test_a_request_takes_paths_as_strings(tmp_path: Path, image_file: Path) -> None:
    from dipscope.cli.request import RestoreRequest, run as run_request

    saved = run_request(RestoreRequest(image=str(image_file), out=str(tmp_path / "o"), steps=2, levels=3,
                                       device="cpu", runs=1))
    assert saved.out == tmp_path / "o" and (saved.out / "run.json").is_file()


def test_fetching_into_a_file_is_one_error_line(tmp_path: Path, cli) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    code, _, err = cli(["data", "fetch", "triangle", "--to", str(afile)])
    one_error_line(code, err, "is a file")
    assert afile.read_text() == "x"


def test_ctrl_c_while_torch_is_imported_exits_130_quietly(tmp_path: Path, image_file: Path) -> None:
    code = ("import os, runpy, signal, sys\n"
            "class CtrlCAtTorch:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'torch':\n"
            "            os.kill(os.getpid(), signal.SIGINT)\n"
            "        return None\n"
            "sys.meta_path.insert(0, CtrlCAtTorch())\n"
            f"sys.argv = ['dipscope', 'denoise', {str(image_file)!r}, '--out', {str(tmp_path / 'o')!r}]\n"
            "runpy.run_module('dipscope.cli', run_name='__main__')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 130 and "Traceback" not in proc.stderr and "aborted by SIGINT" in proc.stderr, proc.stderr


# --- links, pipes, long names, concurrent writers -------------------------------------------------

@pytest.mark.parametrize("target_exists", [False, True])
def test_out_a_symlink_writes_where_it_points(tmp_path: Path, image_file: Path, cli, target_exists: bool) -> None:
    target, link = tmp_path / "real", tmp_path / "lnk"
    if target_exists:
        target.mkdir()  # empty
    link.symlink_to(target)
    code, _, err = cli(["denoise", str(image_file), "--out", str(link), "--steps", "2", *SMALL])
    assert code == 0, err
    assert link.is_symlink() and (target / "run.json").is_file()


def test_force_through_a_symlink_keeps_the_link_and_leaves_nothing(tmp_path: Path, image_file: Path, cli) -> None:
    target, link = tmp_path / "R", tmp_path / "lnk"
    assert cli(["denoise", str(image_file), "--out", str(target), "--steps", "2", *SMALL])[0] == 0
    link.symlink_to(target)
    before = json.loads((target / "run.json").read_text())["created"]
    time.sleep(1.1)
    code, _, err = cli(["denoise", str(image_file), "--out", str(link), "--steps", "2", "--force", *SMALL])
    assert code == 0, err
    assert link.is_symlink() and json.loads((target / "run.json").read_text())["created"] != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["I.png", "R", "lnk"]


def test_an_empty_aside_left_by_a_killed_commit_is_removed(tmp_path: Path) -> None:
    out = tmp_path / "R"
    out.mkdir()
    (out / "run.json").write_text('{"versions": {"dipscope": "0"}}')
    empty = tmp_path / ".R.old-killed"  # a name reserved by a commit killed before its renames
    empty.mkdir()
    os.utime(empty, (time.time() - 60,) * 2)
    RunWriter(out, force=True)
    assert not empty.exists() and out.is_dir()


def test_a_fifo_is_refused_not_read(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    proc = subprocess.run([sys.executable, "-m", "dipscope.cli", "denoise", str(fifo), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, env=ENV, timeout=120)
    one_error_line(proc.returncode, proc.stderr, "not a regular file")


def test_two_interrupted_runs_beside_one_finished_run_both_keep_their_outputs(tmp_path: Path) -> None:
    """Two ``--force`` runs interrupted at once both write beside the finished run; the second
    must take the next free name, not report a conflict."""
    out = tmp_path / "R"
    out.mkdir()
    (out / "run.json").write_text('{"versions": {"dipscope": "0"}}')
    for _ in range(3):  # the two names are made within one second
        first, second = RunWriter(out, force=True).beside("interrupted"), RunWriter(out, force=True).beside("interrupted")
        if first.out == second.out:
            break
    kept = []
    for writer in (first, second):
        with writer as tmp:
            (tmp / "run.json").write_text("{}")
            kept.append(writer.commit())
    assert kept[0] != kept[1] and all((k / "run.json").is_file() for k in kept)


def test_a_long_out_name_keeps_interrupted_outputs_beside_it(tmp_path: Path) -> None:
    for length in (236, 250, 255):
        out = tmp_path / ("r" * length)
        writer = RunWriter(out)  # a legal name is accepted
        with writer as tmp:
            (tmp / "run.json").write_text('{"versions": {"dipscope": "0"}}')
            writer.commit()
        beside = RunWriter(out, force=True).beside("interrupted")
        with beside as tmp:
            (tmp / "run.json").write_text("{}")
            kept = beside.commit()
        assert kept.is_dir() and kept != out and len(kept.name.encode()) <= 255


def test_a_diverging_fit_is_reported(tmp_path: Path, image_file: Path, cli) -> None:
    code, _, err = cli(["denoise", str(image_file), "--out", str(tmp_path / "o"), "--steps", "5", "--lr", "1e300",
                        *SMALL])
    lines = [line for line in err.splitlines() if line.startswith(("error", "Traceback"))]
    assert code == 2 and len(lines) == 1 and "diverged" in lines[0] and "smaller lr" in lines[0], err


def test_experiments_refuse_a_too_small_image_before_any_fit(tmp_path: Path, textured_rgb: torch.Tensor,
                                                            cli) -> None:
    small = tmp_path / "s16.png"
    write_image(small, textured_rgb[:, :16, :16])
    for experiment, extra in (("bias", ["--model", "linear-16", "--model", "relunet"]), ("bias", []),
                              ("lowfreq-noise", [])):
        out = tmp_path / f"{experiment}-{len(extra)}"
        code, _, err = cli(["experiment", experiment, str(small), "--profile", "smoke", "--device", "cpu",
                            "--out", str(out), *extra])
        one_error_line(code, err, "s16")
        assert not out.exists()


# --- messages that say what is wrong --------------------------------------------------------------

def test_a_grey_clean_for_a_colour_image_says_so(tmp_path: Path, image_file: Path, textured_grey: torch.Tensor,
                                                 cli) -> None:
    grey = tmp_path / "g.png"
    write_image(grey, textured_grey)
    code, _, err = cli(["denoise", str(image_file), "--noisy", "--clean", str(grey), "--out", str(tmp_path / "o"),
                        *SMALL])
    one_error_line(code, err, "64×64 grey", "64×64 RGB")


def test_a_zero_one_mask_is_named_as_such(tmp_path: Path, image_file: Path, cli) -> None:
    mask = tmp_path / "m.png"
    values = torch.zeros(1, 64, 64)
    values[:, ::2] = 1 / 255  # saved as 0 and 1
    write_image(mask, values)
    code, _, err = cli(["restore", str(image_file), "--task", "inpaint", "--mask", str(mask), "--out",
                        str(tmp_path / "o"), *SMALL])
    one_error_line(code, err, "1 of 255", "0/255")


def test_out_under_a_file_names_the_file(tmp_path: Path, image_file: Path, cli) -> None:
    (tmp_path / "afile").write_text("x")
    code, _, err = cli(["denoise", str(image_file), "--out", str(tmp_path / "afile" / "run"), *SMALL])
    one_error_line(code, err, "afile is a file")


def test_an_os_error_at_the_end_is_one_error_line(tmp_path: Path, image_file: Path, cli, monkeypatch) -> None:
    """A rename the system refuses (EBUSY: a volume) is reported in one line, not a traceback."""
    from dipscope.runs import rundir

    def busy(a, b):
        raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), str(b))

    monkeypatch.setattr(rundir.os, "rename", busy)
    code, _, err = cli(["denoise", str(image_file), "--out", str(tmp_path / "o"), "--steps", "2", *SMALL])
    lines = [line for line in err.splitlines() if line.startswith(("error", "Traceback"))]
    assert code == 2 and len(lines) == 1 and "busy" in lines[0] and str(tmp_path / "o") in lines[0], err
    assert not list(tmp_path.glob(".o.partial-*"))


def test_a_task_refused_by_its_own_data_is_not_retried(tmp_path: Path) -> None:
    from dipscope.runs import ExecutorOptions, TasksFailed

    attempts: list[int] = []

    def refused(directory: Path) -> dict:
        attempts.append(1)
        raise DipscopeError("the band holds only the DC term")

    with pytest.raises(TasksFailed):
        run_tasks([Task("a", refused, {})], tmp_path / "o", executor=ExecutorOptions(retries=3),
                  progress=lambda m: None)
    assert len(attempts) == 1
