"""Model families: parameter counts and tensor shapes of the reference configurations."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from dipscope.errors import DipscopeError
from dipscope.models import (LinearSpec, ReLUNetSpec, SkipSpec, build, count_parameters, estimate_memory,
                             spec_from_dict, spec_to_dict)
from dipscope.presets import PRESETS, default_runs, preset

STANDARD = SkipSpec(in_channels=32, channels_down=(128,) * 5, channels_up=(128,) * 5, channels_skip=(4,) * 5,
                    pad="reflection", upsample="bilinear")
STUDY = SkipSpec(in_channels=3, channels_down=(256,) * 5, channels_up=(256,) * 5, channels_skip=(4,) * 5,
                 pad="zero", upsample="bilinear")


def test_skip_parameter_counts() -> None:
    assert count_parameters(build(STANDARD, (3, 64, 64))) == 2_217_831
    assert count_parameters(build(STUDY, (3, 64, 64))) == 8_661_107


def original_skip_shapes(c_in: int, c_out: int, down: int, up: int, skip: int, levels: int) -> list[tuple[int, ...]]:
    """Parameter shapes of the original ``skip`` in module order, written from its layer order.

    Per level: the skip branch (1×1 conv, BN), the deeper branch (strided 3×3 conv, BN, 3×3
    conv, BN, then the next level), then BN of the concatenation, the 3×3 up conv, BN, the
    1×1 conv, BN; finally the 1×1 output conv.
    """

    def conv(ci: int, co: int, k: int) -> list[tuple[int, ...]]:
        return [(co, ci, k, k), (co,)]

    def bn(c: int) -> list[tuple[int, ...]]:
        return [(c,), (c,)]

    def level(i: int, depth: int) -> list[tuple[int, ...]]:
        k = up if i < levels - 1 else down
        shapes = conv(depth, skip, 1) + bn(skip)
        shapes += conv(depth, down, 3) + bn(down) + conv(down, down, 3) + bn(down)
        if i < levels - 1:
            shapes += level(i + 1, down)
        shapes += bn(skip + k) + conv(skip + k, up, 3) + bn(up) + conv(up, up, 1) + bn(up)
        return shapes

    return level(0, c_in) + conv(up, c_out, 1)


def test_skip_shapes_match_the_original_module_order() -> None:
    net = build(STANDARD, (3, 64, 64))
    ours = [tuple(p.shape) for p in net.parameters()]
    assert ours == original_skip_shapes(32, 3, 128, 128, 4, 5)


def test_linear_and_relunet_parameter_counts() -> None:
    assert count_parameters(build(LinearSpec(width=128, in_channels=3), (3, 64, 64))) == 3_471_872
    with torch.device("meta"):
        big = build(LinearSpec(width=2048, in_channels=3), (3, 64, 64))
    assert count_parameters(big) == 130_076_672
    linears = [m for m in build(LinearSpec(width=8, in_channels=3), (3, 64, 64)).modules()
               if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 21
    assert count_parameters(build(ReLUNetSpec(), (3, 64, 64))) == 527_875


@pytest.mark.parametrize("spec", [STANDARD, LinearSpec(width=16, levels=2), ReLUNetSpec(hidden=16, depth=3),
                                  ReLUNetSpec(hidden=16, depth=3, fourier_features=8)])
def test_output_shapes(spec) -> None:
    from dipscope.models import input_shape

    for shape in [(3, 64, 96), (1, 64, 64)]:
        net = build(spec, shape)
        z = torch.rand(1, *input_shape(spec, shape))
        out = net(z)
        assert out.shape == (1, *shape)
        assert 0 <= out.min() and out.max() <= 1


@pytest.mark.parametrize("upsample", ["nearest", "bilinear", "transposed"])
@pytest.mark.parametrize("downsample", ["stride", "avg", "max"])
def test_skip_options(upsample: str, downsample: str) -> None:
    spec = SkipSpec(in_channels=4, channels_down=(8, 8, 8), channels_up=(8, 8, 8), channels_skip=(2, 0, 2),
                    upsample=upsample, downsample=downsample, factor=(2, 4, 2), act="swish", pad="zero")
    assert spec.pad_multiple == 16 and spec.min_side == 32
    out = build(spec, (3, 32, 48))(torch.rand(1, 4, 32, 48))
    assert out.shape == (1, 3, 32, 48)


def test_no_batchnorm_and_activations() -> None:
    for act in ["relu", "elu", "leakyrelu", "none"]:
        spec = SkipSpec(in_channels=2, channels_down=(4, 4), channels_up=(4, 4), channels_skip=(1, 1),
                        batchnorm=False, act=act, sigmoid=False)
        net = build(spec, (1, 8, 8))
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
        assert net(torch.rand(1, 2, 8, 8)).shape == (1, 1, 8, 8)


def test_with_levels_and_bad_specs() -> None:
    assert STANDARD.with_levels(3).levels == 3 and STANDARD.with_levels(3).min_side == 16
    with pytest.raises(DipscopeError, match="one entry per level"):
        SkipSpec(channels_down=(8, 8), channels_up=(8,), channels_skip=(4, 4))
    with pytest.raises(DipscopeError, match="upsampling"):
        SkipSpec(upsample="cubic")
    with pytest.raises(DipscopeError, match="at least 2"):
        SkipSpec(factor=1)


def test_spec_round_trip_and_presets() -> None:
    for name in PRESETS:
        for family in ["skip", "linear", "relunet"]:
            spec, _ = preset(name, family)
            assert spec_from_dict(spec_to_dict(spec)) == spec
    spec, cfg = preset("ulyanov2018")
    assert spec == STANDARD and cfg.lr == 0.01 and cfg.steps == 3000 and cfg.ema == 0.99
    spec, cfg = preset("chakrabarty2019")
    assert count_parameters(build(spec, (3, 64, 64))) == 8_661_107 and cfg.lr == 0.001
    # dipscope's default: the ulyanov2018 fit and network with a 48-channel trunk, 3 runs (skip only)
    spec, cfg = preset("dipscope")
    assert cfg == preset("ulyanov2018")[1] and spec == replace(STANDARD, channels_down=(48,) * 5, channels_up=(48,) * 5)
    assert default_runs("dipscope") == 3 and default_runs("dipscope", "relunet") == 1
    assert default_runs("ulyanov2018") == 1 and default_runs("chakrabarty2019") == 1


def test_memory_estimate_without_allocating() -> None:
    huge = estimate_memory(LinearSpec(width=2048), (3, 512, 768))
    assert huge > 50 * 2**30  # tens of GB: refused on this machine
    small = estimate_memory(STANDARD, (3, 64, 64))
    assert 16 * 2_217_831 < small < 2 * 2**30


# --- the fast path's layers: same numbers, cheaper layout and dtype -----------------------------

def test_reflection_pad_keeps_bf16_under_autocast_with_the_same_values() -> None:
    from dipscope.models.skip import ReflectionPad

    x = torch.randn(1, 5, 6, 7).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = ReflectionPad(1)(x)
        theirs = torch.nn.ReflectionPad2d(1)(x)  # CPU autocast pads in fp32
    assert ours.dtype == torch.bfloat16 and theirs.dtype == torch.float32
    assert torch.equal(ours.float(), theirs)
    assert ours.is_contiguous(memory_format=torch.channels_last)
    y = torch.randn(2, 3, 5, 4)
    assert torch.equal(ReflectionPad(2)(y), torch.nn.ReflectionPad2d(2)(y))  # outside autocast: the same module


def test_upsampling_gradient_is_the_same_and_reaches_the_kernel_channels_last() -> None:
    """The upsampled map is concatenated with a skip branch, so its gradient comes back as a channel
    slice; the fast layer hands the kernel a channels-last copy — and the same gradient."""
    from dipscope.models.skip import FixedUpsample

    seen = []
    grads = []
    native = FixedUpsample(scale_factor=2, mode="bilinear", align_corners=False)
    native.native = True  # the hook path: PyTorch's kernel (bf16, other modes, the reference mode)
    for layer in (native, torch.nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)):
        torch.manual_seed(0)
        x = torch.randn(1, 6, 8, 10).contiguous(memory_format=torch.channels_last).requires_grad_(True)
        skip = torch.randn(1, 2, 16, 20).contiguous(memory_format=torch.channels_last)
        y = layer(x)
        y.register_hook(lambda g: seen.append(g.is_contiguous(memory_format=torch.channels_last)) or None)
        out = torch.cat([skip, y], dim=1)
        (out * torch.randn_like(out)).sum().backward()
        grads.append(x.grad)
    assert torch.allclose(grads[0], grads[1], rtol=1e-6, atol=1e-6)
    # hooks run in registration order: ours (channels-last) was registered before the test's hook
    assert seen == [True, False]


@pytest.mark.parametrize("shape", [(1, 5, 7, 9), (2, 3, 4, 4), (1, 4, 16, 12)])
def test_vectorised_adjoints_equal_pytorchs_backward(shape: tuple[int, ...]) -> None:
    """The hand-written backward passes of reflection padding (p = 1, 2) and ×2 bilinear
    upsampling give PyTorch's gradients (fp64: to rounding) and the same forward values."""
    import torch.nn.functional as F

    from dipscope.models.adjoints import reflection_pad, upsample2_bilinear

    torch.manual_seed(0)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    for p in (1, 2):
        g = torch.randn(*shape[:2], shape[2] + 2 * p, shape[3] + 2 * p, dtype=torch.float64)
        ours, theirs = reflection_pad(x, p), F.pad(x, (p,) * 4, mode="reflect")
        assert torch.equal(ours, theirs)
        a, = torch.autograd.grad(ours, x, g)
        b, = torch.autograd.grad(theirs, x, g)
        assert torch.allclose(a, b, rtol=0, atol=1e-12)
    g = torch.randn(*shape[:2], 2 * shape[2], 2 * shape[3], dtype=torch.float64)
    ours, theirs = upsample2_bilinear(x), F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.equal(ours, theirs)
    a, = torch.autograd.grad(ours, x, g)
    b, = torch.autograd.grad(theirs, x, g)
    assert torch.allclose(a, b, rtol=0, atol=1e-12)


def test_fast_layers_keep_channels_last_and_reference_mode_turns_them_off() -> None:
    from dipscope.models import SkipSpec, build, use_native_kernels
    from dipscope.models.skip import FixedUpsample, ReflectionPad

    x = torch.randn(1, 6, 8, 10).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    up = FixedUpsample(scale_factor=2, mode="bilinear", align_corners=False)
    up(x).sum().backward()
    assert x.grad is not None and x.grad.is_contiguous(memory_format=torch.channels_last)
    net = build(SkipSpec(in_channels=4, channels_down=(8, 8), channels_up=(8, 8), channels_skip=(2, 2),
                         pad="reflection"), (3, 16, 16))
    layers = [m for m in net.modules() if isinstance(m, (ReflectionPad, FixedUpsample))]
    assert layers and not any(m.native for m in layers)
    use_native_kernels(net)
    assert all(m.native for m in layers)
