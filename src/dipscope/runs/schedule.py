"""The scheduling loop: submit tasks to an executor, retry failures, report progress, and cancel
everything cleanly on Ctrl-C or SIGTERM (see :mod:`dipscope.runs.executors`)."""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .. import interrupts
from ..errors import DipscopeError
from ..files import write_text
from .executors import ExecutorOptions, make_executor
from .task import Task


@dataclass
class Failure:
    key: str
    error: BaseException
    attempts: int

    def short(self) -> str:
        error = getattr(self.error, "cause", None) or self.error  # a Ray task's error wraps the task's own
        text = str(error).strip().splitlines()
        return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")

    def details(self) -> str:
        tb = "".join(traceback.format_exception(type(self.error), self.error, self.error.__traceback__))
        return f"## {self.key} (failed {self.attempts} time(s))\n{tb}\n"


class TasksFailed(DipscopeError):
    """Some tasks failed after their retries; the others finished (their summaries are kept)."""

    def __init__(self, failures: list[Failure], summaries: dict[str, dict[str, Any]], total: int,
                 log: Path | None) -> None:
        self.failures = failures
        self.summaries = summaries
        shown = "; ".join(f"{f.key}: {f.short()}" for f in failures[:3])
        more = f"; and {len(failures) - 3} more" if len(failures) > 3 else ""
        where = f" (tracebacks in {log})" if log else ""
        super().__init__(f"{len(failures)} of {total} tasks failed after their retries: {shown}{more}{where}; "
                         "the others finished — run the same command again to retry only the failed ones")


class Counter:
    """The progress line: ``[finished/total] … (F failed, R remaining)``."""

    def __init__(self, total: int, progress: Callable[[str], None]) -> None:
        self.total, self.progress = total, progress
        self.finished = self.failed = 0
        self.t0 = time.perf_counter()

    @property
    def remaining(self) -> int:
        return self.total - self.finished - self.failed

    def say(self, key: str, what: str) -> None:
        self.progress(f"[{self.finished}/{self.total}] {key}: {what} ({self.failed} failed, "
                      f"{self.remaining} remaining, {time.perf_counter() - self.t0:.0f} s)")


def schedule(todo: list[Task], out: Path, options: ExecutorOptions, counter: Counter,
             on_done: Callable[[str, dict[str, Any]], None] | None = None) -> dict[str, dict[str, Any]]:
    """Run ``todo`` on the chosen executor; return every finished task's summary by key, calling
    ``on_done(key, summary)`` on the driver as each one finishes.

    Retries failed tasks up to ``options.retries`` times (not a :class:`DipscopeError`: a refusal
    of the task's own data or settings fails the same way again); raises :class:`TasksFailed` at the end
    if some still failed. Ctrl-C cancels what is queued or running and re-raises.
    """
    executor = make_executor(options, out)
    attempts: dict[str, int] = {}
    failures: list[Failure] = []
    done: dict[str, dict[str, Any]] = {}
    try:
        for task in todo:
            executor.submit(task)
        while executor.pending():
            interrupts.raise_pending()  # a signal held back while the last task was saved stops the sweep here
            task, outcome = executor.next_result()
            if isinstance(outcome, BaseException):
                attempts[task.key] = attempts.get(task.key, 0) + 1
                n = attempts[task.key]
                fixed = isinstance(getattr(outcome, "cause", None) or outcome, DipscopeError)  # the same again
                if n <= options.retries and not fixed:
                    counter.say(task.key, f"attempt {n} failed ({Failure(task.key, outcome, n).short()}), retrying")
                    executor.submit(task)
                    continue
                failures.append(Failure(task.key, outcome, n))
                counter.failed += 1
                counter.say(task.key, f"FAILED after {n} attempt(s): {failures[-1].short()}")
                continue
            counter.finished += 1
            done[task.key] = outcome
            counter.say(task.key, "finished")
            if on_done is not None:
                on_done(task.key, outcome)
    except KeyboardInterrupt:
        left = executor.pending()
        executor.cancel()
        counter.progress(f"interrupted: {counter.finished} finished, {counter.failed} failed, "
                         f"{left} cancelled or not started; run the same command again to resume")
        raise
    except BaseException:
        executor.cancel()
        raise
    finally:
        executor.close()
    log = out / "failures.txt"
    if failures:
        write_text(log, "".join(f.details() for f in failures))
        raise TasksFailed(failures, done, counter.total, log)
    if log.is_file():
        log.unlink()
    return done
