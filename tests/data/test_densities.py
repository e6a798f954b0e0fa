"""The 2-D densities: samplers, exact log-densities, their agreement, and the density datasets.

The grid checks use the midpoint rule with spacing h = 0.05 on [-6, 6]^2. For the smooth densities
(every one but the checkerboard is a Gaussian of width sigma >= 0.1 smeared along points or curves)
the midpoint rule is spectrally accurate: its error is of order exp(-2 pi^2 sigma^2 / h^2) < 1e-30,
and the mass beyond |x| = 6 is below 1e-50, so the grid sums are exact up to float32 round-off. The
checkerboard has hard edges at even coordinates; the midpoints sit at odd multiples of h/2 = 0.025,
never on an edge, and each side-2 square holds exactly 40 x 40 midpoints, so its grid sum is exact
cell counting: 8 squares x 1600 points x h^2 / 32 = 1.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue_jax.data import DENSITIES, density_dataset, load, log_density, sample_density
from kexue_jax.data import densities as dens
from kexue_jax.data.density_dataset import split_seed

H = 0.05
_AXIS = np.arange(-6.0 + H / 2, 6.0, H)
GRID = np.stack(np.meshgrid(_AXIS, _AXIS, indexing="ij"), axis=-1).reshape(-1, 2).astype(np.float32)
NUM_SAMPLES = 20_000

_jit_sample = jax.jit(sample_density, static_argnums=(0, 1))
_jit_log_density = jax.jit(log_density, static_argnums=0)


@pytest.fixture(scope="module")
def grid_density():
    """``{name: float64 density on GRID}``, computed once."""
    return {
        name: np.exp(np.asarray(_jit_log_density(name, GRID), np.float64)) for name in DENSITIES
    }


@pytest.fixture(scope="module")
def samples():
    return {
        name: np.asarray(_jit_sample(name, NUM_SAMPLES, key=jax.random.key(7)))
        for name in DENSITIES
    }


@pytest.mark.parametrize("name", DENSITIES)
def test_samples_are_finite_float32_in_range_and_jit_equals_eager(name, samples):
    eager = sample_density(name, 64, key=jax.random.key(3))
    jitted = _jit_sample(name, 64, key=jax.random.key(3))
    assert eager.shape == (64, 2) and eager.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(eager), np.asarray(jitted), rtol=1e-6, atol=1e-6)
    x = samples[name]
    assert np.all(np.isfinite(x)) and np.abs(x).max() < 6.0
    # every sample is in the support: finite log-density (the checkerboard's black squares)
    assert np.all(np.isfinite(np.asarray(_jit_log_density(name, x))))


@pytest.mark.parametrize("name", DENSITIES)
def test_log_density_jit_equals_eager_and_is_float32(name, samples):
    x = samples[name][:300] * 1.1
    eager = log_density(name, x)
    assert eager.shape == (300,) and eager.dtype == jnp.float32
    np.testing.assert_allclose(
        np.asarray(eager), np.asarray(_jit_log_density(name, x)), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("name", DENSITIES)
def test_density_integrates_to_one(name, grid_density):
    mass = grid_density[name].sum() * H * H
    # exact up to float32 round-off (see the module docstring); 1e-3 leaves room for that only
    assert abs(mass - 1.0) < 1e-3, mass


CELL = 5  # grid points per side of a chi-square cell: cells of 0.25 x 0.25


def _chi_square(density: np.ndarray, x: np.ndarray) -> tuple[float, int]:
    """Pearson's statistic of samples ``x`` against the cell masses of ``density`` on ``GRID``.

    Cells of 0.25 x 0.25 over [-6, 6]^2; cells expecting fewer than 5 samples (and samples outside
    the grid) are pooled into one bin. Returns the statistic and its degrees of freedom.
    """
    m = len(_AXIS) // CELL
    expected = len(x) * density.reshape(m, CELL, m, CELL).sum(axis=(1, 3)).ravel() * H * H
    cell = np.floor((x + 6.0) / (CELL * H)).astype(int)
    inside = np.all((cell >= 0) & (cell < m), axis=-1)
    observed = np.bincount(cell[inside, 0] * m + cell[inside, 1], minlength=m * m).astype(float)
    keep = expected >= 5.0
    obs = np.append(observed[keep], observed[~keep].sum() + (~inside).sum())
    exp = np.append(expected[keep], len(x) - expected[keep].sum())
    return float(np.sum((obs - exp) ** 2 / exp)), len(obs) - 1


def _chi_square_threshold(dof: int) -> float:
    # chi^2(dof) exceeds dof + 6 sqrt(2 dof) with probability < 1e-5 for these dof (~250-500)
    return dof + 6.0 * math.sqrt(2.0 * dof)


@pytest.mark.parametrize("name", DENSITIES)
def test_samples_follow_the_density_chi_square(name, grid_density, samples):
    chi2, dof = _chi_square(grid_density[name], samples[name])
    assert chi2 < _chi_square_threshold(dof), (chi2, dof)


def test_chi_square_detects_a_ten_percent_wider_noise(grid_density, samples):
    # The check above can fail: rings samples whose radial noise is 10% wider are rejected.
    x = samples["rings"]
    rho = np.linalg.norm(x, axis=-1, keepdims=True)
    radii = np.asarray(dens.RING_RADII)
    nearest = radii[np.argmin(np.abs(rho - radii[None]), axis=-1)][:, None]
    wide = x / rho * (nearest + 1.1 * (rho - nearest))
    chi2, dof = _chi_square(grid_density["rings"], wide)
    assert chi2 > _chi_square_threshold(dof), (chi2, dof)


@pytest.mark.parametrize("name", DENSITIES)
def test_mean_log_density_of_samples_is_minus_the_entropy(name, grid_density, samples):
    p = grid_density[name]
    neg_entropy = np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)) * H * H
    lp = np.asarray(_jit_log_density(name, samples[name]), np.float64)
    stderr = lp.std() / math.sqrt(len(lp))
    assert abs(lp.mean() - neg_entropy) < 5 * stderr + 1e-4, (lp.mean(), neg_entropy, stderr)


@pytest.mark.parametrize("name", ["moons", "spirals"])
def test_quadrature_matches_a_16x_finer_quadrature(name, samples):
    x = jnp.asarray(np.concatenate([samples[name][:1500], 1.3 * samples[name][1500:2000]]))
    ours = np.asarray(log_density(name, x))
    fine = np.asarray(dens._curve_log_density(name, x, 16 * dens.QUADRATURE_NODES[name]))
    assert np.max(np.abs(ours - fine)) < 1e-4
    if name == "spirals":
        # the comparison can fail: 8x fewer nodes than ours is visibly under-resolved
        coarse = np.asarray(dens._curve_log_density(name, x, dens.QUADRATURE_NODES[name] // 8))
        assert np.max(np.abs(coarse - fine)) > 1e-2


def test_rings_bessel_formula_matches_angular_quadrature():
    # p_r(x) = (1/2pi) int N(x; r u(theta), s^2 I) dtheta: the trapezoid rule is spectrally exact
    # for this periodic integrand, in float64 numpy, independent of the i0e closed form.
    x = np.array([[0.0, 0.0], [0.7, 0.2], [1.5, 0.0], [-2.0, 1.2], [0.0, -3.05], [3.5, 3.5]])
    theta = np.linspace(0, 2 * np.pi, 4096, endpoint=False)
    s2 = dens.RING_SIGMA**2
    total = 0.0
    for r in dens.RING_RADII:
        c = r * np.stack([np.cos(theta), np.sin(theta)], -1)
        d2 = np.sum((x[:, None] - c[None]) ** 2, -1)
        total = total + np.mean(np.exp(-d2 / (2 * s2)), -1) / (2 * np.pi * s2) / len(
            dens.RING_RADII
        )
    ours = np.exp(np.asarray(log_density("rings", jnp.asarray(x, jnp.float32)), np.float64))
    np.testing.assert_allclose(ours, total, rtol=1e-4, atol=1e-30)


def test_eight_gaussians_matches_the_mixture_formula():
    x = np.array([[0.0, 0.0], [2.8, 0.1], [-2.0, 2.0], [4.0, -4.0]])
    angles = np.arange(8) * np.pi / 4
    mu = dens.EIGHT_GAUSSIANS_RADIUS * np.stack([np.cos(angles), np.sin(angles)], -1)
    s2 = dens.EIGHT_GAUSSIANS_SIGMA**2
    p = np.mean(np.exp(-np.sum((x[:, None] - mu[None]) ** 2, -1) / (2 * s2)), -1) / (2 * np.pi * s2)
    ours = np.asarray(log_density("eight_gaussians", jnp.asarray(x, jnp.float32)), np.float64)
    np.testing.assert_allclose(ours, np.log(p), rtol=1e-5)


def test_checkerboard_is_minus_inf_off_the_black_squares():
    x = jnp.array([[-3.0, -3.0], [-1.0, -3.0], [0.5, 0.5], [2.5, 0.5], [4.5, 0.0], [0.0, -4.2]])
    lp = np.asarray(log_density("checkerboard", x))
    np.testing.assert_allclose(lp[[0, 2]], -math.log(32.0), rtol=1e-6)
    assert np.all(np.isneginf(lp[[1, 3, 4, 5]]))


@settings(deadline=None, max_examples=10)
@given(
    seed=st.integers(0, 2**31 - 1), num=st.sampled_from([1, 33]), name=st.sampled_from(DENSITIES)
)
def test_sampling_is_a_pure_function_of_the_key(seed, num, name):
    a = _jit_sample(name, num, key=jax.random.key(seed))
    b = _jit_sample(name, num, key=jax.random.key(seed))
    c = _jit_sample(name, num, key=jax.random.key(seed + 1))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert a.shape == (num, 2) and np.all(np.isfinite(np.asarray(a)))
    assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_density_functions_reject_bad_arguments():
    with pytest.raises(ValueError, match="name: expected one of"):
        sample_density("swiss_roll", 4, key=jax.random.key(0))
    with pytest.raises(ValueError, match="num: expected a non-negative"):
        sample_density("moons", -1, key=jax.random.key(0))
    with pytest.raises(ValueError, match="name: expected one of"):
        log_density("swiss_roll", jnp.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"x: expected shape \(\*, 2\), got \(3, 3\)"):
        log_density("moons", jnp.zeros((3, 3)))


@pytest.mark.parametrize("name", DENSITIES)
def test_density_dataset_is_fixed_and_splits_differ(name):
    train = load(name, split="train", num_examples=1000)
    test = load(name, split="test", num_examples=1000)
    again = load(name, split="train", num_examples=1000)
    x = train.arrays["x"]
    assert len(train) == 1000 and x.shape == (1000, 2) and x.dtype == np.float32
    assert train.info.features == {"x": ((2,), np.dtype(np.float32))}
    assert train.info.num_classes is None and train.info.num_bins is None
    np.testing.assert_array_equal(x, again.arrays["x"])
    assert not np.any(np.all(x[:, None] == test.arrays["x"][None], axis=-1))
    # the documented key; the loader's own jitted sampler (jit = eager is checked above)
    expected = density_dataset._sample(name, 1000, key=jax.random.key(split_seed(name, "train")))
    np.testing.assert_array_equal(x, np.asarray(expected))


def test_density_dataset_default_sizes():
    assert len(load("moons")) == 50_000
    assert len(load("moons", split="test")) == 10_000
