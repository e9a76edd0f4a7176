"""The ``dipscope`` command line: :mod:`~dipscope.cli.base` (apps, shared options, entry
point), :mod:`~dipscope.cli.denoise` (``denoise``, ``demo``), :mod:`~dipscope.cli.experiments`
(``experiment …``) and :mod:`~dipscope.cli.tools` (``data``, ``gp``, ``bench``, ``report``)."""

import sys

try:  # Ctrl-C while torch is imported (the first second) ends quietly, as it does later
    from . import denoise, experiments, tools  # noqa: F401 - importing registers the commands
    from .base import app, main
except KeyboardInterrupt:
    print("aborted by SIGINT", file=sys.stderr)
    sys.exit(130)

__all__ = ["app", "main"]
