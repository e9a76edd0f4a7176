"""Stop signals as interrupts: SIGINT (Ctrl-C) and SIGTERM (what SLURM, Kubernetes and Ray send
to stop a job) both end a fit cleanly.

:func:`install` makes both signals raise :class:`KeyboardInterrupt` in the main thread, which
the fit loop turns into an interrupted result (its outputs so far are saved) and the
experiment runner into a cancelled sweep (finished runs are kept). No signal raises inside
:func:`deferred` (while a finished fit is being saved): it is recorded and stays *pending*
(:func:`pending`) until something acts on it — the next signal outside a deferral, the end of a
``deferred(then_raise=True)`` block, or a check between steps, runs and tasks
(:func:`raise_pending`) — so no signal is ever swallowed. Once one has raised, later signals
are recorded only (the clean-up they would interrupt is already under way), and the command
exits with the first one's code once the results are safe.
:func:`exit_code` is the shell's convention for the signal that stopped the process,
``128 + signum``: 130 for SIGINT, 143 for SIGTERM.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []
#: Whether a recorded signal has raised :class:`KeyboardInterrupt` (or was acted on) since
#: :func:`install`, and whether the handlers are installed at all.
_acted: list[bool] = [False]
_installed: list[bool] = [False]
#: How many :func:`deferred` blocks are open, in any thread (runs fitted at once each save
#: their results in their own thread): a count, not a flag, so that blocks which end in another
#: order than they began still end the deferral.
_deferring: list[int] = [0]
_lock = threading.Lock()


def _handler(signum: int, frame: object) -> None:
    _received.append(signum)
    if not _acted[0] and not _deferring[0]:
        _acted[0] = True
        raise KeyboardInterrupt(signal.Signals(signum).name)


@contextmanager
def deferred(then_raise: bool = False) -> Iterator[None]:
    """Record stop signals without raising while results are saved (a finished fit is not
    thrown away, and a run directory is not left half-renamed); the caller reads
    :func:`received` afterwards and exits with :func:`exit_code`.

    With ``then_raise`` a pending signal (one that has not raised yet, outside any other
    :func:`deferred`) raises :class:`KeyboardInterrupt` once the block has finished, as it
    would have without the deferral: a sweep saves the run it was writing, then stops.
    """
    with _lock:
        outermost = _deferring[0] == 0
        _deferring[0] += 1
    try:
        yield
    finally:
        with _lock:
            _deferring[0] -= 1
    if then_raise and outermost:
        raise_pending()


def pending() -> bool:
    """True when a stop signal was received (handlers installed) and nothing has acted on it yet."""
    return _installed[0] and bool(_received) and not _acted[0]


def raise_pending() -> None:
    """Raise :class:`KeyboardInterrupt` for a :func:`pending` signal (marking it acted on); a
    no-op when there is none. Called between steps, runs and tasks, where stopping is safe."""
    if not pending():  # the common case, checked every step: no lock
        return
    with _lock:
        if _acted[0]:
            return
        _acted[0] = True
    raise KeyboardInterrupt(name())


def install() -> dict[int, object]:
    """Route SIGINT and SIGTERM to :class:`KeyboardInterrupt` (main thread only; a no-op elsewhere);
    returns the previous handlers, for :func:`restore`."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    _received.clear()
    _acted[0] = False
    _installed[0] = True
    return {signum: signal.signal(signum, _handler) for signum in STOP_SIGNALS}


def restore(previous: dict[int, object]) -> None:
    """Put back the handlers :func:`install` replaced (signals recorded stay readable)."""
    if previous:
        _installed[0] = False
    for signum, handler in previous.items():
        signal.signal(signum, handler)  # type: ignore[arg-type]


def received() -> int | None:
    """The first stop signal received since :func:`install`, or None."""
    return _received[0] if _received else None


def exit_code() -> int:
    """``128 + signum`` of the first stop signal received (130, Ctrl-C, if none was recorded)."""
    return 128 + (received() or signal.SIGINT)


def name() -> str:
    """``SIGINT`` or ``SIGTERM``: the signal that interrupted the process (SIGINT if unknown)."""
    return signal.Signals(received() or signal.SIGINT).name
