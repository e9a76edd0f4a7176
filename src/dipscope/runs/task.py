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
    ``config`` is equal)."""

    key: str
    work: Callable[[Path], dict[str, Any]]
    config: dict[str, Any]


def require_complete(*results: Any) -> None:
    """A task interrupted by Ctrl-C must not be stored as finished: re-raise the interrupt."""
    if any(getattr(r, "interrupted", False) for r in results):
        raise KeyboardInterrupt
