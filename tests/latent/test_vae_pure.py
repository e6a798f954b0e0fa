"""The VAE's pure functions: reparameterisation, ELBO terms, IWAE bound, prior path."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue_jax._src.testing import assert_eager_jit_vmap
from kexue_jax.latent.vae import (
    binarize,
    elbo,
    iwae_bound,
    kl_to_standard_normal,
    log_importance_weight,
    prior_path,
    reparameterize,
)
from kexue_jax.likelihoods import gaussian_log_prob

SEEDS = st.integers(0, 2**31 - 1)


@settings(deadline=None, max_examples=8)
@given(seed=SEEDS)
def test_reparameterize_has_the_posterior_moments(seed):
    """n draws: sample mean within 5 s.e. (sigma/sqrt n), sample variance within 5 s.e.
    (sigma^2 sqrt(2/(n-1)))."""
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    d, n = 3, 20_000
    mean = jax.random.normal(k1, (d,))
    log_var = jax.random.uniform(k2, (d,), minval=-2.0, maxval=1.0)
    z = reparameterize(jnp.broadcast_to(mean, (n, d)), jnp.broadcast_to(log_var, (n, d)), key=k3)
    var = jnp.exp(log_var)
    assert bool(jnp.all(jnp.abs(z.mean(0) - mean) < 5 * jnp.sqrt(var / n)))
    assert bool(jnp.all(jnp.abs(z.var(0, ddof=1) - var) < 5 * var * math.sqrt(2 / (n - 1))))


def test_reparameterize_is_differentiable_in_the_parameters():
    mean, log_var, key = jnp.array([0.3, -1.0]), jnp.array([0.2, -0.4]), jax.random.key(1)
    eps = (reparameterize(mean, log_var, key=key) - mean) / jnp.exp(0.5 * log_var)
    jac_m = jax.jacobian(lambda m: reparameterize(m, log_var, key=key))(mean)
    jac_v = jax.jacobian(lambda v: reparameterize(mean, v, key=key))(log_var)
    np.testing.assert_allclose(jac_m, jnp.eye(2), atol=1e-6)
    np.testing.assert_allclose(jac_v, jnp.diag(0.5 * jnp.exp(0.5 * log_var) * eps), rtol=1e-5, atol=1e-6)


def test_elbo_terms_and_shapes():
    k1, k2 = jax.random.split(jax.random.key(0))
    ll = -jax.random.uniform(k1, (4, 2, 3))
    mean, log_var = jax.random.normal(k2, (4, 5)), jnp.zeros((4, 5))
    terms = elbo(ll, mean, log_var)
    for t in terms:
        assert t.shape == (4,) and t.dtype == jnp.float32
    np.testing.assert_allclose(terms.recon, ll.sum((1, 2)), rtol=1e-6)
    np.testing.assert_allclose(terms.kl, 0.5 * (mean**2).sum(-1), rtol=1e-6)
    np.testing.assert_allclose(terms.elbo, terms.recon - terms.kl, rtol=1e-6)
    # a per-example log-likelihood is accepted as is
    np.testing.assert_allclose(elbo(ll.sum((1, 2)), mean, log_var).elbo, terms.elbo, rtol=1e-6)


@settings(deadline=None, max_examples=20)
@given(seed=SEEDS, k=st.sampled_from([1, 3, 8]))
def test_iwae_bound_is_between_mean_and_max_of_log_weights(seed, k):
    """Deterministic for every draw: mean(log w) <= log mean(w) <= max(log w) (Jensen)."""
    lw = 30.0 * jax.random.normal(jax.random.key(seed), (k, 5))
    b = iwae_bound(lw)
    assert b.shape == (5,)
    assert bool(jnp.all(b >= lw.mean(0) - 1e-4)) and bool(jnp.all(b <= lw.max(0) + 1e-4))
    np.testing.assert_allclose(iwae_bound(lw[:1]), lw[0], rtol=1e-6)
    np.testing.assert_allclose(iwae_bound(jnp.broadcast_to(lw[:1], lw.shape)), lw[0], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(iwae_bound(lw.T, axis=1), b, rtol=1e-6)


def _linear_gaussian(seed: int):
    """p(z) = N(0, I_2), p(x|z) = N(Wz + c, s2 I_3); log p(x) is N(x; c, W W^T + s2 I) exactly."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(3, 2))
    c = rng.normal(size=3)
    s2 = 0.3
    cov = W @ W.T + s2 * np.eye(3)
    x = rng.multivariate_normal(c, cov, size=32)
    diff = x - c
    _, logdet = np.linalg.slogdet(cov)
    log_px = -0.5 * (3 * np.log(2 * np.pi) + logdet + np.einsum("bi,ij,bj->b", diff, np.linalg.inv(cov), diff))
    # A deliberately poor encoder: the exact posterior mean shifted by 0.4 and a quarter of its
    # variance, so that the bounds are well separated.
    post_cov = np.linalg.inv(np.eye(2) + W.T @ W / s2)
    post_mean = diff @ W @ post_cov.T / s2 + 0.4
    log_var = np.broadcast_to(np.log(0.25 * np.diag(post_cov)), post_mean.shape)
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    return f32(W), f32(c), s2, f32(x), f32(post_mean), f32(log_var), log_px


