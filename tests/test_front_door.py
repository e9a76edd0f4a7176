"""The Python front door: ``dipscope.denoise``/``restore``/``add_noise`` on what a notebook
holds, and their agreement with the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import dipscope
from dipscope.errors import DipscopeError
from dipscope.images import write_image

SMALL = dict(network=dipscope.SkipSpec().with_levels(3), runs=1, steps=5, device="cpu")


def photo(side: int = 64) -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100:100 + side, 200:200 + side])


def test_denoise_of_a_uint8_array_equals_the_cli_byte_for_byte(tmp_path: Path, cli) -> None:
    img = photo()
    noisy = dipscope.add_noise(img, 25, seed=0)
    assert noisy.dtype == np.uint8 and noisy.shape == img.shape and not np.array_equal(noisy, img)
    r = dipscope.denoise(noisy, clean=img, steps=60, seed=0)
    assert r.image.dtype == np.uint8 and r.image.shape == img.shape
    assert r.psnr is not None and np.isfinite(r.psnr)
    assert len(r.history["psnr"]) > 0 and np.isfinite(r.history["psnr"]).all()
    assert len(r.runs) == 3 and [run["seed"] for run in r.runs] == [0, 1, 2]
    write_image(tmp_path / "noisy.png", noisy / 255.0)  # write_image takes [0, 1]: these are the same bytes
    write_image(tmp_path / "clean.png", img / 255.0)
    assert np.array_equal(iio.imread(tmp_path / "noisy.png"), noisy)
    code, _, err = cli(["denoise", str(tmp_path / "noisy.png"), "--noisy", "--clean", str(tmp_path / "clean.png"),
                        "--steps", "60", "--seed", "0", "--out", str(tmp_path / "run")])
    assert code == 0, err
    assert np.array_equal(iio.imread(tmp_path / "run" / "denoised.png"), r.image)


def test_the_result_comes_back_in_the_callers_kind(tmp_path: Path) -> None:
    from PIL import Image

    grey = photo()[..., 0]
    for given, check in [
        (grey, lambda out: out.dtype == np.uint8 and out.shape == grey.shape),
        (grey.astype(np.float32) / 255, lambda out: out.dtype == np.float32 and out.shape == grey.shape),
        (photo()[..., :1], lambda out: out.dtype == np.uint8 and out.shape == (64, 64, 1)),
        (torch.from_numpy(photo()).permute(2, 0, 1).double() / 255,
         lambda out: out.dtype == torch.float64 and out.shape == (3, 64, 64)),
        (Image.fromarray(photo()), lambda out: isinstance(out, Image.Image) and out.mode == "RGB"),
    ]:
        assert check(dipscope.add_noise(given, 10, seed=1))
        r = dipscope.denoise(given, **SMALL)
        assert check(r.image), type(given)
    saved = r.save(tmp_path / "run")
    assert (saved / "denoised.png").is_file() and (saved / "run.json").is_file()
    assert r.record["image"]["source"] == "pil" and r.record["status"] == "complete"


def test_add_noise_is_seeded_and_clipped() -> None:
    img = photo()
    a, b, c = (dipscope.add_noise(img, 25, seed=s) for s in (0, 0, 1))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    flat = dipscope.add_noise(np.ones((8, 8), np.float32), 50, seed=0)
    assert flat.max() <= 1 and flat.min() < 1


@pytest.mark.parametrize("bad, words", [
    ([[0.5, 0.5], [0.5, 0.5]], "noisy must be a NumPy array"),
    (np.zeros((3, 32, 32), np.float32), "pass a torch tensor"),
    (np.zeros((32, 32, 4), np.uint8), "C = 1 or 3"),
    (np.full((32, 32), 2.0), "[0, 1]"),
    (np.full((32, 32), np.nan), "not finite"),
    (np.zeros((32, 32), np.int64), "int64"),
    (torch.zeros(32, 32), "(C, H, W)"),
])
def test_bad_images_are_refused_naming_the_parameter(bad, words) -> None:
    with pytest.raises(DipscopeError) as e:
        dipscope.denoise(bad, **SMALL)
    assert words in str(e.value) and "--" not in str(e.value)


def test_bad_options_name_the_parameter_not_a_flag() -> None:
    img = photo()
    for kwargs, words in [({"runs": 0}, "runs"), ({"steps": 0}, "steps"), ({"seed": -1}, "seed"),
                          ({"sigma": float("nan")}, "sigma"), ({"stop": "never"}, "stop"),
                          ({"network": "cnn"}, "network"), ({"settings": {"learning_rate": 1}}, "learning_rate"),
                          ({"clean": img[:32]}, "clean")]:
        with pytest.raises(DipscopeError) as e:
            dipscope.denoise(img, **{**SMALL, **kwargs})
        assert words in str(e.value) and "--" not in str(e.value), str(e.value)


def test_restore_takes_an_operator_or_a_physics_like_object() -> None:
    img = photo().astype(np.float32) / 255
    clean = torch.from_numpy(img).permute(2, 0, 1).contiguous()
    mask = dipscope.Mask.random(clean.shape, 0.5, 0)
    r = dipscope.restore(clean * mask.mask, mask, clean=clean, **SMALL)
    assert r.task == "inpaint" and r.stopping["rule"] is None and r.image.shape == (3, 64, 64)

    class Halve:  # deepinv's Physics interface: A(x) and A_adjoint(y)
        def A(self, x: torch.Tensor) -> torch.Tensor:
            return x * 0.5

        def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
            return y * 0.5

    r = dipscope.restore(clean * 0.5, Halve(), **SMALL)
    assert r.task == "restore" and r.record["degradation"]["operator"] == "physicsoperator"
    with pytest.raises(DipscopeError, match="operator must be"):
        dipscope.restore(clean, "blur", **SMALL)


def test_plot_gives_a_figure_and_no_import_chooses_the_backend() -> None:
    code = ("import matplotlib; matplotlib.use('svg'); import dipscope.plots, dipscope.restoration, dipscope.cli; "
            "print(matplotlib.get_backend())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "svg"
    r = dipscope.denoise(photo(), clean=photo(), **SMALL)
    fig = r.plot()
    assert len(fig.axes) >= 4
