"""deepinv interoperability: a deepinv-shaped physics drives the fit, and DIP answers
``model(y, physics)``; the test with a real deepinv operator runs where deepinv imports."""

from __future__ import annotations

import pytest
import torch

from dipscope.errors import DipscopeError
from dipscope.fit import FitConfig, fit
from dipscope.interop import DeepImagePrior, PhysicsOperator
from dipscope.models import SkipSpec

SMALL = SkipSpec(channels_down=(8,) * 3, channels_up=(8,) * 3, channels_skip=(2,) * 3, in_channels=4)
CONFIG = FitConfig(steps=30, device="cpu", precision="fp32", observe_every=5)


class HalfSize:
    """Shaped like a deepinv physics: A averages 2×2 blocks, A_adjoint spreads them back."""

    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802 - deepinv's name
        return torch.nn.functional.avg_pool2d(x, 2)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return torch.nn.functional.interpolate(y, scale_factor=2, mode="nearest") / 4


def test_physics_operator_takes_its_domain_from_the_adjoint() -> None:
    op = PhysicsOperator(HalfSize())
    assert op.domain_shape((3, 16, 16)) == (3, 32, 32)
    with pytest.raises(DipscopeError, match="no A"):
        PhysicsOperator(object())


def test_fit_with_a_deepinv_shaped_physics_lowers_the_data_term() -> None:
    ramp = torch.linspace(0.1, 0.9, 16)
    y = (ramp[:, None] * ramp[None]).expand(3, 16, 16).contiguous()  # a smooth measurement
    r = fit(SMALL, y, CONFIG, operator=PhysicsOperator(HalfSize()), ssim=False)
    assert r.final.shape == (3, 32, 32)
    assert r.losses[-5:].mean() < 0.5 * r.losses[:5].mean()


def test_reconstructor_signature() -> None:
    y = torch.rand(2, 3, 16, 16)
    model = DeepImagePrior(SMALL, CONFIG, stop="none")
    x = model(y, HalfSize())
    assert x.shape == (2, 3, 32, 32) and len(model.results) == 2


@pytest.fixture()
def deepinv():
    try:
        import deepinv  # noqa: F401
    except Exception as e:  # ImportError, or a torchvision that does not load with this torch build
        pytest.skip(f"deepinv is not importable here ({type(e).__name__}: {e}); "
                    "install it with the pinned torch: pip install 'dipscope[deepinv]' -c <(echo torch==2.13.0)")
    return deepinv


def test_with_a_real_deepinv_operator(deepinv) -> None:
    torch.manual_seed(0)
    x = torch.rand(1, 3, 32, 32)
    physics = deepinv.physics.Inpainting(tensor_size=(3, 32, 32), mask=0.5)
    y = physics(x)
    model = DeepImagePrior(SMALL, CONFIG, stop="none")
    out = model(y, physics)
    assert out.shape == x.shape
    assert model.results[0].losses[-1] < model.results[0].losses[0]
