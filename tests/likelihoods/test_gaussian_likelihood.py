"""Diagonal Gaussian log-density and closed-form KL divergences."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue_jax._src.testing import assert_eager_jit_vmap
from kexue_jax.likelihoods import gaussian_kl, gaussian_log_prob, standard_normal_kl

SEEDS = st.integers(0, 2**31 - 1)


def _params(seed: int, shape: tuple[int, ...]):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    mean = jax.random.normal(k1, shape)
    log_var = jax.random.uniform(k2, shape, minval=-3.0, maxval=2.0)
    x = jax.random.normal(k3, shape) * 2.0
    return x, mean, log_var


@settings(deadline=None, max_examples=10)
@given(seed=SEEDS)
def test_log_prob_matches_float64_formula(seed):
    x, mean, log_var = _params(seed, (5, 3))
    x64, m64, lv64 = (np.asarray(a, np.float64) for a in (x, mean, log_var))
    ref = -0.5 * (np.log(2 * np.pi) + lv64 + (x64 - m64) ** 2 / np.exp(lv64))
    got = gaussian_log_prob(x, mean, log_var)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


@settings(deadline=None, max_examples=10)
@given(seed=SEEDS, d=st.sampled_from([1, 4]))
def test_kl_closed_form_equals_monte_carlo(seed, d):
    """KL(q||p) = E_q[log q - log p]; the estimate from n draws is within 5 standard errors."""
    kq, kp, kz = jax.random.split(jax.random.key(seed), 3)
    mean_q = jax.random.normal(kq, (d,))
    log_var_q = jax.random.uniform(kq, (d,), minval=-1.0, maxval=1.0)
    mean_p = jax.random.normal(kp, (d,))
    log_var_p = jax.random.uniform(kp, (d,), minval=-0.5, maxval=1.0)
    n = 20_000
    z = mean_q + jnp.exp(0.5 * log_var_q) * jax.random.normal(kz, (n, d))
    log_ratio = jnp.sum(
        gaussian_log_prob(z, jnp.broadcast_to(mean_q, z.shape), jnp.broadcast_to(log_var_q, z.shape))
        - gaussian_log_prob(z, jnp.broadcast_to(mean_p, z.shape), jnp.broadcast_to(log_var_p, z.shape)),
        axis=-1,
    )
    mc = float(jnp.mean(log_ratio))
    se = float(jnp.std(log_ratio)) / math.sqrt(n)
    closed = float(jnp.sum(gaussian_kl(mean_q, log_var_q, mean_p, log_var_p)))
    assert abs(closed - mc) < 5 * se + 1e-4, (closed, mc, se)


@settings(deadline=None, max_examples=10)
@given(seed=SEEDS)
def test_standard_normal_kl_is_the_special_case_and_nonnegative(seed):
    _, mean, log_var = _params(seed, (6,))
    zeros = jnp.zeros_like(mean)
    np.testing.assert_allclose(
        standard_normal_kl(mean, log_var), gaussian_kl(mean, log_var, zeros, zeros), rtol=1e-6, atol=1e-7
    )
    assert bool(jnp.all(standard_normal_kl(mean, log_var) >= 0.0))
    assert bool(jnp.all(gaussian_kl(mean, log_var, mean[::-1], log_var[::-1]) >= 0.0))
    np.testing.assert_allclose(gaussian_kl(mean, log_var, mean, log_var), 0.0, atol=1e-7)


def test_kl_is_accurate_near_the_prior():
    # 1/2 (e^l - l - 1) = l^2/4 + l^3/12 + ... = 2.50008e-9 at l = 1e-4. A naive exp(l) - l - 1 in
    # float32 is off by the rounding of exp(l) ~ 1 (6e-8, i.e. 20x the answer); expm1(l) - l is
    # off by the rounding of expm1(l) ~ 1e-4 (~6e-12 absolute, 1.2e-3 relative), hence rtol 5e-3.
    l = 1e-4
    kl = standard_normal_kl(jnp.zeros(1), jnp.array([l], jnp.float32))
    np.testing.assert_allclose(kl, 0.5 * (math.expm1(l) - l), rtol=5e-3)
    naive = 0.5 * (jnp.exp(jnp.float32(l)) - jnp.float32(l) - 1.0)
    assert abs(float(naive) - 0.5 * (math.expm1(l) - l)) > 0.5 * 2.5e-9


def test_eager_jit_vmap():
    x, mean, log_var = _params(0, (4,))
    assert_eager_jit_vmap(gaussian_log_prob, x, mean, log_var)
    assert_eager_jit_vmap(standard_normal_kl, mean, log_var)
    assert_eager_jit_vmap(gaussian_kl, mean, log_var, x, log_var[::-1])


def test_shape_errors_name_the_arguments():
    with pytest.raises(ValueError, match="mean and log_var"):
        standard_normal_kl(jnp.zeros((2, 3)), jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="x and mean"):
        gaussian_log_prob(jnp.zeros(3), jnp.zeros(4), jnp.zeros(4))
    with pytest.raises(ValueError, match="mean_q"):
        gaussian_kl(jnp.zeros(3), jnp.zeros(3), jnp.zeros(2), jnp.zeros(3))
