"""Classifier guidance and classifier-free guidance (kexue.fm 9257), exact on Gaussian classes."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kexue_jax.diffusion import (
    VPSDE,
    classifier_free_eps,
    classifier_guided_eps,
    classifier_guided_score,
    drop_labels,
    gaussian_eps_fn,
    gaussian_score_fn,
    linear_schedule,
    marginal_coeffs,
)

MEANS = np.array([[1.0, -1.0], [-0.5, 0.5], [0.0, 0.0]])  # classes 0, 1; row 2 = the null label
COV = np.eye(2) * 0.5
SDE = VPSDE()
SCHEDULE = linear_schedule(1000)


def _log_joint(coeffs):
    """log p_t(x, y) for two equiprobable classes N(mu_y, COV) pushed through x_t = a x_0 + s eps."""
    def fn(x, t, y):
        a, s = coeffs(t)
        var = (a**2 * 0.5 + s**2)[:, None]
        mu = a[:, None] * jnp.asarray(MEANS[:2], jnp.float32)[y]
        return jnp.sum(-0.5 * (x - mu) ** 2 / var - 0.5 * jnp.log(2 * math.pi * var), axis=1) - math.log(2)
    return fn


def _classifier(coeffs):
    joint = _log_joint(coeffs)

    def log_prob(x, t, y):
        both = jnp.stack([joint(x, t, jnp.full_like(y, k)) for k in (0, 1)])
        return joint(x, t, y) - jax.nn.logsumexp(both, axis=0)
    return log_prob


def _mixture_score(coeffs):
    joint = _log_joint(coeffs)

    def score(x, t):
        def log_marginal(u):
            both = jnp.stack([joint(u, t, jnp.full((u.shape[0],), k)) for k in (0, 1)])
            return jnp.sum(jax.nn.logsumexp(both, axis=0))
        return jax.grad(log_marginal)(x)
    return score


@jax.jit
def _guided_scores(x, t, label):
    """(guided at scale 1, the class score, guided at scale 0, the mixture score, guided at scale 2)."""
    coeffs = SDE.marginal_coeffs
    y = jnp.full((x.shape[0],), label)
    mix, clf = _mixture_score(coeffs), _classifier(coeffs)
    want = gaussian_score_fn(SDE, jnp.asarray(MEANS, jnp.float32)[label], COV)(x, t)
    return tuple(classifier_guided_score(mix, clf, y, scale=g)(x, t) for g in (1.0, 0.0, 2.0)) + (want, mix(x, t))


@given(seed=st.integers(0, 2**31 - 1), label=st.integers(0, 1))
def test_classifier_guidance_with_scale_one_gives_the_class_score(seed, label):
    """grad log p_t(x) + grad log p_t(y | x) = grad log p_t(x | y) (Bayes), exactly for Gaussians."""
    kx, kt = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(kx, (3, 2))
    t = jax.random.uniform(kt, (3,), minval=0.01, maxval=1.0)
    guided, unguided, off, want, mixture = map(np.asarray, _guided_scores(x, t, label))
    np.testing.assert_allclose(guided, want, rtol=1e-4, atol=1e-4)
    # scale 0: the unconditional score; a wrong scale misses the class score.
    np.testing.assert_allclose(unguided, mixture, rtol=1e-6)
    assert not np.allclose(off, want, rtol=1e-3, atol=1e-3)


def test_classifier_guided_eps_is_the_class_noise_predictor():
    coeffs = lambda t: marginal_coeffs(SCHEDULE, t)
    x = jax.random.normal(jax.random.key(0), (4, 2))
    t = jnp.array([3, 100, 500, 900])
    mix = _mixture_score(coeffs)
    mixture_eps = lambda x, t: -coeffs(t)[1][:, None] * mix(x, t)
    guided = jax.jit(classifier_guided_eps(mixture_eps, _classifier(coeffs), jnp.ones((4,), jnp.int32),
                                           lambda t: coeffs(t)[1], scale=1.0))
    want = gaussian_eps_fn(SCHEDULE, MEANS[1], COV)(x, t)
    np.testing.assert_allclose(np.asarray(guided(x, t)), np.asarray(want), rtol=1e-4, atol=1e-4)


def _class_eps(x, t, y):
    per_class = jnp.stack([gaussian_eps_fn(SCHEDULE, MEANS[k], COV)(x, t) for k in range(3)])
    return per_class[y, jnp.arange(x.shape[0])]


@jax.jit
def _cfg(x, t, y, w):
    """(guided at w, the formula, the conditional, guided at w = 0, the unconditional, guided at w = -1)."""
    cond, uncond = _class_eps(x, t, y), _class_eps(x, t, jnp.full_like(y, 2))
    guided = [classifier_free_eps(_class_eps, y, guidance_scale=g, null_label=2)(x, t) for g in (w, 0.0, -1.0)]
    return guided[0], (1 + w) * cond - w * uncond, cond, guided[1], uncond, guided[2]


@given(seed=st.integers(0, 2**31 - 1), w=st.floats(0.0, 8.0))
def test_classifier_free_guidance(seed, w):
    kx, kt = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(kx, (3, 2))
    t = jax.random.randint(kt, (3,), 0, 1000)
    got, formula, cond, at_zero, uncond, at_minus_one = map(np.asarray, _cfg(x, t, jnp.array([0, 1, 0]), w))
    np.testing.assert_allclose(got, formula, rtol=1e-5, atol=1e-5)
    # w = 0 is the conditional model, w = -1 the unconditional one.
    np.testing.assert_allclose(at_zero, cond, rtol=1e-6)
    np.testing.assert_allclose(at_minus_one, uncond, rtol=1e-5, atol=1e-6)
    assert w < 0.1 or not np.allclose(got, cond, rtol=1e-3, atol=1e-3)


def test_drop_labels():
    n, p = 100_000, 0.1
    y = jnp.zeros((n,), jnp.int32)
    dropped = drop_labels(y, p_uncond=p, null_label=10, key=jax.random.key(0))
    frac = float(jnp.mean(dropped == 10))
    assert abs(frac - p) < 5 * math.sqrt(p * (1 - p) / n)
    assert set(np.unique(np.asarray(dropped))) == {0, 10} and dropped.dtype == jnp.int32
    assert bool(jnp.all(drop_labels(y, p_uncond=0.0, null_label=10, key=jax.random.key(1)) == 0))
    with pytest.raises(ValueError, match="p_uncond"):
        drop_labels(y, p_uncond=1.5, null_label=10, key=jax.random.key(0))
    with pytest.raises(ValueError, match="y: expected an integer"):
        drop_labels(y.astype(jnp.float32), null_label=10, key=jax.random.key(0))
