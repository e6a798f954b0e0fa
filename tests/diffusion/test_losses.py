"""Training losses (eps / x0 / v, denoising score matching) and the variational bound."""

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
    ddpm_loss,
    dsm_loss,
    elbo_bits_per_dim,
    eps_from_prediction,
    gaussian_eps_fn,
    gaussian_score_fn,
    linear_schedule,
    q_sample,
    v_target,
    vlb_terms,
    x0_from_eps,
)
from tests.diffusion.gaussian_case import COV, MEAN, gaussian_data

SCHEDULE = linear_schedule(1000)


@given(seed=st.integers(0, 2**31 - 1))
def test_parameterizations_are_consistent(seed):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    x0, eps = jax.random.normal(k1, (4, 3)), jax.random.normal(k2, (4, 3))
    t = jax.random.randint(k3, (4,), 0, 1000)
    a = jnp.sqrt(SCHEDULE.alphas_cumprod[t])
    s = jnp.sqrt(SCHEDULE.one_minus_alphas_cumprod[t])
    x_t = q_sample(SCHEDULE, x0, t, eps)
    for kind, out in (("eps", eps), ("x0", x0), ("v", v_target(x0, eps, a, s))):
        got = eps_from_prediction(kind, x_t, out, a, s)
        np.testing.assert_allclose(np.asarray(got), np.asarray(eps), rtol=1e-3, atol=2e-3)
    np.testing.assert_allclose(np.asarray(x0_from_eps(x_t, eps, a, s)), np.asarray(x0), rtol=1e-3, atol=5e-2)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_exact_model_minimises_ddpm_loss(prediction):
    """The Bayes predictor E[y | x_t] has a lower loss than a perturbed one (by far more than 5 SE)."""
    eps_fn = gaussian_eps_fn(SCHEDULE, MEAN, COV)

    def model(scale):
        def fn(x_t, t):
            a = jnp.sqrt(SCHEDULE.alphas_cumprod[t])[:, None]
            s = jnp.sqrt(SCHEDULE.one_minus_alphas_cumprod[t])[:, None]
            e = scale * eps_fn(x_t, t)
            return {"eps": e, "x0": (x_t - s * e) / a, "v": a * e - s * (x_t - s * e) / a}[prediction]
        return fn

    x0 = gaussian_data(20_000)
    key = jax.random.key(4)
    best = np.asarray(ddpm_loss(model(1.0), SCHEDULE, x0, prediction=prediction, key=key), np.float64)
    worse = np.asarray(ddpm_loss(model(0.9), SCHEDULE, x0, prediction=prediction, key=key), np.float64)
    diff = worse - best  # paired: same t and eps
    assert diff.mean() > 5 * diff.std() / math.sqrt(diff.size), (diff.mean(), diff.std())


@pytest.mark.parametrize("weighting", ["score_sde", "likelihood", "none"])
def test_dsm_loss_weightings(weighting):
    sde = VPSDE()
    x0 = gaussian_data(20_000, seed=1)
    key = jax.random.key(5)
    exact = gaussian_score_fn(sde, MEAN, COV)
    best = np.asarray(dsm_loss(exact, sde, x0, weighting=weighting, key=key), np.float64)
    # E[worse - best] = (1 - 0.5)^2 E[lambda |s|^2] (since E[z / s_t | x_t] = -score); with lambda = 1 the
    # variance is dominated by small t, so the perturbation must be large to clear 5 SE.
    worse = np.asarray(dsm_loss(lambda x, t: 0.5 * exact(x, t), sde, x0, weighting=weighting, key=key), np.float64)
    diff = worse - best
    assert diff.mean() > 5 * diff.std() / math.sqrt(diff.size)
    assert best.dtype == np.float64 and best.shape == (20_000,)


