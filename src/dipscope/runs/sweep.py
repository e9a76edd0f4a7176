"""Running an experiment's tasks: check them against the output directory, skip the finished
ones, hand the rest to an executor (:mod:`dipscope.runs.executors`: here, or on a Ray
cluster), and return every task's summary.

A task's run directory is *finished* when its ``run.json`` is readable and holds a summary
(:func:`finished_summary`); a finished run is reused only when it was made with the same
settings (``Task.config``) and, on a CPU, the same torch thread count.

The output folder of a sweep is the sweep's: a new or empty folder is claimed with a
:data:`SWEEP_MARK` file; a folder that holds anything else — a file, one run's directory, files
no sweep wrote, a mark that is not a sweep's — is refused before anything is written (:func:`check_sweep_folder`).
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import DipscopeError
from ..files import write_json
from ..fit.types import ADDED_SETTINGS
from .executors import ExecutorOptions
from .schedule import Counter, schedule
from .rundir import (RUN_FILE, _jsonable, discard_stale_partials, is_dipscope_run, partial_prefix, read_record,
                     run_record, set_aside, written_by_dipscope)
from .task import Task


def finished_summary(directory: Path, task: Task) -> dict[str, Any] | None:
    """The summary of ``task``'s finished run in ``directory`` if it was made with the task's
    settings, else None (no run, an unreadable one, or other settings)."""
    record = read_record(directory)
    return record["summary"] if _finished(record) and _same_settings(record, task) else None


def _finished(record: dict[str, Any] | None) -> bool:
    return record is not None and isinstance(record.get("summary"), dict)


def _same_settings(record: dict[str, Any], task: Task) -> bool:
    """The record was made with the task's settings, or with settings it also accepts."""
    return any(_matches(record.get("config"), json.loads(json.dumps(config, default=_jsonable)))
               for config in (task.config, *task.also_accept))


def _matches(recorded: Any, wanted: Any) -> bool:
    """``recorded == wanted``, except that a setting the record lacks matches when it is one of
    :data:`~dipscope.fit.types.ADDED_SETTINGS` asked for at the value older runs had."""
    if isinstance(recorded, dict) and isinstance(wanted, dict):
        missing = set(wanted) - set(recorded)
        if set(recorded) - set(wanted) or any(ADDED_SETTINGS.get(k, _ABSENT) != wanted[k] for k in missing):
            return False
        return all(_matches(recorded[k], wanted[k]) for k in recorded)
    return recorded == wanted


_ABSENT = object()


#: The file that marks a folder as a sweep's output folder (written when a sweep first uses it).
SWEEP_MARK = ".dipscope-sweep"


def check_sweep_folder(out: Path, keys: Sequence[str] = ()) -> None:
    """Refuse ``out`` as a sweep's output folder unless it is new, empty, marked as a sweep's
    (:data:`SWEEP_MARK`), or made by a sweep before the mark existed (:func:`made_by_a_sweep`):
    a sweep writes tables and figures at its top level, which must not replace a user's files.
    The temporary file of a mark being written (another sweep claiming the same new folder at
    this moment, or one killed while it did) counts as the mark's, not as a user's file."""
    if out.exists() and not out.is_dir():
        raise DipscopeError(f"--out {out} exists and is not a folder")
    if not out.is_dir() or marked_as_sweep(out) or \
            all(p.name.startswith(f".{SWEEP_MARK}.") for p in out.iterdir()):
        return
    if is_dipscope_run(out):
        raise DipscopeError(f"--out {out} is the directory of one dipscope run, not a sweep's folder; "
                            "choose a new or empty folder")
    if not made_by_a_sweep(out, keys):
        raise DipscopeError(f"--out {out} already holds files that no dipscope sweep wrote; "
                            "choose a new or empty folder")


