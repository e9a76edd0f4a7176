"""Shared fixtures: tiny textured test images from scikit-image's bundled data (no network)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

torch.set_num_threads(2)


def _chw(a: np.ndarray) -> torch.Tensor:
    a = a.astype(np.float32) / 255.0
    return torch.from_numpy(a[None] if a.ndim == 2 else np.moveaxis(a, -1, 0).copy())


@pytest.fixture(scope="session")
def textured_rgb() -> torch.Tensor:
    """A 64×64 crop of 'astronaut' holding hair, fabric and edges (not a smooth patch)."""
    return _chw(data.astronaut()[100:164, 200:264])


@pytest.fixture(scope="session")
def textured_grey() -> torch.Tensor:
    """A 64×64 crop of 'camera' (the coat, tripod and grass)."""
    return _chw(data.camera()[300:364, 200:264])


@pytest.fixture()
def cli(capsys: pytest.CaptureFixture[str]):
    """``cli(argv) -> (exit status, stdout, stderr)`` of ``dipscope argv``, run in this process."""
    from dipscope.cli import main

    def run(argv: list[str]) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main(argv)
            code = 0
        except SystemExit as e:
            code = int(e.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run

