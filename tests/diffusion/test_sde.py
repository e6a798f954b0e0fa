"""Forward SDEs (VP, VE, sub-VP): marginals vs simulation, the 9209 relation, the wrappers."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kexue_jax.diffusion import (
    VESDE,
    VPSDE,
    SubVPSDE,
    euler_maruyama,
    probability_flow,
    reverse_sde,
)
from kexue_jax.likelihoods import gaussian_log_prob

SDES = {"vp": VPSDE(), "subvp": SubVPSDE(), "ve": VESDE()}
X0 = np.array([1.5, -0.5], np.float32)


@pytest.mark.parametrize("name", sorted(SDES))
@given(t=st.floats(0.01, 1.0))
def test_diffusion_matches_marginal(name, t):
    """9209: for x_t = m x_0 + s eps, g^2 = d(s^2)/dt - 2 (d ln m/dt) s^2 and f = (d ln m/dt) x."""
    sde = SDES[name]
    m = lambda u: sde.marginal_coeffs(jnp.reshape(u, (1,)))[0][0]
    s2 = lambda u: jnp.square(sde.marginal_coeffs(jnp.reshape(u, (1,)))[1][0])
    tt = jnp.float32(t)
    dlogm = jax.grad(lambda u: jnp.log(m(u)))(tt)
    g2 = jax.grad(s2)(tt) - 2.0 * dlogm * s2(tt)
    np.testing.assert_allclose(float(jnp.square(sde.diffusion(jnp.array([tt]))[0])), float(g2), rtol=2e-3)
    x = jnp.ones((1, 2))
    np.testing.assert_allclose(np.asarray(sde.drift(x, jnp.array([tt]))), float(dlogm) * np.ones((1, 2)),
                               rtol=2e-3, atol=1e-6)


@functools.cache
def _simulate(name, n=20_000, steps=500, t_end=0.5):
    sde = SDES[name]
    x = jnp.broadcast_to(X0, (n, 2))
    if name == "ve":  # score_sde's marginal std sigma(t) assumes x(0) already carries sigma_min noise
        x = x + sde.sigma_min * jax.random.normal(jax.random.key(11), x.shape)
    ts = jnp.linspace(0.0, t_end, steps + 1)
    fn = jax.jit(lambda key: euler_maruyama(sde.drift, sde.diffusion, x, ts, key=key))
    return np.asarray(fn(jax.random.key(5)), np.float64)


@pytest.mark.parametrize("name", sorted(SDES))
def test_marginal_matches_forward_simulation(name):
    """20k Euler–Maruyama paths to t = 0.5: mean and std within 5 standard errors.

    EM bias (left-point g^2): relative variance error ~ (d ln g^2/dt) dt / 2 <= 17 * 1e-3 / 2 < 1%,
    below 5 SE of the std (5 / sqrt(2 n) = 2.5%).
    """
    n, t = 20_000, 0.5
    x = _simulate(name)
    mean, std = SDES[name].marginal(jnp.asarray(X0)[None], jnp.array([t]))
    mean, std = np.asarray(mean[0], np.float64), float(std[0])
    assert np.all(np.abs(x.mean(0) - mean) < 5 * std / math.sqrt(n))
    assert np.all(np.abs(x.std(0) / std - 1) < 5 / math.sqrt(2 * n))
    # The same check rejects the marginal of another SDE (VP with half the beta_max; VE with
    # sigma_max 25): its std differs by far more than 5 SE.
    other = {"vp": VPSDE(beta_max=10.0), "subvp": SubVPSDE(beta_max=10.0), "ve": VESDE(sigma_max=25.0)}[name]
    _, wrong_std = other.marginal(jnp.asarray(X0)[None], jnp.array([t]))
    assert np.any(np.abs(x.std(0) / float(wrong_std[0]) - 1) > 5 / math.sqrt(2 * n))


@pytest.mark.parametrize("name", sorted(SDES))
def test_wrappers_and_prior(name):
    sde = SDES[name]
    x = jax.random.normal(jax.random.key(0), (3, 2))
    t = jnp.array([0.1, 0.5, 0.9])
    score = lambda x, t: -2.0 * x
    g2 = np.asarray(jnp.square(sde.diffusion(t)))[:, None]
    f = np.asarray(sde.drift(x, t))
    np.testing.assert_allclose(np.asarray(reverse_sde(sde, score).drift(x, t)), f + 2 * g2 * np.asarray(x), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(probability_flow(sde, score).drift(x, t)), f + g2 * np.asarray(x), rtol=1e-5)
    z = sde.prior_sample((3, 2), key=jax.random.key(1))
    log_var = jnp.full_like(z, 2 * math.log(sde.prior_std()))
    want = jnp.sum(gaussian_log_prob(z, jnp.zeros_like(z), log_var), axis=1)
    np.testing.assert_allclose(np.asarray(sde.prior_log_prob(z)), np.asarray(want), rtol=1e-5)
    assert sde.prior_log_prob(z).dtype == jnp.float32


def test_sde_errors():
    with pytest.raises(ValueError, match="beta_min"):
        VPSDE(beta_min=0.0)
    with pytest.raises(ValueError, match="sigma_max"):
        VESDE(sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ValueError, match="t: expected a floating dtype"):
        VPSDE().diffusion(jnp.array([1]))
    with pytest.raises(ValueError, match="key"):
        euler_maruyama(VPSDE().drift, VPSDE().diffusion, jnp.zeros((2, 2)), jnp.linspace(0, 1, 3))
    with pytest.raises(ValueError, match="noise: expected shape"):
        euler_maruyama(VPSDE().drift, VPSDE().diffusion, jnp.zeros((2, 2)), jnp.linspace(0, 1, 3),
                       noise=jnp.zeros((3, 2, 2)))
