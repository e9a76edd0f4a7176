"""Executors (issue 9): the local and Ray executors behind run_tasks.

The Ray tests share one local Ray instance (``ray.init(num_cpus=2)``) started by a
module-scoped fixture, so no other test pays for Ray's start-up.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dipscope.cli import main
from dipscope.errors import DipscopeError
from dipscope.experiments import denoise_table as dt
from dipscope.images import write_image
from dipscope.runs import Task, run_tasks
from dipscope.runs import ExecutorOptions, TasksFailed

MODELS = "dip,linear-128,relunet"


# --- tasks for the failure/resume tests (module level: Ray ships them to its workers) --------

def _write(directory: Path, value: Any) -> dict[str, Any]:
    (directory / "value.txt").write_text(str(value))
    return {"value": value, "threads": torch.get_num_threads()}


def _ok(value: int):
    return lambda directory: _write(directory, value)


def _flaky(marker: Path, value: int):
    """Fails the first time (leaves a marker), succeeds the second."""
    def work(directory: Path) -> dict[str, Any]:
        if not marker.exists():
            (directory / "half-written.txt").write_text("x")
            marker.write_text("failed once")
            raise RuntimeError("flaky: first attempt fails")
        return _write(directory, value)
    return work


def _broken(counter: Path):
    def work(directory: Path) -> dict[str, Any]:
        with open(counter, "a") as f:
            f.write("attempt\n")
        (directory / "half-written.txt").write_text("x")
        raise ValueError("broken task")
    return work


def _tasks(tmp: Path, broken: bool = True) -> list[Task]:
    tasks = [Task("a/ok-0", _ok(0), {"i": 0}), Task("a/flaky", _flaky(tmp / "marker", 1), {"i": 1})]
    if broken:
        tasks.append(Task("b/broken", _broken(tmp / "attempts.txt"), {"i": 2}))
    return tasks + [Task("b/ok-3", _ok(3), {"i": 3})]


def _no_partials(out: Path) -> None:
    assert not [p for p in out.rglob(".*") if ".partial-" in p.name or ".old-" in p.name]


def _check_failure_and_resume(tmp_path: Path, executor: ExecutorOptions, capsys) -> None:
    out = tmp_path / "out"
    with pytest.raises(TasksFailed) as e:
        run_tasks(_tasks(tmp_path), out, executor=executor)
    assert [f.key for f in e.value.failures] == ["b/broken"]
    assert "1 of 4 tasks failed" in str(e.value) and "ValueError: broken task" in str(e.value)
    assert (tmp_path / "attempts.txt").read_text().count("attempt") == executor.retries + 1
    assert "broken task" in (out / "failures.txt").read_text()
    for key, value in [("a/ok-0", 0), ("a/flaky", 1), ("b/ok-3", 3)]:  # the others finished
        assert (out / key / "value.txt").read_text() == str(value) and (out / key / "run.json").is_file()
        assert not (out / key / "half-written.txt").exists()
    assert not (out / "b" / "broken").exists()
    _no_partials(out)
    printed = capsys.readouterr().out
    assert "attempt 1 failed (RuntimeError: flaky" in printed and "FAILED after 2 attempt(s)" in printed
    assert "[3/4] " in printed and "(1 failed, 0 remaining" in printed
    # Re-running skips the finished tasks and runs only the failed one (now fixed).
    fixed = [t for t in _tasks(tmp_path, broken=False)] + [Task("b/broken", _ok(2), {"i": 2})]
    summaries = run_tasks(fixed, out, executor=executor)
    assert {k: s["value"] for k, s in summaries.items()} == {"a/ok-0": 0, "a/flaky": 1, "b/ok-3": 3, "b/broken": 2}
    printed = capsys.readouterr().out
    assert printed.count("skipped") == 3 and "[4/4] b/broken: finished (0 failed, 0 remaining" in printed
    assert not (out / "failures.txt").exists()
    record = json.loads((out / "b" / "broken" / "run.json").read_text())
    assert record["executor"]["name"] == executor.name and record["command"] == sys.argv


# --- local executor (no Ray) ------------------------------------------------------------------

def test_local_retries_reports_and_resumes(tmp_path: Path, capsys) -> None:
    _check_failure_and_resume(tmp_path, ExecutorOptions(retries=1), capsys)


def test_local_sets_the_thread_count_and_calls_the_hook(tmp_path: Path) -> None:
    before = torch.get_num_threads()
    seen = []
    summaries = run_tasks([Task("x", _ok(5), {}), Task("y", _ok(6), {})], tmp_path / "out", progress=lambda m: None,
                          executor=ExecutorOptions(threads=1), on_done=lambda key, s: seen.append(key))
    assert seen == ["x", "y"] and all(s["threads"] == 1 for s in summaries.values())
    assert torch.get_num_threads() == before  # restored after the tasks


def test_local_ctrl_c_stops_scheduling_and_leaves_no_partial_run(tmp_path: Path, capsys) -> None:
    def interrupted(directory: Path) -> dict[str, Any]:
        (directory / "half-written.txt").write_text("x")
        raise KeyboardInterrupt

    out = tmp_path / "out"
    tasks = [Task("first", _ok(1), {}), Task("second", interrupted, {}), Task("third", _ok(3), {})]
    with pytest.raises(KeyboardInterrupt):
        run_tasks(tasks, out, executor=ExecutorOptions(retries=3))
    assert (out / "first" / "run.json").is_file()
    assert not (out / "second").exists() and not (out / "third").exists()  # not retried, not scheduled
    _no_partials(out)
    assert "interrupted: 1 finished, 0 failed, 1 cancelled or not started" in capsys.readouterr().out


def test_a_finished_run_with_other_settings_is_refused_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_tasks([Task("x", _ok(1), {"a": 1})], out, progress=lambda m: None)
    with pytest.raises(DipscopeError, match="other settings"):
        run_tasks([Task("y", _broken(tmp_path / "n"), {}), Task("x", _ok(1), {"a": 2})], out, progress=lambda m: None)
    assert not (tmp_path / "n").exists()


def test_cli_executor_errors_are_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    image = tmp_path / "x.png"
    write_image(image, torch.rand(3, 16, 16))
    base = ["experiment", "denoise-table", str(image), "--out", str(tmp_path / "o"), "--profile", "smoke"]
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    for args, match in [(["--executor", "ray"], "pip install 'dipscope[ray]'"), (["--retries", "-1"], "--retries"),
                        (["--executor", "ray", "--cpus-per-task", "0"], "--cpus-per-task")]:
        with pytest.raises(SystemExit) as e:
            main(base + args)
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and match in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()  # nothing ran


# --- Ray ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'dipscope[ray]')")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network in tests
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test file
    yield ray
    ray.shutdown()


def _image(tmp_path: Path, textured_rgb: torch.Tensor) -> str:
    path = tmp_path / "house.png"
    write_image(path, textured_rgb[:, :32, :32])  # tiny: the smoke profile in seconds
    return str(path)


def _table(out: Path) -> list[dict[str, str]]:
    with open(out / "table.csv") as f:
        return [{k: v for k, v in r.items() if k != "seconds_per_run"} for r in csv.DictReader(f)]


def _same_run(a: Path, b: Path) -> None:
    files = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    sa, sb = (json.loads((d / "run.json").read_text())["summary"] for d in (a, b))
    for key in ("best_psnr", "best_step", "final_psnr", "ema_psnr", "noisy_psnr", "steps"):
        assert sa[key] == (sb[key] if sb[key] is None else pytest.approx(sb[key], rel=1e-6, abs=0)), key
    ca, cb = (np.genfromtxt(d / "curve.csv", delimiter=",", names=True) for d in (a, b))
    for name in ca.dtype.names:
        np.testing.assert_allclose(ca[name], cb[name], rtol=1e-6)


def test_ray_table_equals_local_and_resumes(tmp_path: Path, textured_rgb: torch.Tensor, ray_cluster, capsys) -> None:
    """The smoke table on a local Ray cluster, through the CLI (shared storage) and with driver
    storage, gives the local executor's numbers and files; re-running skips every run."""
    image = _image(tmp_path, textured_rgb)
    cfg = dt.TableConfig(images=[image], models=MODELS.split(","), runs=1, factor=1, profile="smoke", device="cpu",
                         baselines=False)  # CBM3D (when installed) is not bitwise repeatable
    dt.run(cfg, tmp_path / "local", executor=ExecutorOptions(threads=1))
    cli = ["experiment", "denoise-table", image, "--models", MODELS, "--runs", "1", "--factor", "1",
           "--profile", "smoke", "--device", "cpu", "--threads", "1", "--no-baselines"]
    main(cli + ["--out", str(tmp_path / "shared"), "--executor", "ray"])
    dt.run(cfg, tmp_path / "driver", executor=ExecutorOptions(name="ray", threads=1, storage="driver"))
    printed = capsys.readouterr().out
    assert "3 of 3 runs finished" in printed
    for model in MODELS.split(","):
        key = f"{model}/house/run-0"
        for other in ("shared", "driver"):
            _same_run(tmp_path / "local" / key, tmp_path / other / key)
        record = json.loads((tmp_path / "driver" / key / "run.json").read_text())
        assert record["executor"] | {"host": "", "pid": 0} == {"name": "ray", "storage": "driver", "cpus_per_task": 1.0,
                                                               "gpus_per_task": 0.0, "threads": 1, "host": "", "pid": 0,
                                                               "device": "cpu"}
        assert record["executor"]["pid"] != os.getpid()  # it really ran in a Ray worker
    assert _table(tmp_path / "local") == _table(tmp_path / "shared") == _table(tmp_path / "driver")
    _no_partials(tmp_path)
    main(cli + ["--out", str(tmp_path / "shared"), "--executor", "ray"])  # resume: nothing left to run
    assert capsys.readouterr().out.count("done already, skipped") == 3


