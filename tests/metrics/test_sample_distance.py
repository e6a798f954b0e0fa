"""MMD² and sliced Wasserstein: zero on identical sets, analytic values on shifted Gaussians, symmetry."""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue_jax.metrics import mmd, sliced_wasserstein

_mmd = jax.jit(mmd)
_sw = jax.jit(sliced_wasserstein, static_argnames="num_projections")


def _gauss(seed, n=1000, d=2):
    return jax.random.normal(jax.random.key(seed), (n, d), jnp.float32)


def test_mmd_of_identical_sets_is_about_zero_and_grows_with_the_shift():
    x, y = _gauss(0), _gauss(1)
    same = float(_mmd(x, y))
    # unbiased: an estimate of 0 with standard error O(1/n); a plug-in (biased) version would be ~1/n > 0
    assert abs(same) < 3e-3
    values = [float(_mmd(x, y + jnp.array([s, 0.0]))) for s in (0.5, 1.0, 2.0, 4.0)]
    assert values[0] > 5 * abs(same)
    assert all(a < b for a, b in itertools.pairwise(values)), values


def test_mmd_is_symmetric_and_unbiased_not_plug_in():
    x, y = _gauss(2, n=300), _gauss(3, n=200) + 0.5
    np.testing.assert_allclose(float(_mmd(x, y)), float(_mmd(y, x)), rtol=1e-5)
    # MMD² of a set with itself: the unbiased estimator drops the diagonal, so it is
    # mean_{i≠j} k - mean_{ij} k < 0 for distinct points (a plug-in estimate would give exactly 0)
    assert float(_mmd(x, x)) < 0.0


def test_mmd_with_one_bandwidth_matches_a_naive_double_loop():
    x = np.asarray(_gauss(4, n=6, d=3))
    y = np.asarray(_gauss(5, n=5, d=3)) + 0.3
    h = 0.7

    def k(a, b):
        return math.exp(-np.sum((a - b) ** 2) / (2 * h * h))

    kxx = sum(k(x[i], x[j]) for i in range(6) for j in range(6) if i != j) / 30
    kyy = sum(k(y[i], y[j]) for i in range(5) for j in range(5) if i != j) / 20
    kxy = sum(k(a, b) for a in x for b in y) / 30
    np.testing.assert_allclose(float(mmd(x, y, bandwidths=(h,))), kxx + kyy - 2 * kxy, rtol=1e-4, atol=1e-6)


@settings(deadline=None, max_examples=6)
@given(seed=st.integers(0, 2**31 - 1), shift=st.floats(0.5, 3.0), d=st.sampled_from([2, 3]))
def test_sliced_wasserstein_of_shifted_gaussians_is_norm_mu_over_sqrt_d(seed, shift, d):
    # W2^2 of the projections of N(0, I) and N(mu, I) on theta is <mu, theta>^2, whose mean over
    # the sphere is |mu|^2 / d. Same base noise for x and y (y = x + mu) removes the sampling
    # error of the 1-D W2, leaving only the Monte-Carlo error over 512 directions (~3% here).
    x = jax.random.normal(jax.random.key(seed), (2000, d), jnp.float32)
    mu = jnp.zeros((d,)).at[0].set(shift)
    sw = float(_sw(x, x + mu, num_projections=512, key=jax.random.key(seed + 1)))
    np.testing.assert_allclose(sw, shift / math.sqrt(d), rtol=0.08)
    # independent samples: the same value plus a small sampling error
    y = jax.random.normal(jax.random.key(seed + 2), (2000, d), jnp.float32) + mu
    sw_ind = float(_sw(x, y, num_projections=512, key=jax.random.key(seed + 1)))
    np.testing.assert_allclose(sw_ind, shift / math.sqrt(d), rtol=0.1, atol=0.03)


def test_sliced_wasserstein_is_symmetric_zero_on_itself_and_handles_unequal_sizes():
    x, y = _gauss(6, n=1000), _gauss(7, n=1000) + 1.0
    key = jax.random.key(0)
    np.testing.assert_allclose(float(_sw(x, y, key=key)), float(_sw(y, x, key=key)), rtol=1e-6)
    assert float(_sw(x, x, key=key)) == 0.0
    # unequal sizes: quantile interpolation; y is shifted by mu = (1, 1), so SW2 = sqrt(2)/sqrt(2) = 1
    sub = y[:400]
    np.testing.assert_allclose(float(_sw(x, sub, key=key)), float(_sw(sub, x, key=key)), rtol=1e-6)
    np.testing.assert_allclose(float(_sw(x, sub, num_projections=256, key=key)), 1.0, rtol=0.1)
    # the interpolation of a set repeated twice gives the same quantile function (up to edges)
    doubled = jnp.concatenate([y, y])
    np.testing.assert_allclose(float(_sw(x, doubled, key=key)), float(_sw(x, y, key=key)), rtol=0.02)


def test_errors_name_the_argument():
    x = jnp.zeros((10, 2))
    with pytest.raises(ValueError, match="y"):
        mmd(x, jnp.zeros((10, 3)))
    with pytest.raises(ValueError, match="y"):
        sliced_wasserstein(x, jnp.zeros((10, 3)), key=jax.random.key(0))
    with pytest.raises(ValueError, match="x"):
        mmd(jnp.zeros((10,)), x)
    with pytest.raises(ValueError, match="bandwidths"):
        mmd(x, x, bandwidths=(0.0,))
    with pytest.raises(ValueError, match="num_projections"):
        sliced_wasserstein(x, x, num_projections=0, key=jax.random.key(0))
