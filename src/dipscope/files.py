"""Plain file writers for run records and reports: JSON documents, CSV tables of dict rows,
text. Each file is written whole or not at all: into a hidden sibling, then renamed over the
target (:func:`atomic_open`), so a signal or a crash mid-write never leaves a truncated
table or record where a complete one was."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from .errors import DipscopeError


@contextmanager
def atomic_open(path: str | Path, newline: str | None = None) -> Iterator[io.TextIOWrapper]:
    """A text file to write that replaces ``path`` only once closed without an error.

    A symbolic link is written through (its target is replaced); an existing file keeps its
    permissions, a new one gets those ``open`` would give it (0666 less the umask). A write the
    system refuses (disk full, quota) raises :class:`~dipscope.errors.DipscopeError`, and
    ``path`` keeps what it held.
    """
    path = Path(os.path.realpath(path))
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_UMASK
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:200]}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise cannot_write(path, e) from None
    try:
        with os.fdopen(fd, "w", newline=newline) as f:
            yield f
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise cannot_write(path, e) from None
        raise


def cannot_write(path: Path, error: OSError) -> DipscopeError:
    """The error of a write the system refused, as one line (disk full: what to do)."""
    text = f"cannot write {path}: {error.strerror or error}"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        text += "; free some space and run the command again (what was finished is intact)"
    return DipscopeError(text)


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it; done once, at import, before any thread starts
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all."""
    with atomic_open(path) as f:
        f.write(text)


def write_json(path: str | Path, data: Mapping[str, Any]) -> None:
    with atomic_open(path) as f:
        json.dump(data, f, indent=2, default=_jsonable)
        f.write("\n")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_csv(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write dict rows; the header is the union of keys in first-seen order."""
    rows = list(rows)
    header: list[str] = []
    for r in rows:
        header += [k for k in r if k not in header]
    with atomic_open(path, newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerows(rows)
