"""User-facing errors.

Every problem a user can cause (a wrong path, an unreadable file, an image too small for the
network, a configuration that cannot fit in memory) raises :class:`DipscopeError` with a
one-line message. The command-line interface prints that line and exits with status 2; the
Python API lets it propagate like any exception.
"""

from __future__ import annotations


class DipscopeError(Exception):
    """A problem with the user's input or configuration, stated in one line."""

    exit_code: int = 2