@pytest.mark.parametrize("storage", ["shared", "driver"])
def test_ray_retries_reports_and_resumes(tmp_path: Path, ray_cluster, capsys, storage: str) -> None:
    _check_failure_and_resume(tmp_path, ExecutorOptions(name="ray", retries=1, threads=1, storage=storage), capsys)


def _slow(directory: Path) -> dict[str, Any]:
    import time

    (directory / "half-written.txt").write_text("x")
    for _ in range(600):
        time.sleep(0.1)
    return {"value": "slow"}


def test_ray_ctrl_c_cancels_queued_and_running_tasks(tmp_path: Path, ray_cluster, capsys) -> None:
    """Ctrl-C (here raised by the per-task hook once the first task finishes) cancels the task
    that is running and the one still queued; neither leaves a run directory."""
    import time

    def interrupt(key: str, summary: dict[str, Any]) -> None:
        raise KeyboardInterrupt

    out = tmp_path / "out"
    tasks = [Task("slow-1", _slow, {}), Task("quick", _ok(1), {}), Task("slow-2", _slow, {})]
    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        run_tasks(tasks, out, executor=ExecutorOptions(name="ray", threads=1), on_done=interrupt)
    assert time.perf_counter() - start < 40
    assert (out / "quick" / "run.json").is_file()
    assert not (out / "slow-1").exists() and not (out / "slow-2").exists()
    _no_partials(out)
    assert "interrupted: 1 finished, 0 failed, 2 cancelled or not started" in capsys.readouterr().out