def test_dsm_likelihood_weighting_is_g2_times_unweighted():
    sde = VPSDE()
    x0 = gaussian_data(8, seed=2)
    key = jax.random.key(6)
    score = lambda x, t: -x
    none = dsm_loss(score, sde, x0, weighting="none", key=key)
    lik = dsm_loss(score, sde, x0, weighting="likelihood", key=key)
    t = jax.random.uniform(jax.random.split(key)[0], (8,), jnp.float32, 1e-5, 1.0)
    np.testing.assert_allclose(np.asarray(lik), np.asarray(none * jnp.square(sde.diffusion(t))), rtol=1e-5)


def test_vlb_of_a_point_mass_with_the_exact_denoiser():
    """Data = one grid point c; the model predicts x0 = c exactly.

    Then p(x_{t-1}|x_t) has the posterior mean, and with sigma = "small" the posterior variance,
    so every KL term (t >= 1) is 0 and the decoder is the mass of c's bin. With sigma = "large" the
    KL terms are positive, and a wrong denoiser (c + 0.1) raises the bound.
    """
    schedule = linear_schedule(100)
    c = jnp.asarray([[-1.0 + 2 * 100 / 255, 2 * 200 / 255 - 1.0]])  # levels 100 and 200 of 256
    x0 = jnp.broadcast_to(c, (4, 2))
    exact = lambda x, t: jnp.broadcast_to(c, x.shape)

    @jax.jit
    def bounds(key):
        kw = {"prediction": "x0", "key": key}
        return (vlb_terms(exact, schedule, x0, sigma="small", **kw),
                vlb_terms(exact, schedule, x0, sigma="large", **kw),
                vlb_terms(lambda x, t: exact(x, t) + 0.1, schedule, x0, sigma="small", **kw),
                elbo_bits_per_dim(exact, schedule, x0, **kw))

    small, large, shifted, bpd = bounds(jax.random.key(0))
    np.testing.assert_allclose(np.asarray(small.terms[:, 1:]), 0.0, atol=1e-3)
    # Decoder: the mass of c's bin (half-width 1/255) under N(c, tilde beta_1) in each of 2 dims.
    std = math.sqrt(float(schedule.posterior_variance[1]))
    decoder = -2 * math.log(math.erf((1 / 255) / std / math.sqrt(2)))
    np.testing.assert_allclose(np.asarray(small.terms[:, 0]), decoder, rtol=1e-4)
    assert np.all(np.asarray(small.total) >= 0) and small.terms.shape == (4, 100)
    # Equal means, variances tilde beta_t vs beta_t: KL = (d/2)(r - 1 - log r), r = tilde beta_t / beta_t.
    r = np.asarray(schedule.posterior_variance, np.float64)[1:] / np.asarray(schedule.betas, np.float64)[1:]
    np.testing.assert_allclose(np.asarray(large.terms[0, 1:]), r - 1 - np.log(r), rtol=2e-2, atol=1e-5)
    assert float(large.terms[0, 1]) > 0.2
    assert np.all(np.asarray(shifted.total) > np.asarray(small.total) + 1.0)
    np.testing.assert_allclose(np.asarray(bpd), np.asarray(small.total) / (2 * math.log(2)), rtol=1e-5)


def test_loss_errors():
    with pytest.raises(ValueError, match="prediction"):
        ddpm_loss(lambda x, t: x, SCHEDULE, jnp.zeros((2, 2)), prediction="score", key=jax.random.key(0))
    with pytest.raises(ValueError, match="x0: expected rank"):
        ddpm_loss(lambda x, t: x, SCHEDULE, jnp.zeros((2,)), key=jax.random.key(0))
    with pytest.raises(ValueError, match="weighting"):
        dsm_loss(lambda x, t: x, VPSDE(), jnp.zeros((2, 2)), weighting="fisher", key=jax.random.key(0))
    with pytest.raises(ValueError, match="sigma"):
        vlb_terms(lambda x, t: x, SCHEDULE, jnp.zeros((2, 2)), sigma="huge", key=jax.random.key(0))