def marked_as_sweep(out: Path) -> bool:
    """True when ``out`` holds a :data:`SWEEP_MARK` that a dipscope sweep wrote (a JSON record
    naming dipscope's version); an empty or foreign file of that name is not a mark."""
    try:
        record = json.loads((out / SWEEP_MARK).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return written_by_dipscope(record)


def made_by_a_sweep(out: Path, keys: Sequence[str] = (), depth: int = 3) -> bool:
    """True when ``out`` holds a run directory (or a killed writer's ``.NAME.partial-…``) of one
    of the task ``keys``, or any run directory, at most ``depth`` levels down, that a sweep wrote
    (its ``run.json`` names the task by its path under ``out``)."""
    for key in keys:
        directory = out / key
        if directory.exists() or any(directory.parent.glob(f"{glob.escape(partial_prefix(directory))}*")):
            return True
    for level in range(1, depth + 1):
        for path in out.glob("/".join(["*"] * level) + f"/{RUN_FILE}"):
            record = read_record(path.parent)
            if (is_dipscope_run(path.parent) and record is not None
                    and record.get("task") == path.parent.relative_to(out).as_posix()):
                return True
    return False


def claim_sweep_folder(out: Path) -> None:
    """Make ``out`` (checked by :func:`check_sweep_folder`) and mark it as a sweep's folder."""
    out.mkdir(parents=True, exist_ok=True)
    if not marked_as_sweep(out):
        write_json(out / SWEEP_MARK, run_record())


@dataclass
class Plan:
    """What :func:`run_tasks` will do, decided before anything is written: the finished tasks'
    summaries (skipped), the tasks to run, and the run directories to set aside first (their
    ``run.json`` is missing, truncated or unreadable: an unfinished run)."""

    summaries: dict[str, dict[str, Any]]
    todo: list[Task]
    unfinished: list[Path]
    threads: int


def plan_tasks(tasks: Sequence[Task], out: Path, force: bool = False,
               executor: ExecutorOptions | None = None, same_threads: bool = True) -> Plan:
    """Check the tasks against ``out`` without writing anything.

    Refused, with one :class:`DipscopeError`: an ``out`` that is not a sweep's folder
    (:func:`check_sweep_folder`); two tasks sharing a directory; a finished run with other
    settings; with ``same_threads``, a finished CPU run made with another torch thread count
    (the numbers depend on it, so a table would mix two set-ups) — unless ``force`` redoes them;
    a finished run made from other input data (:attr:`Task.inputs`); and a task to run that its
    own :attr:`Task.check` refuses.
    """
    keys = [task.key for task in tasks]
    check_sweep_folder(out, keys)
    if len(set(keys)) != len(keys):
        raise DipscopeError("two tasks share a run directory: " + ", ".join(sorted({k for k in keys if keys.count(k) > 1})))
    options = executor or ExecutorOptions()
    options.validate()
    threads = options.resolved_threads()
    plan = Plan({}, [], [], threads)
    for task in tasks:
        directory = out / task.key
        record = read_record(directory)
        if not _finished(record):
            if directory.exists():
                plan.unfinished.append(directory)
            plan.todo.append(task)
            continue
        if force:
            plan.todo.append(task)
            continue
        if not _same_settings(record, task):
            raise DipscopeError(f"{directory} holds a finished run with other settings; "
                                "pass --force to redo it or choose another --out")
        made_from = record.get("inputs")
        if task.inputs and isinstance(made_from, dict) and made_from != task.inputs:
            changed = ", ".join(str(task.config.get(k, k)) for k in task.inputs if made_from.get(k) != task.inputs[k])
            raise DipscopeError(f"{directory} holds a finished run made from another {changed} (same name, other "
                                "pixels); pass --force to redo it or choose another --out")
        executor = record.get("executor") if isinstance(record.get("executor"), dict) else {}
        made_with = executor.get("threads")
        device = record["summary"].get("device")
        where = executor.get("device") or (device.get("type") if isinstance(device, dict) else None) or "cpu"
        if same_threads and made_with is not None and made_with != threads and where == "cpu":
            raise DipscopeError(f"{directory} was made with {made_with} torch thread(s) and this run would use "
                                f"{threads}; CPU results depend on the thread count, so resume with "
                                f"--threads {made_with} (or pass --force to redo every run)")
        plan.summaries[task.key] = record["summary"]
    for task in plan.todo:
        if task.check is not None:
            task.check()
    return plan


def run_tasks(tasks: Sequence[Task], out: Path, force: bool = False,
              progress: Callable[[str], None] = print, executor: ExecutorOptions | None = None,
              on_done: Callable[[str, dict[str, Any]], None] | None = None,
              plan: Plan | None = None) -> dict[str, dict[str, Any]]:
    """Run the tasks not already complete under ``out``; return every task's summary.

    ``executor`` chooses who runs them (default: here, one after the other; see
    :mod:`dipscope.runs.executors`); ``on_done(key, summary)`` is called here as each new task
    finishes (e.g. to rewrite a partial table). Everything :func:`plan_tasks` refuses is
    refused before any work starts (pass a ``plan`` made earlier to check before writing
    anything else). Run directories without a readable ``run.json`` are set aside
    (``KEY.unfinished-TIME``) and their tasks run again; temporary directories left by killed
    tasks are removed. Tasks that still fail after their retries raise
    :class:`~dipscope.runs.executors.TasksFailed` once all the others have finished.
    """
    plan = plan or plan_tasks(tasks, out, force, executor)
    claim_sweep_folder(out)
    for directory in plan.unfinished:
        progress(f"{directory.relative_to(out)}: no readable {RUN_FILE} (an unfinished run); "
                 f"moved aside to {set_aside(directory, 'unfinished').name}, running it again")
    for task in plan.todo:
        for tmp in discard_stale_partials(out / task.key):
            progress(f"{task.key}: removed {tmp.name}, left half-written by a process that was killed")
    counter = Counter(len(tasks), progress)
    for task in tasks:
        if task.key in plan.summaries:
            counter.finished += 1
            counter.say(task.key, "done already, skipped")
    summaries = dict(plan.summaries)
    if plan.todo:
        summaries.update(schedule(plan.todo, out, executor or ExecutorOptions(), counter, on_done))
    return {task.key: summaries[task.key] for task in tasks}


