"""Stop signals as interrupts: SIGINT (Ctrl-C) and SIGTERM (what SLURM, Kubernetes and Ray send
to stop a job) both end a fit cleanly.

:func:`install` makes both signals raise :class:`KeyboardInterrupt` in the main thread, which
the fit loop turns into an interrupted result (its outputs so far are saved) and the
experiment runner into a cancelled sweep (finished runs are kept). Only the first signal
raises: later ones while the outputs are being saved are recorded and ignored, so that saving
— and the rename that replaces nothing the user already has — is not cut short.
:func:`exit_code` is the shell's convention for the signal that stopped the process,
``128 + signum``: 130 for SIGINT, 143 for SIGTERM.
"""

from __future__ import annotations

import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []


def _handler(signum: int, frame: object) -> None:
    _received.append(signum)
    if len(_received) == 1:
        raise KeyboardInterrupt(signal.Signals(signum).name)


def install() -> dict[int, object]:
    """Route SIGINT and SIGTERM to :class:`KeyboardInterrupt` (main thread only; a no-op elsewhere);
    returns the previous handlers, for :func:`restore`."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    _received.clear()
    return {signum: signal.signal(signum, _handler) for signum in STOP_SIGNALS}


def restore(previous: dict[int, object]) -> None:
    """Put back the handlers :func:`install` replaced."""
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