def test_bounds_order_and_limit_on_a_linear_gaussian_model():
    """ELBO = E[IWAE_1] <= E[IWAE_4] <= E[IWAE_32] <= log p(x), with log p(x) exact.

    Each bound is averaged over R independent repetitions for 32 data points; comparisons are on
    paired per-(repetition, x) differences, and a statistical (in)equality holds when it does
    within 5 standard errors of the mean difference. The seeds are fixed, so the test is
    deterministic; the 5-s.e. margins are what an honest test at these sample sizes can claim.
    """
    W, c, s2, x, mean, log_var, log_px = _linear_gaussian(0)
    b = x.shape[0]

    def log_lik(z):  # [b, 2] -> [b, 3]
        loc = z @ W.T + c
        return gaussian_log_prob(jnp.broadcast_to(x, loc.shape), loc, jnp.full_like(loc, math.log(s2)))

    def iwae_k(key, k):
        z = jax.vmap(lambda kk: reparameterize(mean, log_var, key=kk))(jax.random.split(key, k))
        lw = jax.vmap(lambda zz: log_importance_weight(log_lik(zz), zz, mean, log_var))(z)
        return iwae_bound(lw)  # [b]

    def elbo_1(key):
        z = reparameterize(mean, log_var, key=key)
        return elbo(log_lik(z), mean, log_var).elbo

    reps = 400
    keys = jax.random.split(jax.random.key(42), 4 * reps).reshape(4, reps)
    run = jax.jit(jax.vmap(iwae_k, in_axes=(0, None)), static_argnums=1)
    el = np.asarray(jax.jit(jax.vmap(elbo_1))(keys[0]), np.float64)  # [R, b]
    i1, i4, i32 = (np.asarray(run(keys[j], k), np.float64) for j, k in ((1, 1), (2, 4), (3, 32)))

    def mean_se(d):
        return d.mean(), d.std(ddof=1) / math.sqrt(d.size)

    m, se = mean_se(i1 - el)
    assert abs(m) < 5 * se, ("E[IWAE_1] != ELBO", m, se)
    for lo, hi, name in ((i1, i4, "1<4"), (i4, i32, "4<32")):
        m, se = mean_se(hi - lo)
        assert m > 5 * se, (name, m, se)  # the gaps are tens of s.e. at this mismatch
    gap = log_px[None, :] - i32
    m, se = mean_se(gap)
    assert m > -5 * se, ("IWAE_32 above log p(x)", m, se)
    assert gap.mean() < (log_px[None, :] - i4).mean()
    assert b == 32


