"""NNGP kernels (dipscope.gp): exact layer maps, and Monte-Carlo agreement with finite networks.

Monte-Carlo tests use seed 0 (chosen once) and the bound ``max_τ≤16 |Δc(τ)| ≤ 0.03`` derived in
:func:`_check_mc`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dipscope import gp
from dipscope.errors import DipscopeError
from dipscope.gp import Act, Concat, Conv, GPSpec, Norm, Resample, ops
from dipscope.models import SkipSpec, count_parameters
from dipscope.models.skip import build_skip


@pytest.fixture(autouse=True)
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# ----------------------------------------------------------------------------- exact layer maps
def _polar_expectation(phi, k11: float, k22: float, k12: float) -> float:
    """``E[φ(u)φ(v)]`` for positively homogeneous ``φ`` by a 1-D integral over the angle.

    With ``u = a r cos θ``, ``v = b r cos(θ − β)`` (``a² = k₁₁``, ``b² = k₂₂``, ``cos β = ρ``) and
    ``∫ r³ e^{−r²/2} dr / 2π = 1/π``: ``E = (1/π) ∫₀^{2π} φ(a cos θ) φ(b cos(θ − β)) dθ``.
    """
    a, b = math.sqrt(k11), math.sqrt(k22)
    beta = math.acos(k12 / (a * b))
    theta = np.linspace(0, 2 * np.pi, 2_000_001)
    g = phi(a * np.cos(theta)) * phi(b * np.cos(theta - beta))
    return float(np.trapezoid(g, theta) / np.pi)


@pytest.mark.parametrize("k11,k22,k12", [(1.0, 1.0, 0.0), (2.0, 0.5, 0.7), (1.0, 3.0, -1.2), (1.0, 1.0, 0.999)])
@pytest.mark.parametrize("alpha", [0.0, 0.2, 0.5])
def test_relu_and_leaky_relu_kernels_match_integral(k11: float, k22: float, k12: float, alpha: float) -> None:
    K = torch.tensor([[k11, k12], [k12, k22]], dtype=torch.float64)
    V = ops.leaky_relu(K, (2,), alpha) if alpha else ops.relu(K, (2,))
    phi = lambda x: np.where(x > 0, x, alpha * x)  # noqa: E731
    assert float(V[0, 1]) == pytest.approx(_polar_expectation(phi, k11, k22, k12), abs=1e-8)
    assert float(V[0, 0]) == pytest.approx(_polar_expectation(phi, k11, k11, k11 * (1 - 1e-12)), abs=1e-6)


def _conv_covariance(x: torch.Tensor, size: int, stride: int, pad: str) -> torch.Tensor:
    """``E_W[y yᵀ]`` of PyTorch's own convolution ``y = W * x`` (weights ``N(0, 1/(C|U|))``), exactly:
    ``y = M w`` is linear in the weights, with the columns of ``M`` the outputs for unit filters."""
    d = x.ndim - 1
    c = x.shape[0]
    mode = {"zero": "zeros", "reflection": "reflect", "circular": "circular"}[pad]
    conv = (torch.nn.Conv1d if d == 1 else torch.nn.Conv2d)(c, 1, size, stride, (size - 1) // 2, bias=False,
                                                            padding_mode=mode).double()
    cols = []
    for j in range(conv.weight.numel()):
        with torch.no_grad():
            conv.weight.zero_()
            conv.weight.view(-1)[j] = 1.0
            cols.append(conv(x[None])[0, 0].reshape(-1))
    M = torch.stack(cols, 1)
    out = conv(x[None]).shape[2:]
    return (M @ M.T / (c * size ** d)).reshape(tuple(out) * 2)


@pytest.mark.parametrize("pad", ["zero", "reflection", "circular"])
@pytest.mark.parametrize("size,stride", [(1, 1), (3, 1), (3, 2), (5, 2), (5, 3)])
def test_conv_map_equals_torch_convolution(pad: str, size: int, stride: int) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 11, generator=gen, dtype=torch.float64)
    K = x.T @ x / 3
    got, out = ops.conv(K, (11,), size, stride, pad, 1.0, 0.0)
    want = _conv_covariance(x, size, stride, pad)
    assert out == tuple(want.shape[:1])
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("pad", ["zero", "reflection", "circular"])
def test_conv_map_2d_equals_torch_convolution(pad: str) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 7, 6, generator=gen, dtype=torch.float64)
    K = torch.einsum("cab,cde->abde", x, x) / 2
    got, _ = ops.conv(K, (7, 6), 3, 2, pad, 1.0, 0.0)
    torch.testing.assert_close(got, _conv_covariance(x, 3, 2, pad), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind,factor", [("nearest", 2), ("nearest", 3), ("linear", 2), ("linear", 3),
                                         ("avg", 2), ("avg", 3), ("decimate", 2)])
def test_resample_matrix_matches_pytorch(kind: str, factor: int) -> None:
    n = 7
    basis = torch.eye(n, dtype=torch.float64)[:, None, :]  # n signals of length n
    if kind in ("nearest", "linear"):
        out = F.interpolate(basis, scale_factor=factor, mode=kind, align_corners=None if kind == "nearest" else False)
    elif kind == "avg":
        out = F.avg_pool1d(basis, factor, factor)
    else:
        out = basis[..., ::factor]
    torch.testing.assert_close(ops.resample_matrix(n, kind, factor), out[:, 0, :].T, rtol=0, atol=1e-14)


def test_bilinear_2d_is_separable_as_pytorch() -> None:
    H, W = 4, 5
    basis = torch.eye(H * W, dtype=torch.float64).reshape(H * W, 1, H, W)
    up = F.interpolate(basis, scale_factor=2, mode="bilinear", align_corners=False).reshape(H * W, -1).T
    K = torch.eye(H * W, dtype=torch.float64).reshape(H, W, H, W)
    got = ops.apply_separable(K, [ops.resample_matrix(H, "linear", 2), ops.resample_matrix(W, "linear", 2)])
    torch.testing.assert_close(got.reshape(4 * H * W, 4 * H * W), up @ up.T, rtol=0, atol=1e-13)


def _circular_spec(dims: int) -> GPSpec:
    return GPSpec((Conv(3, pad="circular", sigma_b2=0.1), Act("leakyrelu"), Resample("avg", 2),
                   Concat(((Conv(1, width=0.5, pad="circular"), Act("relu")),
                           (Conv(5, pad="circular"), Norm(), Act("relu")))),
                   Conv(3, stride=2, pad="circular"), Act("relu"), Resample("decimate", 2),
                   Conv(1, channels=1, pad="circular")), dims=dims, input="smooth", input_sigma=1.5)


@pytest.mark.parametrize("dims,shape", [(1, (64,)), (2, (16, 8))])
def test_stationary_fast_path_equals_full_kernel(dims: int, shape: tuple[int, ...]) -> None:
    spec = _circular_spec(dims)
    assert gp.stationary_reason(spec) is None
    K = gp.kernel(spec, shape)
    k = gp.stationary_kernel(spec, shape)
    out = tuple(k.shape)
    first = K[(0,) * dims]  # K(0, τ) = k(τ)
    torch.testing.assert_close(first, k, rtol=1e-10, atol=1e-12)
    # … and the full kernel really is stationary: K(t, t+τ) does not depend on t.
    n = math.prod(out)
    Kf = K.reshape(n, n)
    idx = torch.arange(n).reshape(out)
    shifted = torch.roll(idx, shifts=(1,) * dims, dims=tuple(range(dims))).reshape(-1)
    torch.testing.assert_close(Kf[shifted][:, shifted], Kf, rtol=1e-10, atol=1e-12)


def test_non_stationary_layers_are_refused() -> None:
    assert "upsampling" in gp.stationary_reason(GPSpec((Resample("nearest"), Conv(1, channels=1))))
    assert "padding" in gp.stationary_reason(gp.conv_relu(2))
    with pytest.raises(DipscopeError, match="no stationary kernel"):
        gp.stationary_kernel(gp.conv_relu(2), 32)


def test_unsupported_architectures_raise_one_line_errors() -> None:
    with pytest.raises(DipscopeError, match="odd filter size"):
        Conv(4)
    with pytest.raises(DipscopeError, match="max pooling"):
        gp.from_skip(SkipSpec(downsample="max"))
    with pytest.raises(DipscopeError, match="transposed"):
        gp.from_skip(SkipSpec(upsample="transposed"))
    with pytest.raises(DipscopeError, match="activation"):
        gp.from_skip(SkipSpec(act="elu"))
    with pytest.raises(DipscopeError, match="positions"):
        gp.kernel(gp.conv_relu(1), 8192)


@pytest.mark.parametrize("downsample,upsample", [("stride", "bilinear"), ("avg", "nearest")])
def test_from_skip_builds_the_same_network_as_models(downsample: str, upsample: str) -> None:
    """The finite network of the mapped spec has the same weights as ``build_skip`` (no bias, no BN)."""
    spec = SkipSpec(channels_down=(16, 8, 8), channels_up=(16, 16, 8), channels_skip=(4, 0, 4), in_channels=8,
                    bias=False, batchnorm=False, downsample=downsample, upsample=upsample, filter_down=(3, 5, 3))
    g = gp.from_skip(spec, dims=2)
    assert gp.parameter_count(g, width=16, in_channels=8) == count_parameters(build_skip(spec, 8, 1))
    n_conv = sum(isinstance(m, torch.nn.Conv2d) for m in build_skip(spec, 8, 1).modules())

    def convs(layers) -> int:
        return sum(convs(sum(x.branches, ())) if isinstance(x, Concat) else isinstance(x, Conv) for x in layers)

    assert convs(g.layers) == n_conv


# ----------------------------------------------------------------------------- analysis helpers
def test_spectrum_half_width_and_samples() -> None:
    K = torch.eye(32, dtype=torch.float64)
    freqs, S = gp.spectrum(K)
    assert freqs[-1] == 0.5 and np.allclose(S, 1.0)
    smooth = ops.input_kernel("smooth", (32,), 2.0)
    _, S2 = gp.spectrum(smooth)
    assert S2[0] > 5 and S2[-1] < 1e-3 and np.all(np.diff(S2) < 0)
    c = np.clip(1 - np.arange(40) / 8.0, 0.2, None)  # floor 0.2: halfway at c = 0.6, τ = 3.2
    assert gp.half_width(c) == pytest.approx(3.2)
    assert math.isnan(gp.half_width(np.ones(10)))
    draws = gp.sample_prior(smooth[:8, :8].contiguous(), 20_000, seed=0)
    emp = np.einsum("si,sj->ij", draws, draws) / len(draws)
    # 20 000 draws: the SE of each entry is ≤ √(2/20000) = 0.01; allow 5 SE.
    assert np.abs(emp - smooth[:8, :8].numpy()).max() < 0.05


# ----------------------------------------------------------------------------- Monte Carlo
def _check_mc(spec: GPSpec, shape, samples: int = 2000, width: int = 64, lag: int = 16) -> float:
    """Assert ``max_{τ ≤ lag} |ĉ(τ) − c(τ)| ≤ 0.03`` between S random networks and the NNGP.

    Bound. ``ĉ(τ) − c(τ)`` = Monte-Carlo noise + finite-width bias.
    (i) Noise: one entry of an empirical correlation from S Gaussian pairs has standard error
    ``(1 − c²)/√S ≤ 0.022`` at S = 2000; ``ĉ(τ)`` averages the ≥ 112 entries at lag τ, which can
    only lower it (the shared random offset of ReLU outputs cancels in ``k̄(τ)/k̄(0)``). Batch
    means (10 batches) measure 0.004–0.011 for these nets (results/gp/convergence.md); the test
    requires SE ≤ 0.01, the assumption of the bound, so a noisier estimate fails instead of
    passing by luck.
    (ii) Bias: the first correction to the NNGP is O(1/C). The benchmark leaves 0.0045 (conv-ReLU)
    and 0.0093 (encoder-decoder) at C = 32, S = 8000 (noise SE there 0.003–0.005 included),
    so ≈ 0.002 and ≈ 0.005 at C = 64.
    Sum: 0.03 ≈ 2.5 SE (SE = 0.01) + 0.005, i.e. ≥ 2.5 SE per lag — a per-lag false-failure
    probability ≤ 1.2 %; the 17 lags move together (their errors share the offset), so the
    chance for the maximum stays of that order, well below the union bound of 17 × 1.2 %.
    Measured: max |Δc| = 0.002–0.011 (printed with -s).
    """
    K = gp.kernel(spec, shape)
    c = gp.correlation(gp.stationarize(K, lag))
    mc = gp.monte_carlo(spec, shape, width=width, samples=samples, seed=0, max_lag=lag)
    err = float(np.abs(mc.c(lag) - c).max())
    se = float(mc.standard_error().max())
    print(f"{spec.name}: max|Δc| = {err:.4f}, batch SE = {se:.4f}")
    assert se <= 0.01 * math.sqrt(2000 / samples)
    assert err <= 0.03
    return err


def test_mc_conv_relu_depth_2() -> None:
    _check_mc(gp.conv_relu(2), 128)


def _enc_dec(**kw) -> SkipSpec:
    return SkipSpec(channels_down=(4,) * 3, channels_up=(4,) * 3, channels_skip=(1,) * 3, in_channels=None,
                    act="relu", batchnorm=False, pad="zero", sigmoid=False, **kw)


@pytest.mark.parametrize("upsample", ["bilinear", "nearest"])
def test_mc_encoder_decoder_3_levels(upsample: str) -> None:
    _check_mc(gp.from_skip(_enc_dec(upsample=upsample)), 128)


def test_mc_every_layer_1d() -> None:
    """LeakyReLU, reflection / circular / zero padding, stride, bias, BatchNorm (approximation),
    average pooling, decimation, nearest and linear upsampling, concatenation, smoothed input."""
    layers = (Conv(3, pad="reflection"), Act("leakyrelu", 0.2), Conv(3, stride=2, pad="circular"), Norm(),
              Act("relu"), Resample("avg", 2),
              Concat(((Conv(1, width=0.5), Act("relu")), (Conv(3), Act("relu"), Resample("decimate", 2),
                                                           Conv(3, sigma_b2=0.1), Act("relu"), Resample("nearest", 2)))),
              Conv(3, pad="reflection"), Act("leakyrelu"), Resample("linear", 4), Conv(1, channels=1))
    _check_mc(GPSpec(layers, input="smooth", input_sigma=3.0, name="every-layer"), 128)


def test_mc_2d_bilinear_batchnorm() -> None:
    layers = (Conv(3, pad="reflection"), Act("relu"), Conv(3, stride=2), Act("relu"), Resample("linear", 2),
              Conv(3), Norm(), Act("leakyrelu"), Conv(1, channels=1))
    _check_mc(GPSpec(layers, dims=2, name="2d"), (16, 16), lag=4)


def test_mc_dense_and_coordinate_networks() -> None:
    """DIP-Linear's output is white (c(τ>0) = 0); ReLUNet's is smooth in the coordinates."""
    _check_mc(gp.dense_net(1), 64, samples=1000)
    _check_mc(gp.coord_mlp(4), 64, samples=1000)
    assert np.allclose(gp.correlation(gp.stationarize(gp.kernel(gp.dense_net(2), 64)))[1:], 0.0)


# ----------------------------------------------------------------------------- experiment and CLI
def test_gp_prior_smoke_writes_summary_figures_and_resumes(tmp_path, capsys) -> None:
    from dipscope.experiments import gp_prior

    text = gp_prior.run(gp_prior.GPPriorConfig(profile="smoke"), tmp_path / "out")
    assert "## (a) conv-ReLU" in text and "| linear | 2 |" in text and "DIP-Linear" in text
    for part, png in [("a-conv-relu", "conv_relu.png"), ("b-encoder-decoder", "encoder_decoder.png"),
                      ("c-samples", "samples.png"), ("d-special-cases", "special_cases.png")]:
        assert (tmp_path / "out" / part / png).is_file()
        assert (tmp_path / "out" / part / "run.json").is_file()
    capsys.readouterr()
    gp_prior.run(gp_prior.GPPriorConfig(profile="smoke"), tmp_path / "out")
    assert capsys.readouterr().out.count("skipped") == 4


def test_gp_cli_commands(tmp_path, capsys) -> None:
    from dipscope.cli import main

    main(["gp", "kernel", "--model-spec", "conv-relu:2", "--length", "32", "--max-lag", "4", "-o", str(tmp_path / "k")])
    out = capsys.readouterr().out
    assert "| c(τ) | 1.000 |" in out and (tmp_path / "k" / "spectrum.csv").is_file()
    with pytest.raises(SystemExit) as e:
        main(["gp", "kernel", "--model-spec", "conv-relu:x"])
    assert e.value.code == 2 and "error: bad model spec" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["experiment", "gp-prior", "--out", str(tmp_path / "e"), "--profile", "nope"])
    assert e.value.code == 2
