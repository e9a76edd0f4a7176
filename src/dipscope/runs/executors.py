"""Executors: who runs an experiment's independent tasks.

An experiment expands into :class:`~dipscope.runs.task.Task` objects (one run
directory each); :func:`~dipscope.runs.sweep.run_tasks` skips the finished ones and
hands the rest to an executor:

* ``local`` (default) — in this process, one task after the other;
* ``ray`` — each task is a Ray task asking for ``cpus_per_task`` CPUs and ``gpus_per_task``
  GPUs, on a local Ray instance or the cluster at ``ray_address``. With ``storage="shared"``
  the task writes its run directory itself (the results directory must be visible on every
  node: NFS, Lustre, a Kubernetes volume); with ``storage="driver"`` it writes into a scratch
  directory on its node and returns the files, and the driver writes them.

Both run every task through :func:`execute`, which sets torch's thread count explicitly
(``threads``), so a task gives the same numbers under either executor. A run directory is
always written atomically (:class:`~dipscope.rundir.RunWriter`). A task that raises is
retried up to ``retries`` times (driver-side, the same for both executors) and then reported,
while the other tasks finish. Ray is an optional dependency: ``pip install 'dipscope[ray]'``.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DipscopeError
from .rundir import (
    RUN_FILE,
    RunWriter,
    discard_partials,
    is_complete,
    run_record,
    write_json,
)
from .task import Task

EXECUTORS = ("local", "ray")
STORAGES = ("shared", "driver")
RAY_MISSING = ("--executor ray needs Ray, which is not installed here; install it with "
               "pip install 'dipscope[ray]' (or pip install ray)")


@dataclass
class ExecutorOptions:
    """How to run an experiment's tasks (the ``--executor …`` command-line options).

    ``threads``: torch threads in every task; ``None`` = ``cpus_per_task`` rounded up (1 by
    default) under either executor, so that the same command gives the same numbers whichever
    executor runs it (CPU results depend on the thread count). Every run records it.
    """

    name: str = "local"
    retries: int = 1
    threads: int | None = None
    ray_address: str | None = None
    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0
    storage: str = "shared"
    init_kwargs: dict[str, Any] = field(default_factory=dict)  # extra ray.init arguments (tests)

    def validate(self) -> None:
        if self.name not in EXECUTORS:
            raise DipscopeError(f"unknown executor {self.name!r}; choose one of {', '.join(EXECUTORS)}")
        if self.storage not in STORAGES:
            raise DipscopeError(f"unknown --ray-storage {self.storage!r}; choose one of {', '.join(STORAGES)}")
        if self.retries < 0:
            raise DipscopeError("--retries must be ≥ 0")
        if self.threads is not None and self.threads < 1:
            raise DipscopeError("--threads must be ≥ 1")
        if self.cpus_per_task <= 0:
            raise DipscopeError("--cpus-per-task must be > 0")
        if self.gpus_per_task < 0:
            raise DipscopeError("--gpus-per-task must be ≥ 0")

    def check(self) -> None:
        """:meth:`validate`, and fail now (one clear line) if Ray is asked for but not installed."""
        self.validate()
        if self.name == "ray":
            _ray()

    def resolved_threads(self) -> int:
        if self.threads is not None:
            return self.threads
        return max(1, math.ceil(self.cpus_per_task))


# --- one task, wherever it runs --------------------------------------------------------------

def _fill(task: Task, directory: Path, command: list[str], info: dict[str, Any]) -> dict[str, Any]:
    import torch

    summary = task.work(directory)
    # Where the numbers were made: CPU results depend on the thread count, GPU results do not.
    info = {**info, "device": "cuda" if torch.cuda.is_initialized() else "cpu"}
    write_json(directory / RUN_FILE, run_record(task=task.key, config=task.config, summary=summary,
                                                command=command, executor=info, inputs=task.inputs))
    return summary


def execute(task: Task, out: str | None, threads: int, command: list[str],
            info: dict[str, Any]) -> tuple[dict[str, Any], dict[str, bytes] | None]:
    """Run one task with ``threads`` torch threads; return its summary and, when ``out`` is
    None (driver storage), the files of its run directory (relative path → bytes).

    With ``out`` given, the run directory ``out/KEY`` is written here, atomically.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    info = {**info, "threads": threads, "host": os.uname().nodename, "pid": os.getpid()}
    try:
        if out is not None:
            writer = RunWriter(Path(out) / task.key, force=True)
            with writer as tmp:
                summary = _fill(task, tmp, command, info)
                writer.commit()
            return summary, None
        scratch = Path(tempfile.mkdtemp(prefix="dipscope-task-"))
        try:
            summary = _fill(task, scratch, command, info)
            files = {p.relative_to(scratch).as_posix(): p.read_bytes() for p in sorted(scratch.rglob("*")) if p.is_file()}
            return summary, files
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    finally:
        torch.set_num_threads(previous)


