"""Traceable results: ``dipscope --version`` and the commit in ``run.json``."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import dipscope

ROOT = Path(__file__).resolve().parents[1]


def _checkout_commit() -> str | None:
    """HEAD of the checkout this dipscope runs from, or None (not a checkout, or no git)."""
    if shutil.which("git") is None or Path(dipscope.__file__).resolve().parent != ROOT / "src" / "dipscope":
        return None
    p = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else None


def test_version_prints_the_release(cli) -> None:
    code, out, err = cli(["--version"])
    assert code == 0, err
    assert out.startswith(f"dipscope {dipscope.__version__}")
    version = (ROOT / "pyproject.toml").read_text().split('version = "', 1)[1].split('"', 1)[0]
    assert dipscope.__version__ == version
    commit = _checkout_commit()
    if commit is not None:
        assert f"commit {commit[:12]}" in out


def test_a_run_json_holds_the_commit(tmp_path: Path) -> None:
    commit = _checkout_commit()
    if commit is None:
        pytest.skip("not running from a git checkout of dipscope")
    image = np.tile(np.linspace(0, 1, 32, dtype=np.float32), (32, 1))
    r = dipscope.denoise(image, network=dipscope.SkipSpec().with_levels(3), runs=1, steps=2, device="cpu")
    record = json.loads((r.save(tmp_path / "run") / "run.json").read_text())
    assert record["versions"]["dipscope"] == dipscope.__version__
    assert record["versions"]["dipscope_commit"] == commit
    changed = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                             capture_output=True, text=True).stdout.strip() != ""
    assert record["versions"]["dipscope_tree_changed"] is changed


def test_no_git_gives_no_commit(monkeypatch) -> None:
    from dipscope import runtime

    monkeypatch.setattr(runtime, "_SOURCE", None)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert runtime.source_commit() == {}
    monkeypatch.setattr(runtime, "_SOURCE", None)  # the next caller asks git again
