"""Bernoulli, discretized logistic (and mixture) and discretized Gaussian log-masses."""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import expit, log_ndtr, ndtr

from kexue_jax._src.testing import assert_eager_jit_vmap
from kexue_jax.likelihoods import (
    bernoulli_log_prob,
    discretized_gaussian_log_prob,
    discretized_logistic_log_prob,
    discretized_logistic_mean,
    discretized_logistic_mixture_log_prob,
    discretized_logistic_sample,
)

SEEDS = st.integers(0, 2**31 - 1)
RANGES = st.sampled_from([(-1.0, 1.0), (0.0, 1.0)])
BINS = st.sampled_from([2, 16, 256])
# Normalisation: the sum of num_bins float32 probabilities, each with relative rounding ~1e-7
# (and a few ulps from softplus/log1p), cannot be closer to 1 than ~num_bins * 1e-7.
NORM_ATOL = 5e-5


def _levels(num_bins, low, high):
    return jnp.linspace(low, high, num_bins, dtype=jnp.float32)


def _dist_params(seed, n, *, log_scale_range=(-8.0, 2.0)):
    k1, k2 = jax.random.split(jax.random.key(seed))
    loc = jax.random.uniform(k1, (n,), minval=-2.0, maxval=2.0)
    log_scale = jax.random.uniform(k2, (n,), minval=log_scale_range[0], maxval=log_scale_range[1])
    return loc, log_scale


def _all_levels_log_prob(fn, loc, log_scale, num_bins, low, high):
    """[n, num_bins] log-masses of every level under each of the n distributions."""
    v = _levels(num_bins, low, high)
    n = loc.shape[0]
    xs = jnp.broadcast_to(v[None, :], (n, num_bins))
    return fn(xs, jnp.broadcast_to(loc[:, None], xs.shape), jnp.broadcast_to(log_scale[:, None], xs.shape),
              num_bins=num_bins, low=low, high=high)


# -- Bernoulli ---------------------------------------------------------------------------------

def test_bernoulli_normalised_and_stable_for_extreme_logits():
    logits = jnp.array([-1e4, -50.0, -3.0, 0.0, 0.7, 50.0, 1e4], jnp.float32)
    lp1 = bernoulli_log_prob(jnp.ones_like(logits), logits)
    lp0 = bernoulli_log_prob(jnp.zeros_like(logits), logits)
    assert bool(jnp.all(jnp.isfinite(lp1))) and bool(jnp.all(jnp.isfinite(lp0)))
    np.testing.assert_allclose(jnp.logaddexp(lp0, lp1), 0.0, atol=1e-6)
    l64 = np.asarray(logits, np.float64)
    np.testing.assert_allclose(lp1, -np.logaddexp(0.0, -l64), rtol=1e-6, atol=1e-6)
    grads = jax.grad(lambda l: jnp.sum(bernoulli_log_prob(jnp.ones_like(l), l)))(logits)
    assert bool(jnp.all(jnp.isfinite(grads)))


# -- discretized logistic ----------------------------------------------------------------------

@settings(deadline=None, max_examples=12)
@given(seed=SEEDS, num_bins=BINS, bounds=RANGES)
def test_discretized_logistic_is_normalised(seed, num_bins, bounds):
    low, high = bounds
    loc, log_scale = _dist_params(seed, 8, log_scale_range=(-9.0, 3.0))
    lp = _all_levels_log_prob(discretized_logistic_log_prob, loc, log_scale, num_bins, low, high)
    assert lp.dtype == jnp.float32
    np.testing.assert_allclose(jnp.sum(jnp.exp(lp), axis=-1), 1.0, atol=NORM_ATOL)


@settings(deadline=None, max_examples=12)
@given(seed=SEEDS, bounds=RANGES)
def test_discretized_logistic_matches_float64_reference(seed, bounds):
    low, high = bounds
    num_bins = 256
    loc, log_scale = _dist_params(seed, 6)
    lp = np.asarray(_all_levels_log_prob(discretized_logistic_log_prob, loc, log_scale, num_bins, low, high))
    v = np.linspace(low, high, num_bins)
    hw = (high - low) / (2 * (num_bins - 1))
    mu, s = np.asarray(loc, np.float64)[:, None], np.exp(np.asarray(log_scale, np.float64))[:, None]
    upper = np.where(np.arange(num_bins) == num_bins - 1, 1.0, expit((v + hw - mu) / s))
    lower = np.where(np.arange(num_bins) == 0, 0.0, expit((v - hw - mu) / s))
    with np.errstate(divide="ignore"):
        ref = np.log(upper - lower)
    # float64 differences are themselves accurate only while the mass is not tiny.
    ok = ref > -30.0
    np.testing.assert_allclose(lp[ok], ref[ok], atol=2e-4, rtol=1e-4)
    assert np.all(lp[~ok] < -25.0)


