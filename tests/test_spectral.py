"""Analytic tests of dipscope.spectral (tiny arrays, no fitting)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dipscope.errors import DipscopeError
from dipscope.spectral import (
    band_edges,
    band_energy,
    band_magnitude_error,
    band_masks,
    band_relative_error,
    first_crossing,
    frequency_band_correspondence,
    low_error_radius,
    power_spectrum,
    radial_frequency,
    radial_power_spectrum,
    spearman_rho,
)


def _rng_image(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=g, dtype=torch.float64)


# ---------------------------------------------------------------- grid, edges, masks


def test_radial_frequency_layout_and_range() -> None:
    r = radial_frequency(8, 6)
    assert r.shape == (8, 6) and r.dtype == torch.float64
    assert r[0, 0] == 0.0
    assert r[4, 0] == 0.5 and r[0, 3] == 0.5  # Nyquist rows/columns for even sizes
    assert r.max() <= 0.5 * math.sqrt(2) + 1e-15
    assert math.isclose(float(r[4, 3]), 0.5 * math.sqrt(2))


def test_band_edges_equal_width() -> None:
    e = band_edges(8)
    assert e.shape == (9,)
    assert torch.allclose(e, torch.arange(9, dtype=torch.float64) / 16)
    assert e[0] == 0.0 and e[-1] == 0.5
    with pytest.raises(DipscopeError):
        band_edges(0)


@pytest.mark.parametrize("size", [(64, 64), (67, 93), (1, 1), (2, 5)])
@pytest.mark.parametrize("edges", [None, 3, [0.0, 0.05, 0.3, 0.5]])
def test_masks_partition_grid(size: tuple[int, int], edges: object) -> None:
    rings, corners = band_masks(*size, edges)
    assert rings.dtype == torch.bool and corners.dtype == torch.bool
    assert rings.shape[1:] == size and corners.shape == size
    count = rings.sum(dim=0) + corners
    assert bool((count == 1).all())


def test_mask_boundary_conventions() -> None:
    rings, corners = band_masks(16, 16, 8)
    assert rings[0, 0, 0]  # DC in ring 0
    assert rings[-1, 8, 0] and rings[-1, 0, 8]  # r = 0.5 in the last ring
    assert corners[8, 8]  # r = sqrt(2)/2 is a corner
    # r = 1/16 exactly (an interior edge) belongs to the ring below it
    assert rings[0, 1, 0] and not rings[1, 1, 0]


@pytest.mark.parametrize(
    "bad",
    [[0.1, 0.5], [0.0, 0.4], [0.0, 0.3, 0.2, 0.5], [0.0, 0.2, 0.2, 0.5], [0.5], [[0.0, 0.5]], 0, 2.5, [0.0, float("nan"), 0.5]],
)
def test_bad_edges_raise(bad: object) -> None:
    with pytest.raises(DipscopeError):
        band_masks(8, 8, bad)


# ---------------------------------------------------------------- power and band energy


def test_parseval() -> None:
    x = _rng_image(3, 12, 9)
    p = power_spectrum(x)
    assert p.shape == x.shape
    assert abs(float((x**2).sum() - p.sum())) < 1e-10
    # band energies partition the energy too
    assert torch.allclose(band_energy(x).sum(-1), (x**2).sum(dim=(-2, -1)), atol=1e-10)


def test_sinusoid_energy_in_its_ring() -> None:
    n = 64
    col = torch.arange(n, dtype=torch.float64)
    x = (0.5 + 0.25 * torch.cos(2 * math.pi * 10 * col / n)).expand(n, n)[None]  # f = 10/64
    e = band_energy(x)  # 8 rings of width 1/16: 10/64 = 0.156 is in ring 2
    assert e.shape == (1, 9)
    ac_energy = float(((x - x.mean()) ** 2).sum())
    assert math.isclose(float(e[0, 2]), ac_energy, rel_tol=1e-12)
    assert math.isclose(float(e[0, 0]), float(x.mean() ** 2 * n * n), rel_tol=1e-12)
    others = [k for k in range(9) if k not in (0, 2)]
    assert float(e[0, others].abs().max()) < 1e-10


def test_nyquist_in_last_ring_and_checkerboard_in_corner() -> None:
    n = 16
    idx = torch.arange(n)
    stripes = ((-1.0) ** idx).to(torch.float64).expand(n, n)[None]  # f = (0, 0.5)
    e = band_energy(stripes)
    assert math.isclose(float(e[0, 7]), n * n, rel_tol=1e-12)
    assert float(e[0, :7].abs().max()) < 1e-10 and abs(float(e[0, 8])) < 1e-10

    checker = ((-1.0) ** (idx[:, None] + idx[None, :])).to(torch.float64)[None]  # (0.5, 0.5)
    e = band_energy(checker)
    assert math.isclose(float(e[0, 8]), n * n, rel_tol=1e-12)
    assert float(e[0, :8].abs().max()) < 1e-10


def test_radial_power_spectrum() -> None:
    n = 32
    col = torch.arange(n, dtype=torch.float64)
    x = torch.cos(2 * math.pi * 4 * col / n).expand(n, n)[None].repeat(3, 1, 1)  # f = 4/32
    centres, power = radial_power_spectrum(x)
    assert centres.shape == (16,) and power.shape == (16,)
    assert torch.allclose(centres, (torch.arange(16, dtype=torch.float64) + 0.5) / 32)
    # 4/32 = 0.125 is the right edge of bin 3 = (3/32, 4/32]
    assert int(torch.argmax(power)) == 3
    assert float(power[torch.arange(16) != 3].abs().max()) < 1e-10
    # batched, grey 2-D input, and an explicit bin count
    _, pb = radial_power_spectrum(torch.stack([x, 2 * x]), n_bins=16)
    assert pb.shape == (2, 16) and torch.allclose(pb[1], 4 * pb[0])
    _, pg = radial_power_spectrum(x[0].numpy())
    assert torch.allclose(pg, power)


# ---------------------------------------------------------------- relative errors


def test_lowpass_relative_error() -> None:
    x0 = _rng_image(3, 32, 32)
    keep = radial_frequency(32, 32) <= 0.2
    x = torch.fft.ifft2(torch.fft.fft2(x0) * keep).real
    e = band_relative_error(x, x0)  # rings of width 1/16: rings 0..2 end at 0.1875 < 0.2
    assert e.shape == (9,)
    assert float(e[:3].max()) < 1e-10
    assert bool((e[3:] > 0).all())
    assert torch.allclose(e[4:], torch.ones(5, dtype=torch.float64))  # nothing left above 0.25


def test_relative_error_batched_unbatched_numpy() -> None:
    x0 = _rng_image(3, 10, 11, seed=1)
    traj = x0 + 0.1 * _rng_image(4, 3, 10, 11, seed=2)
    batched = band_relative_error(traj, x0, edges=4)
    assert batched.shape == (4, 5)
    for t in range(4):
        assert torch.allclose(batched[t], band_relative_error(traj[t], x0, edges=4))
    from_numpy = band_relative_error(traj.numpy(), x0.numpy(), edges=4)
    assert from_numpy.dtype == torch.float64 and torch.allclose(from_numpy, batched)
    per_channel = band_relative_error(traj.float(), x0, edges=4, reduce_channels=False)
    assert per_channel.shape == (4, 3, 5)
    assert torch.allclose(per_channel.mean(dim=1), batched, rtol=1e-5)
    assert torch.allclose(band_relative_error(x0, x0), torch.zeros(9, dtype=torch.float64))


def test_relative_error_zero_reference_energy_is_nan() -> None:
    x0 = torch.full((1, 8, 8), 0.5, dtype=torch.float64)  # only DC
    e = band_relative_error(x0 + 0.01 * _rng_image(1, 8, 8), x0, edges=4)
    assert not bool(torch.isinf(e).any())
    assert torch.isfinite(e[0]) and bool(torch.isnan(e[1:]).all())


def test_relative_error_shape_mismatch_raises() -> None:
    with pytest.raises(DipscopeError):
        band_relative_error(_rng_image(3, 8, 8), _rng_image(3, 8, 9))
    with pytest.raises(DipscopeError):
        band_relative_error(_rng_image(2, 3, 8, 8), _rng_image(1, 3, 8, 8))


def test_magnitude_error_ignores_a_circular_shift_the_complex_error_does_not() -> None:
    x0 = _rng_image(3, 16, 20, seed=3)
    shifted = torch.roll(x0, shifts=(5, -7), dims=(-2, -1))
    assert float(band_magnitude_error(shifted, x0, edges=4).abs().max()) < 1e-12
    assert float(band_relative_error(shifted, x0, edges=4)[1:4].min()) > 0.5


def test_magnitude_error_zero_for_equal_magnitudes_with_other_phases() -> None:
    x0 = _rng_image(1, 16, 16, seed=4)
    spectrum = torch.fft.fft2(x0)
    # a reflection through the origin conjugates the spectrum: same magnitudes, other phases
    flipped = torch.roll(torch.flip(x0, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))
    assert torch.allclose(torch.fft.fft2(flipped), spectrum.conj())
    assert float(band_magnitude_error(flipped, x0).abs().max()) < 1e-12
    assert float(band_relative_error(flipped, x0)[:8].max()) > 0.1


def test_magnitude_error_matches_numpy_and_bounds_the_complex_error() -> None:
    x0 = _rng_image(3, 12, 10, seed=5)
    traj = x0 + 0.3 * _rng_image(2, 3, 12, 10, seed=6)
    got = band_magnitude_error(traj, x0, edges=3, reduce_channels=False)
    r = np.sqrt(np.fft.fftfreq(12)[:, None] ** 2 + np.fft.fftfreq(10)[None, :] ** 2)
    bands = [r <= 1 / 6, (r > 1 / 6) & (r <= 2 / 6), (r > 2 / 6) & (r <= 0.5), r > 0.5]
    a0 = np.abs(np.fft.fft2(x0.numpy(), norm="ortho"))
    for t in range(2):
        a = np.abs(np.fft.fft2(traj[t].numpy(), norm="ortho"))
        for c in range(3):
            want = [((a[c] - a0[c]) ** 2)[b].sum() / (a0[c] ** 2)[b].sum() for b in bands]
            np.testing.assert_allclose(got[t, c].numpy(), want, rtol=1e-10)
    complex_error = band_relative_error(traj, x0, edges=3, reduce_channels=False)
    assert bool((got <= complex_error + 1e-12).all()) and bool((got < complex_error).any())
    assert torch.allclose(band_magnitude_error(traj, x0, edges=3), got.mean(dim=1))


def test_magnitude_error_refuses_mismatched_shapes_and_has_a_true_example() -> None:
    import doctest

    from dipscope.spectral import spectra

    with pytest.raises(DipscopeError):
        band_magnitude_error(_rng_image(3, 8, 8), _rng_image(3, 8, 9))
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    for test in finder.find(spectra.band_magnitude_error, "band_magnitude_error", globs=vars(spectra)):
        runner.run(test)
    assert runner.summarize(verbose=False).attempted >= 3 and runner.failures == 0


def test_low_error_radius_hand_built() -> None:
    # 4 equal rings (edges 0, .125, .25, .375, .5) + corner column
    table = torch.tensor(
        [
            [0.01, 0.02, 0.50, 0.01, 9.0],  # rings 0,1 pass -> 0.25
            [0.50, 0.01, 0.01, 0.01, 0.0],  # ring 0 fails -> 0
            [0.01, 0.01, 0.01, 0.09, 9.0],  # all pass (corner ignored) -> 0.5
            [0.01, float("nan"), 0.0, 0.0, 0.0],  # nan fails -> 0.125
            [0.01, 0.10, 0.0, 0.0, 0.0],  # not strictly below tau -> 0.125
        ],
        dtype=torch.float64,
    )
    r = low_error_radius(table, tau=0.1)
    assert r.shape == (5,)
    assert torch.allclose(r, torch.tensor([0.25, 0.0, 0.5, 0.125, 0.125], dtype=torch.float64))
    single = low_error_radius(table[0].numpy())
    assert single.ndim == 0 and float(single) == 0.25
    custom = low_error_radius([0.0, 0.0, 0.5, 0.0], edges=[0.0, 0.1, 0.3, 0.5], tau=0.1)
    assert float(custom) == 0.3
    with pytest.raises(DipscopeError):
        low_error_radius(table, edges=8)  # 8 rings vs 4 in the table
    with pytest.raises(DipscopeError):
        low_error_radius(table, tau=0.0)


# ---------------------------------------------------------------- FBC (Shi et al.)


def _fbc_reference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Straightforward NumPy transcription of the FBC definition, for one (C, H, W) pair."""

    def grey(a: np.ndarray) -> np.ndarray:
        if a.shape[0] == 3:
            return np.clip(0.2989 * a[0] + 0.587 * a[1] + 0.114 * a[2], 0, 1)
        return a[0]

    fx = np.abs(np.fft.fftshift(np.fft.fft2(grey(x))))
    fy = np.abs(np.fft.fftshift(np.fft.fft2(grey(y))))
    m = np.clip(fx / (fy + 1e-8), 0, 1)
    h, w = m.shape
    out = []
    prev = -1.0
    for s in (0.2, 0.4, 0.6, 0.8, 1.0):
        rad = (w // 2) * s
        vals = [
            m[i, j]
            for i in range(h)
            for j in range(w)
            if prev < math.hypot(i - h // 2, j - w // 2) <= rad + 1e-12
        ]
        out.append(np.mean(vals))
        prev = rad + 1e-12
    return np.array(out)


def test_fbc_identical_is_one_and_zero_is_zero() -> None:
    y = _rng_image(3, 20, 20, seed=3)
    fbc = frequency_band_correspondence(y, y)
    assert fbc.shape == (5,)
    assert torch.allclose(fbc, torch.ones(5, dtype=torch.float64), atol=1e-5)
    assert bool((fbc <= 1).all())
    assert torch.equal(frequency_band_correspondence(torch.zeros_like(y), y), torch.zeros(5, dtype=torch.float64))
    grey = y[:1]
    assert torch.allclose(frequency_band_correspondence(grey.numpy(), grey), torch.ones(5, dtype=torch.float64), atol=1e-5)


def test_fbc_matches_reference_and_batches() -> None:
    y = _rng_image(3, 13, 18, seed=4)  # odd height, width != height
    xs = _rng_image(2, 3, 13, 18, seed=5)
    fbc = frequency_band_correspondence(xs, y)
    assert fbc.shape == (2, 5)
    for t in range(2):
        ref = _fbc_reference(xs[t].numpy(), y.numpy())
        assert np.allclose(fbc[t].numpy(), ref, atol=1e-12)
    with pytest.raises(DipscopeError):
        frequency_band_correspondence(_rng_image(2, 8, 8), _rng_image(2, 8, 8))


# ---------------------------------------------------------------- statistics


def test_spearman_rho_ties() -> None:
    assert spearman_rho([1, 2, 3, 4], [10, 20, 30, 400]) == pytest.approx(1.0)
    assert spearman_rho(np.array([1, 2, 3]), torch.tensor([3.0, 2.0, 1.0])) == pytest.approx(-1.0)
    # ties get average ranks: ranks of a are (1, 2.5, 2.5, 4)
    ra = np.array([1, 2.5, 2.5, 4])
    rb = np.array([1, 2, 3, 4])
    expected = np.corrcoef(ra, rb)[0, 1]
    rho = spearman_rho([1, 2, 2, 3], [1, 2, 3, 4])
    assert isinstance(rho, float) and rho == pytest.approx(expected)
    with pytest.raises(DipscopeError):
        spearman_rho([1, 2], [1, 2, 3])


def test_first_crossing() -> None:
    table = torch.tensor(
        [[0.9, 0.5, 1.0], [0.05, 0.5, 1.0], [0.01, 0.09, float("nan")], [0.2, 0.0, 1.0]],
        dtype=torch.float64,
    )
    assert first_crossing(table, [0, 100, 200, 300], 0.1) == [100.0, 200.0, None]
    assert first_crossing(table[:, 0].numpy(), np.array([5, 6, 7, 8]), 0.5) == [6.0]
    with pytest.raises(DipscopeError):
        first_crossing(table, [0, 1], 0.1)
