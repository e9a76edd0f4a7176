"""Self-describing run directories, written atomically.

A run is written into a hidden sibling directory and renamed into place when complete, so
an interrupted process never leaves a directory that looks finished, and an existing
directory is only replaced (with ``force``, and only if it is a dipscope run) once the new one
is complete. Directories left half-written by a killed process are recognised (no live writer
holds their lock) and removed the next time the same run is written.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import glob
import hashlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from .. import interrupts
from ..errors import DipscopeError
from ..files import _jsonable, write_csv, write_json, write_text  # noqa: F401 - re-exported for run directories

RUN_FILE = "run.json"


def is_complete(path: str | Path) -> bool:
    """A run directory is complete when its ``run.json`` exists (it is written last)."""
    return (Path(path) / RUN_FILE).is_file()


def read_record(path: str | Path) -> dict[str, Any] | None:
    """The ``run.json`` of run directory ``path`` as a dict; None if it is missing, unreadable,
    truncated or not a JSON object (a run killed while writing it is not finished)."""
    try:
        record = json.loads((Path(path) / RUN_FILE).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def is_dipscope_run(path: str | Path) -> bool:
    """True when ``path`` holds a ``run.json`` written by dipscope (its ``versions`` name dipscope)."""
    return written_by_dipscope(read_record(path))


def written_by_dipscope(record: Any) -> bool:
    """True when ``record`` is a JSON object of ours: its ``versions`` name dipscope."""
    return isinstance(record, dict) and isinstance(record.get("versions"), dict) and "dipscope" in record["versions"]


#: Bytes a file name may have (NAME_MAX of Linux and macOS file systems).
NAME_MAX = 255
#: Bytes kept free after a sibling's prefix for what follows it (a time stamp, ``-N``, a random tail).
_TAIL = 40


def sibling_stem(name: str, extra: int) -> str:
    """``name`` as the stem of a sibling name with ``extra`` more bytes around it: itself when
    the result fits in :data:`NAME_MAX`, else cut short and ended by ``~`` and a hash of the
    whole name (the same name always gives the same stem, so later runs find the siblings)."""
    if len(name.encode()) + extra <= NAME_MAX:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    room = NAME_MAX - extra - len(digest) - 1
    return name.encode()[:room].decode(errors="ignore") + "~" + digest


def set_aside(path: str | Path, why: str, name: str | None = None) -> Path:
    """Rename directory ``path`` to a free sibling ``NAME.WHY-TIME`` (``NAME``: ``name``, else
    ``path``'s own, shortened to fit a file name; ``-2``, ``-3``… appended if taken); return the
    new path. The rename itself claims the name (never onto a directory another process made)."""
    path = Path(path)
    base = sibling_name(name or path.name, why)
    target, n = path.with_name(base), 1
    while True:
        if not os.path.lexists(target):
            try:
                os.rename(path, target)
                return target
            except OSError as e:
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                    raise
        n += 1
        target = path.with_name(f"{base}-{n}")


def sibling_name(name: str, why: str) -> str:
    """``NAME.WHY-TIME`` (e.g. ``R.interrupted-20260101T120000``), fitting in a file name."""
    suffix = f".{why}-{_dt.datetime.now().strftime('%Y%m%dT%H%M%S')}"
    return sibling_stem(name, len(suffix.encode()) + 8) + suffix


def partial_prefix(out: Path) -> str:
    """The name prefix of the temporary directories a :class:`RunWriter` for ``out`` makes."""
    return f".{sibling_stem(out.name, _TAIL)}.partial-"


LOCK_FILE = ".writing.lock"
#: A partial directory without a lock file (made by an older dipscope, or killed between its
#: creation and its lock) counts as abandoned once it is this many seconds old.
UNLOCKED_STALE_S = 60.0


def discard_partials(out: str | Path) -> None:
    """Remove the temporary directories left next to ``out`` by interrupted writers of it."""
    out = Path(out)
    if out.parent.is_dir():
        for tmp in out.parent.glob(f"{glob.escape(partial_prefix(out))}*"):
            shutil.rmtree(tmp, ignore_errors=True)


def discard_stale_partials(out: str | Path) -> list[Path]:
    """Remove the temporary directories of ``out`` that no live writer holds; return them.

    A :class:`RunWriter` holds an exclusive ``flock`` on a lock file in its directory while it
    writes, so a directory whose lock can be taken was left by a killed process (SIGKILL, a
    lost node). A directory still locked belongs to a running writer and is left alone.
    """
    out = Path(out)
    removed: list[Path] = []
    if not out.parent.is_dir():
        return removed
    for tmp in out.parent.glob(f"{glob.escape(partial_prefix(out))}*"):
        if tmp.is_dir() and _abandoned(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def replaced_prefix(out: Path) -> str:
    """The name prefix under which :meth:`RunWriter.commit` moves a run it replaces aside."""
    return f".{sibling_stem(out.name, _TAIL)}.old-"


def replacing_note(out: Path) -> Path:
    """The file in which a forced commit names the run it moves aside, while it swaps the two."""
    return out.parent / f".{sibling_stem(out.name, _TAIL)}.replacing"


def recover_replaced(out: str | Path) -> list[Path]:
    """Finish what a forced commit killed between its two renames (SIGKILL) left behind.

    Only a commit's own note (:func:`replacing_note`, older than :data:`YOUNG_S`: its writer is
    gone) is acted on, and only on the directory it names: if ``out`` is missing the commit
    never completed and that run is put back; if ``out`` is there the commit completed and the
    replaced copy is removed, as the commit would have. Returns the directories touched.
    """
    out = Path(out)
    note = replacing_note(out)
    _remove_empty_aside(out)
    try:
        if not note.is_file() or time.time() - note.stat().st_mtime < YOUNG_S:
            return []
        name = note.read_text().strip()
    except OSError:
        return []
    old = out.parent / name
    touched: list[Path] = []
    if name.startswith(replaced_prefix(out)) and "/" not in name and old.is_dir():
        try:
            if out.exists():
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(old, out)
            touched.append(old)
        except OSError:
            return []
    note.unlink(missing_ok=True)
    return touched


def _remove_empty_aside(out: Path) -> None:
    """Remove the *empty* ``.NAME.old-…`` directories of ``out`` older than :data:`YOUNG_S`: a
    name reserved by a commit killed before it moved anything (an empty directory holds no run)."""
    if not out.parent.is_dir():
        return
    for old in out.parent.glob(f"{glob.escape(replaced_prefix(out))}*"):
        try:
            if old.is_dir() and not old.is_symlink() and time.time() - old.stat().st_mtime >= YOUNG_S:
                old.rmdir()  # fails, and is left alone, unless empty
        except OSError:
            pass


#: A partial directory younger than this is never touched (its writer may be between creating
#: the lock file and locking it).
YOUNG_S = 10.0


def _abandoned(tmp: Path) -> bool:
    try:
        age = time.time() - tmp.stat().st_mtime
    except OSError:
        return False
    if age < YOUNG_S:
        return False
    try:
        fd = os.open(tmp / LOCK_FILE, os.O_RDWR)
    except FileNotFoundError:
        return age > UNLOCKED_STALE_S
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # a live writer holds it, or the file system has no locks: leave it
    finally:
        os.close(fd)  # closing releases a lock we took
    return True


class RunWriter:
    """Context manager giving a temporary directory that becomes ``out`` on :meth:`commit`.

    Checked on construction, before any work is done: ``out`` must not exist or be an empty
    directory — unless ``force`` is set and it holds a dipscope run (a ``run.json`` of ours;
    any other folder is never replaced) and none of the run's ``inputs`` (files the run reads)
    lies inside it; it must not be the working directory or one above
    it, nor a mount point (which no rename can replace); and its parent must accept a new
    directory (tried, not guessed from permissions). A symbolic link is followed: the run is
    written where it points, and the link is kept.
    Before that, a run a forced commit killed mid-way left aside is put back
    (:func:`recover_replaced`); after, temporary directories of ``out`` left by killed writers
    are removed (:func:`discard_stale_partials`). The old ``out`` is replaced only by
    :meth:`commit`, when the new run is complete.
    """

    def __init__(self, out: str | Path, force: bool = False, inputs: Sequence[str | Path | None] = (),
                 unique: bool = False) -> None:
        self.out = Path(out)
        if self.out.is_symlink():  # the run goes where the link points; the link itself stays
            self.out = Path(os.path.realpath(self.out))
        self.force = force
        self.unique = unique
        self.tmp: Path | None = None
        self._lock_fd: int | None = None
        self.recovered = recover_replaced(self.out)  # first: the checks below see the run put back
        try:
            if self.out.exists() and not self.out.is_dir():
                raise DipscopeError(f"output path {self.out} exists and is not a directory")
            resolved = self.out.resolve()
            if self.out.is_dir() and os.path.ismount(self.out):
                raise DipscopeError(f"output directory {self.out} is a mount point (a volume), which cannot be "
                                    "renamed or replaced; write into a folder inside it, e.g. "
                                    f"--out {self.out / 'run'}")
            if Path.cwd().resolve().is_relative_to(resolved):
                raise DipscopeError(f"output directory {self.out} is the working directory or holds it; "
                                    "choose another --out")
            if self.holds_something():
                if not force:
                    raise DipscopeError(
                        f"output directory {self.out} already exists and is not empty; "
                        "pass --force to replace it or choose another --out"
                    )
                if not is_dipscope_run(self.out):
                    raise DipscopeError(f"refusing to replace {self.out}: it is not a dipscope run directory "
                                        f"(no {RUN_FILE} of ours); remove it yourself or choose another --out")
                for path in inputs:
                    if path is not None and Path(os.path.realpath(path)).is_relative_to(resolved):
                        raise DipscopeError(f"refusing to replace {self.out}: it holds {path}, an input of this "
                                            "run; move that file out first or choose another --out")
            blocking = next((p for p in self.out.parents if p.exists() and not p.is_dir()), None)
            if blocking is not None:
                raise DipscopeError(f"cannot write the output directory {self.out}: {blocking} is a file, not a folder")
            self.out.parent.mkdir(parents=True, exist_ok=True)
            os.rmdir(tempfile.mkdtemp(prefix=partial_prefix(self.out), dir=self.out.parent))
        except OSError as e:
            raise DipscopeError(f"cannot write the output directory {self.out}: {e.strerror or e}") from None
        self.discarded = discard_stale_partials(self.out)

    def holds_something(self) -> bool:
        """True when ``out`` exists and is not empty (a commit would replace it)."""
        return self.out.is_dir() and any(self.out.iterdir())

    def beside(self, why: str) -> "RunWriter":
        """A writer for a fresh sibling ``NAME.WHY-TIME`` of ``out`` (e.g. an interrupted run that
        must not replace the finished one in ``out``); should another process take that name
        first, the commit takes the next free one (``-2``, ``-3``…) instead."""
        return RunWriter(self.out.with_name(sibling_name(self.out.name, why)), unique=True)

    def __enter__(self) -> Path:
        self.tmp = Path(tempfile.mkdtemp(prefix=partial_prefix(self.out), dir=self.out.parent))
        try:
            self._lock_fd = os.open(self.tmp / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            except OSError:  # a file system without locks (NFS nolock, some Lustre): the directory
                pass         # then never counts as abandoned (_abandoned cannot lock it either)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.tmp, 0o777 & ~umask)  # mkdtemp makes it private; a run directory is not
        except BaseException:  # Ctrl-C here must not leave the directory behind
            self.__exit__()
            raise
        return self.tmp

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def commit(self) -> Path:
        """Rename the finished run into place.

        Without ``force`` the rename itself is the check (POSIX refuses to rename onto a
        non-empty directory), so a run another process finished meanwhile is never replaced:
        this one is then kept beside it and :class:`DipscopeError` says where. With ``force``
        the old run is moved aside first (``.NAME.old-…``) and moved back if the new one cannot
        take its place. Stop signals wait until the renames are done
        (:func:`~dipscope.interrupts.deferred`); a process killed between them (SIGKILL) leaves
        the old run aside, and the next writer of ``out`` puts it back
        (:func:`recover_replaced`).
        """
        assert self.tmp is not None
        (self.tmp / LOCK_FILE).unlink(missing_ok=True)
        self._unlock()
        with interrupts.deferred(then_raise=True):
            return self._rename_into_place()

    def _rename_into_place(self) -> Path:
        assert self.tmp is not None
        if not self.force:
            try:
                os.rename(self.tmp, self.out)
            except OSError as e:
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                    raise
                if self.unique:  # any free name will do: take the next one
                    self.out = self._next_free()
                    self.tmp = None
                    return self.out
                kept = set_aside(self.tmp, "conflict", name=self.out.name)
                self.tmp = None
                raise DipscopeError(f"{self.out} was written by another process meanwhile; this run is kept in "
                                    f"{kept}") from None
            self.tmp = None
            return self.out
        old, note = None, replacing_note(self.out)
        if self.out.exists():  # a free name, reserved by nothing on disk (no empty directory to leave behind)
            old = self.out.parent / f"{replaced_prefix(self.out)}{secrets.token_hex(6)}"
            write_text(note, old.name)  # if this process dies between the renames, the next writer knows
            os.rename(self.out, old)
        try:
            os.rename(self.tmp, self.out)
        except BaseException:
            if old is not None and not self.out.exists():
                os.rename(old, self.out)  # the finished run goes back where it was
            note.unlink(missing_ok=True)
            raise
        self.tmp = None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
            note.unlink(missing_ok=True)
        return self.out

    def _next_free(self) -> Path:
        """Rename the finished temporary directory to ``OUT-2``, ``OUT-3``… (the first free one)."""
        assert self.tmp is not None
        n = 1
        while True:
            n += 1
            target = self.out.with_name(f"{self.out.name}-{n}")
            try:
                os.rename(self.tmp, target)
                return target
            except OSError as e:
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                    raise

    def __exit__(self, *exc: object) -> None:
        self._unlock()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


def run_record(**sections: Any) -> dict[str, Any]:
    """The common header of every ``run.json``: time, command line and versions."""
    from ..runtime import versions

    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "versions": versions(),
        **sections,
    }