def _stubborn(directory: Path) -> dict[str, Any]:
    import time

    (directory / "half-written.txt").write_text("x")
    for _ in range(600):
        try:
            time.sleep(0.1)
        except KeyboardInterrupt:  # a task that never sees (or ignores) the cancel
            pass
    return {"value": "stubborn"}


def test_ray_ctrl_c_kills_a_task_that_ignores_the_cancel(tmp_path: Path, ray_cluster, capsys, monkeypatch) -> None:
    """A running task that does not stop on the interrupt is killed after the grace period, and
    the driver removes the partial directory it could not remove itself."""
    import time

    from dipscope.runs.executors import RayExecutor

    def interrupt(key: str, summary: dict[str, Any]) -> None:
        time.sleep(1.0)  # let the stubborn task create its partial directory
        raise KeyboardInterrupt

    monkeypatch.setattr(RayExecutor, "GRACE_S", 1.0)
    out = tmp_path / "out"
    tasks = [Task("stubborn", _stubborn, {}), Task("quick", _ok(1), {})]
    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        run_tasks(tasks, out, executor=ExecutorOptions(name="ray", threads=1), on_done=interrupt)
    assert time.perf_counter() - start < 30
    assert (out / "quick" / "run.json").is_file() and not (out / "stubborn").exists()
    _no_partials(out)
