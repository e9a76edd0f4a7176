"""What every experiment shares: model choices by name, profiles, and resumable run directories.

An experiment expands into independent *tasks* (one fit, or one group of fits, each with its
own run directory under the experiment's output directory). :func:`run_tasks` skips tasks
whose directory is complete, hands the others to an executor (:mod:`dipscope.executors`:
here, or on a Ray cluster), writes each new directory atomically (a killed sweep leaves no
directory that looks finished), and returns every task's summary.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import DipscopeError
from ..executors import Counter, ExecutorOptions, schedule
from ..fit import FitConfig
from ..models import ModelSpec, spec_to_dict
from ..presets import preset
from ..rundir import RUN_FILE, _jsonable, discard_stale_partials, read_record, set_aside

PROFILES = ("smoke", "cpu", "paper")


def model_choice(name: str, profile: str) -> tuple[ModelSpec, FitConfig]:
    """The study's settings (``chakrabarty2019``) for model ``name``, scaled to ``profile``.

    Names: ``dip``, ``linear-N`` (DIP-Linear of width N), ``relunet``.

    * ``paper`` — the study's scripts as they are (no divergence recovery: they have none).
    * ``cpu`` — what 2 CPU cores finish in minutes per image: DIP with 64 instead of 256
      channels per level; ReLUNet 2 000 instead of 30 000 steps; and the loop's divergence
      recovery on (the committed ``cpu`` results were made with it). Experiments may reduce
      further (their own steps or crops): each says so in its docstring.
    * ``smoke`` — seconds: tiny widths and a few dozen steps (for tests), recovery on.
    """
    if profile not in PROFILES:
        raise DipscopeError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    spec, config = _study_model(name, profile)
    return spec, replace(config, recover_divergence=profile != "paper")


def _study_model(name: str, profile: str) -> tuple[ModelSpec, FitConfig]:
    if name == "dip":
        spec, config = preset("chakrabarty2019", "skip")
        if profile == "cpu":
            spec = replace(spec, channels_down=(64,) * 5, channels_up=(64,) * 5)
        elif profile == "smoke":
            spec = replace(spec, channels_down=(8,) * 3, channels_up=(8,) * 3, channels_skip=(2,) * 3)
            config = replace(config, steps=40, lr=0.01, observe_every=5)
    elif name.startswith("linear-"):
        try:
            width = int(name.split("-", 1)[1])
        except ValueError:
            raise DipscopeError(f"bad model name {name!r}; DIP-Linear is linear-N with an integer width N") from None
        spec, config = preset("chakrabarty2019", "linear", linear_width=width)
        if profile == "smoke":
            spec = replace(spec, width=min(width, 16), levels=2)
            config = replace(config, steps=40, observe_every=5)
    elif name == "relunet":
        spec, config = preset("chakrabarty2019", "relunet")
        if profile == "cpu":
            config = replace(config, steps=2000)
        elif profile == "smoke":
            spec = replace(spec, hidden=16, depth=3)
            config = replace(config, steps=40, pixel_batch=256, lr=1e-2, observe_every=5)
    else:
        raise DipscopeError(f"unknown model {name!r}; choose dip, linear-N or relunet")
    return spec, config


def describe(spec: ModelSpec, config: FitConfig) -> dict[str, Any]:
    return {"model": spec_to_dict(spec), "fit": asdict(config)}


@dataclass
class Task:
    """One independent unit of an experiment: ``work(directory)`` fills a fresh run directory
    and returns a JSON-ready summary, stored in its ``run.json`` under ``summary``."""

    key: str
    work: Callable[[Path], dict[str, Any]]
    config: dict[str, Any]


def require_complete(*results: Any) -> None:
    """A task interrupted by Ctrl-C must not be stored as finished: re-raise the interrupt."""
    if any(getattr(r, "interrupted", False) for r in results):
        raise KeyboardInterrupt


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
               executor: ExecutorOptions | None = None) -> Plan:
    """Check the tasks against ``out`` without writing anything.

    Refused, with one :class:`DipscopeError`: two tasks sharing a directory; a finished run
    with other settings; a finished CPU run made with another torch thread count (the numbers
    depend on it, so a table would mix two set-ups) — unless ``force`` redoes them.
    """
    keys = [task.key for task in tasks]
    if len(set(keys)) != len(keys):
        raise DipscopeError("two tasks share a run directory: " + ", ".join(sorted({k for k in keys if keys.count(k) > 1})))
    options = executor or ExecutorOptions()
    options.validate()
    threads = options.resolved_threads()
    plan = Plan({}, [], [], threads)
    for task in tasks:
        directory = out / task.key
        record = read_record(directory)
        if record is None or "summary" not in record:
            if directory.exists():
                plan.unfinished.append(directory)
            plan.todo.append(task)
            continue
        if force:
            plan.todo.append(task)
            continue
        if record.get("config") != json.loads(json.dumps(task.config, default=_jsonable)):
            raise DipscopeError(f"{directory} holds a finished run with other settings; "
                                "pass --force to redo it or choose another --out")
        made_with = (record.get("executor") or {}).get("threads")
        device = ((record.get("summary") or {}).get("device") or {}).get("type", "cpu")
        if made_with is not None and made_with != threads and device == "cpu":
            raise DipscopeError(f"{directory} was made with {made_with} torch thread(s) and this run would use "
                                f"{threads}; CPU results depend on the thread count, so resume with "
                                f"--threads {made_with} (or pass --force to redo every run)")
        plan.summaries[task.key] = record["summary"]
    return plan


def run_tasks(tasks: Sequence[Task], out: Path, force: bool = False,
              progress: Callable[[str], None] = print, executor: ExecutorOptions | None = None,
              on_done: Callable[[str, dict[str, Any]], None] | None = None,
              plan: Plan | None = None) -> dict[str, dict[str, Any]]:
    """Run the tasks not already complete under ``out``; return every task's summary.

    ``executor`` chooses who runs them (default: here, one after the other; see
    :mod:`dipscope.executors`); ``on_done(key, summary)`` is called here as each new task
    finishes (e.g. to rewrite a partial table). Everything :func:`plan_tasks` refuses is
    refused before any work starts (pass a ``plan`` made earlier to check before writing
    anything else). Run directories without a readable ``run.json`` are set aside
    (``KEY.unfinished-TIME``) and their tasks run again; temporary directories left by killed
    tasks are removed. Tasks that still fail after their retries raise
    :class:`~dipscope.executors.TasksFailed` once all the others have finished.
    """
    plan = plan or plan_tasks(tasks, out, force, executor)
    out.mkdir(parents=True, exist_ok=True)
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


def crop_side(crop: int | None, profile: str) -> int | None:
    """Side of the square crop of an experiment's input: ``crop`` if given (0 = none), else
    64 for the ``smoke`` profile, 128 for ``cpu`` and none (the whole image) for ``paper``."""
    if crop is not None:
        return crop if crop > 0 else None
    return {"smoke": 64, "cpu": 128}.get(profile)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def image_name(path: Path | str) -> str:
    return Path(path).stem


def load_inputs(images: Sequence[str], data_dir: str | None, factor: int, method: str = "study") -> dict[str, Any]:
    """Resolve experiment inputs: file paths, or ``set:NAME`` for a named data set (downsampled ×factor)."""
    from ..datasets import load
    from ..degrade import downsample
    from ..images import read_image

    if factor < 1:
        raise DipscopeError("the downsampling factor must be ≥ 1")
    from ..degrade import RESIZES

    if method not in RESIZES:
        raise DipscopeError(f"unknown resize {method!r}; choose one of {', '.join(RESIZES)}")
    out: dict[str, Any] = {}

    def add(name: str, image: Any) -> None:
        if name in out:
            raise DipscopeError(f"two inputs are both named {name!r}; rename one of them")
        out[name] = downsample(image, factor, method) if factor > 1 or method == "study-distorted" else image

    for item in images:
        if item.startswith("set:"):
            for name, image in load(item[4:], data_dir).items():
                add(name, image)
        else:
            add(image_name(item), read_image(item))
    if not out:
        raise DipscopeError("no input images given")
    return out