def _grid(log_scales, locs):
    x = jnp.array([-1.0, -1.0 + 2 / 255, 0.0, 1.0], jnp.float32)
    ls, mu, xs = np.meshgrid(np.asarray(log_scales, np.float32), np.asarray(locs, np.float32), np.asarray(x))
    return jnp.asarray(xs.ravel()), jnp.asarray(mu.ravel()), jnp.asarray(ls.ravel())


def _assert_finite_values_and_grads(fn, x, loc, log_scale):
    val = jax.jit(lambda a, m, s: fn(a, m, s, num_bins=256))(x, loc, log_scale)
    grad = jax.grad(lambda a, m, s: fn(a, m, s, num_bins=256), argnums=(1, 2))
    g_loc, g_ls = jax.jit(jax.vmap(grad))(x, loc, log_scale)
    bad = ~(jnp.isfinite(val) & jnp.isfinite(g_loc) & jnp.isfinite(g_ls))
    assert not bool(jnp.any(bad)), list(zip(np.asarray(loc)[bad], np.asarray(log_scale)[bad]))


def test_discretized_logistic_extreme_scales_are_finite_with_finite_grads():
    x, loc, log_scale = _grid([-30.0, -7.0, 0.0, 15.0, 80.0, 100.0], [-5.0, 0.0, 0.3, 5.0])
    _assert_finite_values_and_grads(discretized_logistic_log_prob, x, loc, log_scale)


@settings(deadline=None, max_examples=8)
@given(seed=SEEDS, k=st.sampled_from([1, 3]))
def test_mixture_is_normalised_and_reduces_to_one_component(seed, k):
    num_bins, low, high = 256, -1.0, 1.0
    keys = jax.random.split(jax.random.key(seed), 3)
    n = 4
    logits = jax.random.normal(keys[0], (n, k))
    loc = jax.random.uniform(keys[1], (n, k), minval=-1.5, maxval=1.5)
    log_scale = jax.random.uniform(keys[2], (n, k), minval=-6.0, maxval=0.0)
    v = _levels(num_bins, low, high)
    xs = jnp.broadcast_to(v[None, :], (n, num_bins))
    bc = lambda a: jnp.broadcast_to(a[:, None, :], (n, num_bins, k))  # noqa: E731
    lp = discretized_logistic_mixture_log_prob(xs, bc(logits), bc(loc), bc(log_scale), num_bins=num_bins)
    np.testing.assert_allclose(jnp.sum(jnp.exp(lp), axis=-1), 1.0, atol=NORM_ATOL)
    # k identical components (any weights) are the single distribution.
    same = discretized_logistic_mixture_log_prob(
        xs, bc(logits), bc(jnp.repeat(loc[:, :1], k, 1)), bc(jnp.repeat(log_scale[:, :1], k, 1)), num_bins=num_bins
    )
    single = _all_levels_log_prob(discretized_logistic_log_prob, loc[:, 0], log_scale[:, 0], num_bins, low, high)
    np.testing.assert_allclose(same, single, atol=1e-5)


@settings(deadline=None, max_examples=8)
@given(seed=SEEDS, bounds=RANGES)
def test_mean_is_within_half_a_level_of_the_discrete_mean(seed, bounds):
    low, high = bounds
    num_bins = 256
    loc, log_scale = _dist_params(seed, 16, log_scale_range=(-6.0, 1.0))
    lp = _all_levels_log_prob(discretized_logistic_log_prob, loc, log_scale, num_bins, low, high)
    exact = jnp.sum(jnp.exp(lp) * _levels(num_bins, low, high), axis=-1)
    approx = discretized_logistic_mean(loc, log_scale, low=low, high=high)
    half = (high - low) / (2 * (num_bins - 1))
    assert bool(jnp.all(jnp.abs(exact - approx) <= half + 1e-5)), float(jnp.max(jnp.abs(exact - approx)))


def test_sampler_frequencies_match_the_masses():
    """Empirical frequencies of n draws are within 5 binomial standard errors of the masses."""
    num_bins, n = 16, 40_000
    loc, log_scale = jnp.full((n,), 0.2), jnp.full((n,), -1.5)
    draws = discretized_logistic_sample(loc, log_scale, num_bins=num_bins, key=jax.random.key(0))
    v = np.asarray(_levels(num_bins, -1.0, 1.0))
    idx = np.rint((np.asarray(draws) + 1.0) / 2.0 * (num_bins - 1)).astype(int)
    np.testing.assert_allclose(np.asarray(draws), v[idx], atol=1e-6)  # draws are levels
    freq = np.bincount(idx, minlength=num_bins) / n
    p = np.exp(np.asarray(_all_levels_log_prob(discretized_logistic_log_prob, loc[:1], log_scale[:1], num_bins, -1.0, 1.0))[0])
    se = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(freq - p) <= 5 * se + 1e-4), np.max(np.abs(freq - p) / (se + 1e-12))