def store(directory: Path, files: dict[str, bytes]) -> None:
    """Write a run directory returned by a task (driver storage), atomically, ``run.json`` last."""
    writer = RunWriter(directory, force=True)
    with writer as tmp:
        for name in sorted(files, key=lambda n: n == RUN_FILE):
            path = tmp / name
            if ".." in Path(name).parts or Path(name).is_absolute():
                raise DipscopeError(f"a task returned a file outside its run directory: {name}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(files[name])
        writer.commit()


# --- executors -------------------------------------------------------------------------------

Outcome = tuple[Task, "dict[str, Any] | BaseException"]


class LocalExecutor:
    """Runs the submitted tasks in this process, in order, one at a time."""

    def __init__(self, options: ExecutorOptions, out: Path) -> None:
        self.out = out
        self.threads = options.resolved_threads()
        self.queue: deque[Task] = deque()
        self.info = {"name": "local"}

    def submit(self, task: Task) -> None:
        self.queue.append(task)

    def next_result(self) -> Outcome:
        task = self.queue.popleft()
        try:
            summary, _ = execute(task, str(self.out), self.threads, list(sys.argv), self.info)
            return task, summary
        except Exception as e:  # noqa: BLE001 - reported by run_tasks, KeyboardInterrupt passes
            return task, e

    def pending(self) -> int:
        return len(self.queue)

    def cancel(self) -> None:
        self.queue.clear()

    def close(self) -> None:
        pass


def _ray():
    try:
        import ray
    except ImportError:
        raise DipscopeError(RAY_MISSING) from None
    return ray


class RayExecutor:
    """Each submitted task becomes a Ray task; results come back as they finish."""

    #: Seconds :meth:`cancel` waits for interrupted tasks to stop before killing their workers.
    GRACE_S = 10.0

    def __init__(self, options: ExecutorOptions, out: Path) -> None:
        ray = self.ray = _ray()
        self.started = False
        if not ray.is_initialized():
            kwargs = dict(options.init_kwargs)
            if options.ray_address:
                kwargs["address"] = options.ray_address
            handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
            try:
                ray.init(**kwargs)
            except (ConnectionError, ValueError, RuntimeError) as e:
                where = options.ray_address or "a new local Ray instance"
                raise DipscopeError(f"cannot start or reach Ray at {where}: {str(e).splitlines()[0]}") from None
            finally:  # ray.init installs its own SIGTERM handler (sys.exit); keep dipscope's (interrupts)
                if threading.current_thread() is threading.main_thread():
                    for signum, handler in handlers.items():
                        signal.signal(signum, handler)
            self.started = True
        self.out = None if options.storage == "driver" else str(out.resolve())
        self.directory = out
        self.threads = options.resolved_threads()
        self.command = list(sys.argv)
        self.info = {"name": "ray", "storage": options.storage, "cpus_per_task": options.cpus_per_task,
                     "gpus_per_task": options.gpus_per_task}
        self.remote = ray.remote(num_cpus=options.cpus_per_task, num_gpus=options.gpus_per_task,
                                 max_retries=0)(execute)
        self.refs: dict[Any, Task] = {}

    def submit(self, task: Task) -> None:
        ref = self.remote.options(name=f"dipscope:{task.key}").remote(task, self.out, self.threads, self.command,
                                                                      self.info)
        self.refs[ref] = task

    def next_result(self) -> Outcome:
        ready, _ = self.ray.wait(list(self.refs), num_returns=1)
        task = self.refs.pop(ready[0])
        try:
            summary, files = self.ray.get(ready[0])
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - a task's error (RayTaskError) or a lost worker
            return task, e
        if files is not None:
            try:
                store(self.directory / task.key, files)
            except Exception as e:  # noqa: BLE001
                return task, e
        elif not is_complete(self.directory / task.key):
            raise DipscopeError(f"task {task.key} finished on another node but its run directory is not visible "
                                f"here: {self.directory} is not on a file system shared by every node; "
                                "use --ray-storage driver, or an --out on a shared file system")
        return task, summary

    def pending(self) -> int:
        return len(self.refs)

    def cancel(self) -> None:
        """Cancel queued and running tasks so that none leaves a run directory behind.

        A running task first gets ``KeyboardInterrupt`` and removes its own partial directory; a
        task that has not stopped after :attr:`GRACE_S` (the interrupt can be lost while Ray is
        still starting it) has its worker killed. Then the driver removes whatever partial
        directory a killed or just-starting task left (shared storage)."""
        refs = list(self.refs)
        for force in (False, True):
            for ref in refs:
                try:
                    self.ray.cancel(ref, force=force)
                except Exception:  # noqa: BLE001 - already finished
                    pass
            try:
                _, refs = self.ray.wait(refs, num_returns=len(refs), timeout=self.GRACE_S)
            except Exception:  # noqa: BLE001
                break
            if not refs:
                break
        for task in self.refs.values():
            discard_partials(self.directory / task.key)
        self.refs.clear()

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def make_executor(options: ExecutorOptions, out: Path) -> LocalExecutor | RayExecutor:
    options.validate()
    return RayExecutor(options, out) if options.name == "ray" else LocalExecutor(options, out)
