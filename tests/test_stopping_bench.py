"""benchmarks/stopping.py: recordings name their preset, and a folder of one preset is not resumed with another."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "stopping.py"


def run_script(argv: list[str]) -> None:
    spec = importlib.util.spec_from_file_location("stopping_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["stopping_bench"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    old = sys.argv
    sys.argv = ["stopping.py", *argv]
    try:
        module.main()
    finally:
        sys.argv = old


def test_recording_keeps_its_preset_and_refuses_another(tmp_path: Path, capsys) -> None:
    common = ["--images", "skimage:astronaut", "--sigmas", "25", "--seeds", "1", "--steps", "20", "--crop", "64",
              "--snapshot-every", "0", "--device", "cpu", "--precision", "fp32", "--out", str(tmp_path)]
    run_script([*common, "--preset", "dipscope"])
    (record,) = (tmp_path / "runs").glob("*.json")
    meta = json.loads(record.read_text())
    assert meta["preset"] == "dipscope" and meta["steps"] == 20 and meta["shape"] == [3, 64, 64]
    capsys.readouterr()
    run_script([*common, "--preset", "dipscope"])  # resumed: nothing refitted, the table printed
    assert "astronaut" in capsys.readouterr().out and json.loads(record.read_text()) == meta
    with pytest.raises(SystemExit, match="another preset"):
        run_script([*common, "--preset", "ulyanov2018"])
