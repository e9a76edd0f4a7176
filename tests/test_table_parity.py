"""benchmarks/table_parity.py: the same runs of two denoising tables, compared run by run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from dipscope.experiments import denoise_table as dt
from dipscope.images import write_image

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "table_parity.py"


@pytest.fixture(scope="module")
def table_parity():
    spec = importlib.util.spec_from_file_location("table_parity", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["table_parity"] = module
    spec.loader.exec_module(module)
    return module


def _table(tmp_path: Path, image: torch.Tensor, name: str, noise_seed: int = 0) -> Path:
    path = tmp_path / "house.png"
    if not path.exists():
        write_image(path, image)
    out = tmp_path / name
    dt.run(dt.TableConfig(images=[str(path)], models=["dip"], runs=1, factor=1, profile="smoke", device="cpu",
                          precision="fp32", noise_seed=noise_seed, baselines=False), out)
    return out


def test_two_tables_are_compared_run_by_run_and_other_pairs_are_refused(tmp_path: Path, textured_rgb: torch.Tensor,
                                                                         table_parity, capsys) -> None:
    a = _table(tmp_path, textured_rgb, "a")
    b = _table(tmp_path, textured_rgb, "b")
    capsys.readouterr()
    assert table_parity.main([str(a), str(b), "--out", str(tmp_path / "parity.md")]) == 0
    rows, summary = table_parity.compare(a, b)
    assert [r["key"] for r in rows] == ["dip/house/run-0"]
    assert rows[0]["delta"] == 0.0  # the same seed in fp32 on one machine is the same run
    assert summary["dip"] == {"mean_abs": 0.0, "mean": 0.0, "n": 1}
    assert "mean |Δ| = 0.000 dB" in (tmp_path / "parity.md").read_text()
    other = _table(tmp_path, textured_rgb, "other", noise_seed=1)  # another noisy image
    capsys.readouterr()
    assert table_parity.main([str(a), str(other)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: house:") and err.count("\n") == 1
    assert table_parity.main([str(a), str(tmp_path / "missing")]) == 2
