"""Self-describing run directories, written atomically.

A run is written into a hidden sibling directory and renamed into place when complete, so
an interrupted process never leaves a directory that looks finished, and an existing
directory is only replaced (with ``force``) once the new one is complete.
"""

from __future__ import annotations

import csv
import datetime as _dt
import glob
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import DipscopeError

RUN_FILE = "run.json"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_complete(path: str | Path) -> bool:
    """A run directory is complete when its ``run.json`` exists (it is written last)."""
    return (Path(path) / RUN_FILE).is_file()


def partial_prefix(out: Path) -> str:
    """The name prefix of the temporary directories a :class:`RunWriter` for ``out`` makes."""
    return f".{out.name}.partial-"


def discard_partials(out: str | Path) -> None:
    """Remove the temporary directories left next to ``out`` by interrupted writers of it."""
    out = Path(out)
    if out.parent.is_dir():
        for tmp in out.parent.glob(f"{glob.escape(partial_prefix(out))}*"):
            shutil.rmtree(tmp, ignore_errors=True)


class RunWriter:
    """Context manager giving a temporary directory that becomes ``out`` on :meth:`commit`.

    ``out`` must not exist or be an empty directory, unless ``force`` is set; this is
    checked on construction, before any work is done.
    """

    def __init__(self, out: str | Path, force: bool = False) -> None:
        self.out = Path(out)
        self.force = force
        try:
            if self.out.exists() and not self.out.is_dir():
                raise DipscopeError(f"output path {self.out} exists and is not a directory")
            if self.out.is_dir() and any(self.out.iterdir()) and not force:
                raise DipscopeError(
                    f"output directory {self.out} already exists and is not empty; "
                    "pass --force to replace it or choose another --out"
                )
            self.out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DipscopeError(f"cannot use output directory {self.out}: {e.strerror or e}") from None
        if not os.access(self.out.parent, os.W_OK):
            raise DipscopeError(f"cannot write into {self.out.parent}")
        self.tmp: Path | None = None

    def __enter__(self) -> Path:
        self.tmp = Path(tempfile.mkdtemp(prefix=partial_prefix(self.out), dir=self.out.parent))
        try:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.tmp, 0o777 & ~umask)  # mkdtemp makes it private; a run directory is not
        except BaseException:  # Ctrl-C here must not leave the directory behind
            self.__exit__()
            raise
        return self.tmp

    def commit(self) -> Path:
        assert self.tmp is not None
        old = None
        if self.out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.old-", dir=self.out.parent))
            os.rmdir(old)
            os.rename(self.out, old)
        os.rename(self.tmp, self.out)
        self.tmp = None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.out

    def __exit__(self, *exc: object) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)


def write_json(path: str | Path, data: Mapping[str, Any]) -> None:
    with open(path, "w") as f:
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
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerows(rows)


def run_record(**sections: Any) -> dict[str, Any]:
    """The common header of every ``run.json``: time, command line and versions."""
    from .runtime import versions

    return {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "versions": versions(),
        **sections,
    }
