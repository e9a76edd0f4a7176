"""Self-contained HTML reports: ``report.html`` of a run directory or of an experiment's folder.

A report is one file: images and plots are inline ``data:`` URIs, the style and the script are
inline, and nothing is loaded from another file or the network.

* :func:`run_report_html` — the page of a ``denoise``/``restore`` run (:mod:`.run`);
  :func:`add_run_report` writes it into a run directory as the directory is written;
* :func:`folder_report_html` — the page of an experiment's folder (:mod:`.folder`);
* :func:`write_report` — ``dipscope report DIR``: (re)builds either page as ``DIR/report.html``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from ..errors import DipscopeError
from ..files import write_text
from ..runs.rundir import RUN_FILE, is_dipscope_run, read_record
from .folder import folder_report_html, has_content
from .page import GENERATOR
from .run import clean_from_record, is_restore_record, run_report_html

__all__ = ["REPORT_FILE", "add_run_report", "folder_report_html", "run_report_html", "write_report"]

#: The report's file name, in the run directory or the folder it describes.
REPORT_FILE = "report.html"


def add_run_report(directory: str | Path, record: dict[str, Any], clean: torch.Tensor | None = None,
                   clean_label: str | None = None) -> Path | None:
    """Write ``report.html`` into the run directory being written (before its ``run.json``).

    A report is a view of the run, not the run: if it cannot be built, a :class:`UserWarning`
    says why and the run is written without it (:func:`write_report` rebuilds it later);
    the fit is never lost for its report. Returns the file written, or None.
    """
    path = Path(directory) / REPORT_FILE
    try:
        write_text(path, run_report_html(directory, record, clean, clean_label))
    except Exception as e:  # noqa: BLE001 - any failure of the view must leave the run intact
        path.unlink(missing_ok=True)
        warnings.warn(f"{REPORT_FILE} was not written ({type(e).__name__}: {e}); the run is complete without it")
        return None
    return path


def write_report(directory: str | Path) -> Path:
    """Build ``DIR/report.html`` for a run directory or an experiment's folder; return its path.

    A run directory (a ``run.json`` of a ``denoise``/``restore`` run) gets its run report,
    the clean image read again from where its record names it; any other folder gets the
    folder report of its verdict, tables and figures. A ``report.html`` not written by
    dipscope is never replaced.

    Raises
    ------
    DipscopeError
        When ``directory`` is missing or not a folder, holds a ``run.json`` not of a finished
        dipscope ``denoise``/``restore`` run and nothing else to show, holds nothing to
        report, or already has a ``report.html`` of its own.
    """
    directory = Path(directory)
    if not directory.is_dir():
        what = "does not exist" if not directory.exists() else "is not a folder"
        raise DipscopeError(f"{directory} {what}; give a run directory or an experiment's folder")
    target = directory / REPORT_FILE
    _check_replaceable(target)
    record = read_record(directory)
    if is_dipscope_run(directory) and is_restore_record(record):
        assert record is not None
        clean, label = clean_from_record(record)
        text = run_report_html(directory, record, clean, label)
    elif (directory / RUN_FILE).exists() and not has_content(directory):
        raise DipscopeError(f"{directory / RUN_FILE} is not the record of a finished dipscope run")
    elif has_content(directory):
        text = folder_report_html(directory)
    else:
        raise DipscopeError(f"{directory} holds nothing to report: no run.json, README.md, tables (.md, .csv) "
                            "or figures")
    try:
        write_text(target, text)
    except OSError as e:
        raise DipscopeError(f"cannot write {target}: {e.strerror or e}") from None
    return target


def _check_replaceable(target: Path) -> None:
    """Refuse to overwrite a ``report.html`` that dipscope did not write (or a folder of that name)."""
    if not target.exists() and not target.is_symlink():
        return
    if not target.is_file():
        raise DipscopeError(f"{target} exists and is not a file")
    try:
        head = target.read_text(errors="replace")[:2000]
    except OSError as e:
        raise DipscopeError(f"cannot read {target}: {e.strerror or e}") from None
    if f'<meta name="generator" content="{GENERATOR}">' not in head:
        raise DipscopeError(f"{target} exists and was not written by dipscope; move it away to build the report")
