"""The documentation: the site builds with warnings as errors, the tutorials run, the
docstrings' Examples hold, and the pages state findings rather than a progress log."""

from __future__ import annotations

import doctest
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("*.py"))

#: Modules whose ``>>>`` Examples run as doctests (each must hold at least one).
DOCTEST_MODULES = ["dipscope.metrics", "dipscope.spectral.bands", "dipscope.spectral.spectra",
                   "dipscope.spectral.measures", "dipscope.physics.operators", "dipscope.physics.noise",
                   "dipscope.presets", "dipscope.gp"]


def test_docs_site_builds_strict(tmp_path: Path) -> None:
    """``mkdocs build --strict``: a broken link, a missing page or a docstring that does not
    parse fails it (the command line reference is generated from the typer app)."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    cli = (tmp_path / "site" / "cli" / "index.html").read_text()
    for command in ("dipscope denoise", "dipscope restore", "dipscope experiment denoise-table", "--stop"):
        assert command in cli, command
    assert "Examples" in (tmp_path / "site" / "api" / "spectral" / "index.html").read_text()
    for claim in range(1, 7):
        page = (tmp_path / "site" / "reproduction" / f"claim-{claim}" / "index.html").read_text()
        assert "<img" in page, f"claim {claim} embeds no figure"


@pytest.mark.parametrize("module", DOCTEST_MODULES)
def test_docstring_examples(module: str) -> None:
    """Every ``>>>`` line of the module's docstrings runs and prints what it says."""
    import torch

    threads = torch.get_num_threads()
    try:
        failed, attempted = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS
                                            | doctest.NORMALIZE_WHITESPACE, verbose=False)
    finally:
        torch.set_num_threads(threads)
    assert attempted > 0, f"{module} has no Examples"
    assert failed == 0


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_runs(path: Path) -> None:
    """The tutorial, read as a notebook by jupytext, runs cell by cell in a fresh kernel."""
    import jupytext
    from nbclient import NotebookClient

    notebook = jupytext.read(path)
    os.environ.setdefault("MPLBACKEND", "Agg")
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("dB" in o.get("text", "") or "ρ" in o.get("text", "") for o in outputs)


def test_tutorials_listed():
    assert {p.stem for p in TUTORIALS} == {"denoise_an_image", "spectral_bias", "forward_operator"}


# ---- the pages: findings, not a progress log ----------------------------------------------------

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "benchmarks").rglob("*.md")),
         *sorted(p for p in (ROOT / "results").rglob("*.md") if p != ROOT / "results" / "README.md")]

PROGRESS_WORDING = {
    "an issue number": re.compile(r"\bissues? #?\d+|(?<![\w&/#])#\d+\b", re.IGNORECASE),
    "a work session": re.compile(r"\b(?:work )?sessions?\b|\bwork period|\bthis period\b", re.IGNORECASE),
    "a dated status": re.compile(r"\bwhere (?:it|this|things) stands?\b|\bas of (?:today|now)\b|\b(?:today|yesterday)\b",
                                 re.IGNORECASE),
    "a progress date": re.compile(r"\b20\d\d-[01]\d-[0-3]\d\b"),
}


def progress_wording(text: str) -> list[str]:
    """What in ``text`` reads as a progress log: ``kind: line`` for each hit."""
    return [f"{kind}: {line.strip()[:100]}" for line in text.splitlines()
            for kind, pattern in PROGRESS_WORDING.items() if pattern.search(line)]


def test_progress_wording_patterns():
    for log in ("Where it stands (2026-12-03, after the run)", "fixed in issue 15", "see #12", "this session's run",
                "measured today"):
        assert progress_wording(log), log
    for finding in ("Chakrabarty & Maji (2019), arXiv:1912.08905", "| # | claim |", "[table](#the-table)",
                    "σ = 25, 1 000 steps, 27.50 dB", "&#8212;"):
        assert not progress_wording(finding), finding


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_state_findings_not_history(page: Path) -> None:
    assert not progress_wording(page.read_text(encoding="utf-8"))