def test_log_importance_weight_with_prior_as_posterior_is_the_likelihood():
    z = jax.random.normal(jax.random.key(0), (4, 3))
    ll = -jax.random.uniform(jax.random.key(1), (4, 7))
    lw = log_importance_weight(ll, z, jnp.zeros_like(z), jnp.zeros_like(z))
    np.testing.assert_allclose(lw, ll.sum(-1), rtol=1e-5, atol=1e-5)


@settings(deadline=None, max_examples=5)
@given(seed=SEEDS, num=st.sampled_from([2, 5, 9]))
def test_prior_path_keeps_unit_variance_and_endpoints(seed, num):
    """For z1, z2 ~ N(0, I) every point of the path has variance 1: the sample variance over
    n = 4096 x 4 draws is within 5 s.e. (sqrt(2/(n-1))); the straight line's midpoint (variance
    1/2) would fail this."""
    k1, k2 = jax.random.split(jax.random.key(seed))
    n, d = 4096, 4
    z1, z2 = jax.random.normal(k1, (n, d)), jax.random.normal(k2, (n, d))
    path = prior_path(z1, z2, num)
    assert path.shape == (num, n, d)
    np.testing.assert_array_equal(path[0], z1)
    np.testing.assert_array_equal(path[-1], z2)
    flat = path.reshape(num, -1)
    se = math.sqrt(2.0 / (flat.shape[1] - 1))
    assert bool(jnp.all(jnp.abs(flat.var(1, ddof=1) - 1.0) < 5 * se))
    assert bool(jnp.all(jnp.abs(flat.mean(1)) < 5 / math.sqrt(flat.shape[1])))
    line_mid = 0.5 * (z1 + z2)
    assert abs(float(line_mid.var(ddof=1)) - 1.0) > 5 * se


def test_binarize_is_bernoulli_with_the_intensity():
    n = 20_000
    p = jnp.array([0.0, 0.1, 0.5, 0.93, 1.0])
    b = binarize(jnp.broadcast_to(p, (n, 5)), key=jax.random.key(3))
    assert set(np.unique(np.asarray(b)).tolist()) <= {0.0, 1.0}
    se = jnp.sqrt(p * (1 - p) / n)
    assert bool(jnp.all(jnp.abs(b.mean(0) - p) <= 5 * se + 1e-6))


def test_eager_jit_vmap():
    mean, log_var = jnp.array([[0.3, -1.0]]), jnp.array([[0.2, -0.4]])
    key = jax.random.key(0)
    assert_eager_jit_vmap(lambda m, v: reparameterize(m, v, key=key), mean, log_var)
    assert_eager_jit_vmap(kl_to_standard_normal, mean, log_var)
    assert_eager_jit_vmap(lambda ll, m, v: elbo(ll, m, v), -jnp.ones((1, 3)), mean, log_var)
    assert_eager_jit_vmap(lambda z1, z2: prior_path(z1, z2, 4), mean[0], log_var[0])
    assert_eager_jit_vmap(iwae_bound, jnp.array([-3.0, -1.0, -2.0]))


def test_shape_errors_name_the_arguments():
    with pytest.raises(ValueError, match="mean and log_var"):
        reparameterize(jnp.zeros((2, 3)), jnp.zeros((2, 4)), key=jax.random.key(0))
    with pytest.raises(ValueError, match="log_var"):
        kl_to_standard_normal(jnp.zeros((2, 3)), jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="log_likelihood"):
        elbo(jnp.zeros((3, 5)), jnp.zeros((2, 4)), jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="z1 and z2"):
        prior_path(jnp.zeros(3), jnp.zeros(4), 5)
    with pytest.raises(ValueError, match="num"):
        prior_path(jnp.zeros(3), jnp.zeros(3), 1)
    with pytest.raises(ValueError, match="log_weights"):
        iwae_bound(jnp.array(1.0))
