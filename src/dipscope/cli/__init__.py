"""The ``dipscope`` command line: :mod:`~dipscope.cli.base` (apps, shared options, entry
point), :mod:`~dipscope.cli.denoise` (``denoise``, ``demo``), :mod:`~dipscope.cli.experiments`
(``experiment …``) and :mod:`~dipscope.cli.tools` (``data``, ``gp``, ``bench``, ``report``)."""

from . import denoise, experiments, tools  # noqa: F401 - importing registers the commands
from .base import app, main

__all__ = ["app", "main"]
