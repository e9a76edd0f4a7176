"""The shape every experiment shares: settings → named inputs → a grid of tasks → ``run_tasks``
(resumable, any executor) → a report.

An experiment subclasses :class:`Experiment` and declares only what is its own:

* :meth:`Experiment.check` — refuse impossible settings before any work;
* :meth:`Experiment.inputs` — its named images (default: :func:`~.common.load_inputs` of the
  settings' ``images``, ``data_dir``, ``factor``, ``resize`` and ``crop_side`` where present);
* :meth:`Experiment.tasks` — its grid: one :class:`~dipscope.runs.Task` per fit (or group of
  fits), each a ``work(directory) -> summary`` closure with the settings that identify it;
* :meth:`Experiment.report` — its measure over the finished summaries: figures, ``summary.csv``
  and the Markdown that :meth:`Experiment.run` writes to ``summary.md`` and returns.

Adding an experiment is writing those four methods (see ``docs/architecture.md``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import torch

from ..files import write_text
from ..runs import Task, run_tasks
from ..runs.executors import ExecutorOptions
from .common import load_inputs


class Experiment:
    """One claim's experiment over the settings ``cfg`` (a dataclass of the subclass's own)."""

    #: Default input items when the settings give none (e.g. ``("set:barbara",)``).
    default_images: ClassVar[Sequence[str]] = ()

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    def check(self) -> None:
        """Refuse impossible settings (one :class:`~dipscope.errors.DipscopeError`) before any work."""

    def inputs(self) -> dict[str, torch.Tensor]:
        """The named input images."""
        cfg = self.cfg
        kwargs: dict[str, Any] = {}
        if getattr(cfg, "crop_side", None):
            kwargs["crop"] = cfg.crop_side
        return load_inputs(list(getattr(cfg, "images", None) or self.default_images), getattr(cfg, "data_dir", None),
                           getattr(cfg, "factor", 1), getattr(cfg, "resize", "study"), **kwargs)

    def tasks(self, inputs: Mapping[str, torch.Tensor]) -> list[Task]:  # pragma: no cover - interface
        """The grid: one task per fit (or group of fits)."""
        raise NotImplementedError

    def report(self, out: Path, inputs: Mapping[str, torch.Tensor], tasks: Sequence[Task],
               summaries: Mapping[str, dict[str, Any]]) -> str:  # pragma: no cover - interface
        """Figures and tables of the finished tasks; returns the Markdown summary."""
        raise NotImplementedError

    def run(self, out: Path, force: bool = False, executor: ExecutorOptions | None = None) -> str:
        """Run (or resume) every task, then write ``summary.md`` and return it."""
        self.check()
        inputs = self.inputs()
        tasks = self.tasks(inputs)
        summaries = run_tasks(tasks, out, force=force, executor=executor)
        text = self.report(out, inputs, tasks, summaries)
        write_text(out / "summary.md", text)
        return text
