"""A task: one independent unit of an experiment, filling one run directory."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


@dataclass
class Task:
    """One independent unit of an experiment: ``work(directory)`` fills a fresh run directory
    and returns a JSON-ready summary, stored in its ``run.json`` under ``summary``; ``config``
    is every setting that determines the result (a finished run is reused only when its
    ``config`` is equal, or equal to one of ``also_accept``: settings that a sweep declares
    interchangeable with its own, e.g. the same run in another precision where the two were
    measured to agree). ``inputs`` names the data the task reads by content
    (:func:`tensor_digest`): a finished run made from other data under the same name is not
    reused; ``check`` refuses a task that cannot run before the sweep starts."""

    key: str
    work: Callable[[Path], dict[str, Any]]
    config: dict[str, Any]
    also_accept: tuple[dict[str, Any], ...] = ()
    inputs: dict[str, str] = field(default_factory=dict)
    #: Refuses, with one :class:`~dipscope.errors.DipscopeError`, a task that cannot run (e.g. an
    #: image too small for its network); called for every task to run before any of them starts.
    check: Callable[[], None] | None = None


def tensor_digest(tensor: Any) -> str:
    """The SHA-256 of a tensor's shape and float32 values: the same image gives the same digest
    whatever file it was read from."""
    values = tensor.detach().to("cpu").float().contiguous().numpy()
    return hashlib.sha256(repr(tuple(values.shape)).encode() + values.tobytes()).hexdigest()


def require_complete(*results: Any) -> None:
    """A task interrupted by Ctrl-C must not be stored as finished: re-raise the interrupt."""
    if any(getattr(r, "interrupted", False) for r in results):
        raise KeyboardInterrupt
