"""A task: one independent unit of an experiment, filling one run directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


@dataclass
class Task:
    """One independent unit of an experiment: ``work(directory)`` fills a fresh run directory
    and returns a JSON-ready summary, stored in its ``run.json`` under ``summary``; ``config``
    is every setting that determines the result (a finished run is reused only when its
    ``config`` is equal, or equal to one of ``also_accept``: settings that a sweep declares
    interchangeable with its own, e.g. the same run in another precision where the two were
    measured to agree)."""

    key: str
    work: Callable[[Path], dict[str, Any]]
    config: dict[str, Any]
    also_accept: tuple[dict[str, Any], ...] = ()


def require_complete(*results: Any) -> None:
    """A task interrupted by Ctrl-C must not be stored as finished: re-raise the interrupt."""
    if any(getattr(r, "interrupted", False) for r in results):
        raise KeyboardInterrupt