# -- discretized Gaussian ----------------------------------------------------------------------

@settings(deadline=None, max_examples=12)
@given(seed=SEEDS, num_bins=BINS, bounds=RANGES)
def test_discretized_gaussian_is_normalised(seed, num_bins, bounds):
    low, high = bounds
    loc, log_scale = _dist_params(seed, 8, log_scale_range=(-9.0, 6.0))
    lp = _all_levels_log_prob(discretized_gaussian_log_prob, loc, log_scale, num_bins, low, high)
    np.testing.assert_allclose(jnp.sum(jnp.exp(lp), axis=-1), 1.0, atol=NORM_ATOL)


@settings(deadline=None, max_examples=12)
@given(seed=SEEDS, log_scale_range=st.sampled_from([(-7.0, -2.0), (-2.0, 2.0), (3.0, 7.0)]))
def test_discretized_gaussian_matches_float64_reference(seed, log_scale_range):
    """Covers the log-CDF difference (small and moderate scales) and the midpoint rule (large)."""
    num_bins, low, high = 256, -1.0, 1.0
    loc, log_scale = _dist_params(seed, 6, log_scale_range=log_scale_range)
    lp = np.asarray(_all_levels_log_prob(discretized_gaussian_log_prob, loc, log_scale, num_bins, low, high))
    v = np.linspace(low, high, num_bins)
    hw = (high - low) / (2 * (num_bins - 1))
    mu, s = np.asarray(loc, np.float64)[:, None], np.exp(np.asarray(log_scale, np.float64))[:, None]
    a, b = (v + hw - mu) / s, (v - hw - mu) / s
    # Upper tail by symmetry so that float64 does not cancel: Phi(a) - Phi(b) = Phi(-b) - Phi(-a).
    upper_side = (a + b) > 0
    diff = np.where(upper_side, ndtr(-b) - ndtr(-a), ndtr(a) - ndtr(b))
    with np.errstate(divide="ignore"):
        ref = np.log(diff)
    ref[:, 0] = log_ndtr(a[:, 0])
    ref[:, -1] = log_ndtr(-b[:, -1])
    ok = ref > -30.0
    np.testing.assert_allclose(lp[ok], ref[ok], atol=2e-4, rtol=1e-4)


def test_discretized_gaussian_extreme_values_finite_grads():
    x, loc, log_scale = _grid([-20.0, -5.0, 0.0, 8.0, 40.0], [-3.0, 0.0, 3.0])
    _assert_finite_values_and_grads(discretized_gaussian_log_prob, x, loc, log_scale)


# -- shared ------------------------------------------------------------------------------------

def test_eager_jit_vmap():
    x = jnp.array([-1.0, 0.0, 1.0], jnp.float32)
    loc, log_scale = jnp.array([0.1, -0.2, 0.5]), jnp.array([-2.0, -3.0, -1.0])
    for fn in (discretized_logistic_log_prob, discretized_gaussian_log_prob):
        assert_eager_jit_vmap(lambda a, b, c, fn=fn: fn(a, b, c, num_bins=256), x, loc, log_scale)
    assert_eager_jit_vmap(bernoulli_log_prob, jnp.array([0.0, 1.0, 1.0]), loc)
    assert_eager_jit_vmap(
        lambda a, b, c, d: discretized_logistic_mixture_log_prob(a, b, c, d, num_bins=256),
        x, jnp.zeros((3, 2)), jnp.stack([loc, -loc], -1), jnp.stack([log_scale, log_scale], -1),
    )


def test_argument_errors():
    x = jnp.zeros((2, 3))
    with pytest.raises(ValueError, match="x and loc"):
        discretized_logistic_log_prob(x, jnp.zeros((2, 4)), jnp.zeros((2, 4)), num_bins=256)
    with pytest.raises(ValueError, match="num_bins"):
        discretized_logistic_log_prob(x, x, x, num_bins=1)
    with pytest.raises(ValueError, match="low < high"):
        discretized_gaussian_log_prob(x, x, x, num_bins=256, low=1.0, high=0.0)
    with pytest.raises(ValueError, match="logit_probs"):
        discretized_logistic_mixture_log_prob(x, jnp.zeros((2, 4, 5)), jnp.zeros((2, 4, 5)), jnp.zeros((2, 4, 5)), num_bins=256)
    with pytest.raises(ValueError, match="x and logits"):
        bernoulli_log_prob(jnp.zeros(3), jnp.zeros(2))
    with pytest.raises(ValueError, match="logits"):
        bernoulli_log_prob(jnp.zeros(3), jnp.zeros(3, jnp.int32))
