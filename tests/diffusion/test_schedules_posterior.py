"""Discrete schedules and the DDPM posterior q(x_{t-1} | x_t, x_0) (kexue.fm 9152, 9164)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kexue_jax.diffusion import (
    cosine_schedule,
    linear_schedule,
    predict_x0_from_eps,
    q_posterior,
    q_sample,
    respace,
    su_schedule,
)

SCHEDULES = {"linear": linear_schedule(1000), "cosine": cosine_schedule(1000), "su": su_schedule(1000)}


def test_su_schedule_end_value_and_bound():
    # Su (9152): alpha_t = sqrt(1 - 0.02 t/T), bar-alpha_T (his notation) = 0.00648 < e^{-0.005 (T+1)}.
    bar_alpha_T = math.sqrt(float(SCHEDULES["su"].alphas_cumprod[-1]))
    assert abs(bar_alpha_T - 0.00648) < 5e-6
    assert bar_alpha_T < math.exp(-0.005 * 1001)


def test_linear_and_cosine_tables():
    lin = SCHEDULES["linear"]
    np.testing.assert_allclose(np.asarray(lin.betas)[[0, -1]], [1e-4, 0.02], rtol=1e-6)
    cos = SCHEDULES["cosine"]
    f = lambda u: math.cos((u / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2
    for t in (0, 10, 500, 900):
        assert abs(float(cos.alphas_cumprod[t]) - f(t + 1) / f(0)) < 1e-5
    for s in SCHEDULES.values():
        ac = np.asarray(s.alphas_cumprod, np.float64)
        assert np.all(np.diff(ac) < 0) and ac[-1] < 1e-2
        np.testing.assert_allclose(np.asarray(s.one_minus_alphas_cumprod), 1 - ac, atol=1e-6)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_respace_keeps_marginals(name):
    s = SCHEDULES[name]
    same, steps = respace(s, s.num_steps)
    np.testing.assert_allclose(np.asarray(same.betas), np.asarray(s.betas), rtol=1e-5)
    sub, steps = respace(s, 50)
    assert steps.shape == (50,) and int(steps[0]) == 0 and int(steps[-1]) == s.num_steps - 1
    np.testing.assert_allclose(np.asarray(sub.alphas_cumprod),
                               np.asarray(s.alphas_cumprod)[np.asarray(steps)], rtol=1e-4)


def _su_closed_form(s, t):
    """Su's (9164) posterior in his notation: alpha_t = sqrt(1-beta), bar-beta_t = sqrt(1-bar-alpha)."""
    betas = np.asarray(s.betas, np.float64)
    ac = np.cumprod(1 - betas)
    a_t = math.sqrt(1 - betas[t])  # Su's alpha_t
    b_t = math.sqrt(betas[t])  # Su's beta_t
    bb_t, bb_prev = math.sqrt(1 - ac[t]), math.sqrt(1 - ac[t - 1])
    ba_prev = math.sqrt(ac[t - 1])
    coef_xt = a_t * bb_prev**2 / bb_t**2
    coef_x0 = ba_prev * b_t**2 / bb_t**2
    var = bb_prev**2 * b_t**2 / bb_t**2
    # Su's identity: alpha_t^2/beta_t^2 + 1/bar-beta_{t-1}^2 = bar-beta_t^2/(bar-beta_{t-1}^2 beta_t^2).
    assert math.isclose(a_t**2 / b_t**2 + 1 / bb_prev**2, bb_t**2 / (bb_prev**2 * b_t**2), rel_tol=1e-9)
    return coef_x0, coef_xt, var


@pytest.mark.parametrize("name", sorted(SCHEDULES))
@given(t=st.integers(1, 999), seed=st.integers(0, 2**31 - 1))
def test_posterior_equals_bayes_closed_form(name, t, seed):
    s = SCHEDULES[name]
    kx, kt = jax.random.split(jax.random.key(seed))
    x0, xt = jax.random.normal(kx, (2, 3)), jax.random.normal(kt, (2, 3))
    mean, var = q_posterior(s, x0, xt, jnp.full((2,), t, jnp.int32))
    c0, ct, v = _su_closed_form(s, t)
    np.testing.assert_allclose(np.asarray(mean), c0 * np.asarray(x0) + ct * np.asarray(xt), rtol=2e-4, atol=2e-6)
    np.testing.assert_allclose(np.asarray(var), v, rtol=2e-4)


def test_posterior_mean_with_denoiser_is_the_ddpm_mean():
    # 9164: plugging x0_hat = (x_t - bar-beta eps)/bar-alpha gives (x_t - beta_t^2/bar-beta_t eps)/alpha_t.
    s = SCHEDULES["linear"]
    t = jnp.array([1, 40, 999], jnp.int32)
    xt, eps = jax.random.normal(jax.random.key(1), (2, 3, 4))
    mean, _ = q_posterior(s, predict_x0_from_eps(s, xt, t, eps), xt, t)
    beta = np.asarray(s.betas)[np.asarray(t)][:, None]
    om = np.asarray(s.one_minus_alphas_cumprod)[np.asarray(t)][:, None]
    expected = (np.asarray(xt) - beta / np.sqrt(om) * np.asarray(eps)) / np.sqrt(1 - beta)
    np.testing.assert_allclose(np.asarray(mean), expected, rtol=1e-4, atol=1e-4)


def test_posterior_monte_carlo():
    """Regress x_{t-1} on x_t over draws of the forward chain from a fixed x_0.

    Given x_0, (x_{t-1}, x_t) is jointly Gaussian, so E[x_{t-1} | x_t] is linear in x_t with slope
    = the posterior's x_t coefficient and intercept = its x_0 coefficient * x_0, and the residual
    variance is the posterior variance. n = 200k draws; standard errors of the OLS fit below.
    """
    s, t, n, x0 = SCHEDULES["linear"], 5, 200_000, 0.7  # small t: posterior var ~ (5/6) beta_t
    k1, k2 = jax.random.split(jax.random.key(3))
    ac_prev = float(s.alphas_cumprod_prev[t])
    x_prev = math.sqrt(ac_prev) * x0 + math.sqrt(1 - ac_prev) * np.asarray(jax.random.normal(k1, (n,)), np.float64)
    beta = float(s.betas[t])
    x_t = math.sqrt(1 - beta) * x_prev + math.sqrt(beta) * np.asarray(jax.random.normal(k2, (n,)), np.float64)
    slope, intercept = np.polyfit(x_t, x_prev, 1)
    resid_var = np.var(x_prev - (slope * x_t + intercept), ddof=2)
    mean_at, var = q_posterior(s, jnp.array([[x0]]), jnp.array([[0.0], [1.0]])[:1], jnp.array([t]))
    mean_at1, _ = q_posterior(s, jnp.array([[x0]]), jnp.array([[1.0]]), jnp.array([t]))
    want_intercept, want_slope = float(mean_at[0, 0]), float(mean_at1[0, 0] - mean_at[0, 0])
    se_slope = math.sqrt(resid_var / (n * np.var(x_t)))
    se_intercept = math.sqrt(resid_var * (1 / n + np.mean(x_t) ** 2 / (n * np.var(x_t))))
    assert abs(slope - want_slope) < 5 * se_slope
    assert abs(intercept - want_intercept) < 5 * se_intercept
    assert abs(resid_var / float(var[0]) - 1) < 5 * math.sqrt(2 / n)
    # A wrong posterior (Su's "large" variance beta_t instead of the posterior's) fails the check.
    assert abs(resid_var / beta - 1) > 5 * math.sqrt(2 / n)


def test_q_sample_and_errors():
    s = SCHEDULES["linear"]
    x0 = jnp.ones((2, 3))
    xt = q_sample(s, x0, jnp.array([0, 999]), jnp.zeros((2, 3)))
    np.testing.assert_allclose(np.asarray(xt[:, 0]), np.sqrt(np.asarray(s.alphas_cumprod)[[0, 999]]), rtol=1e-6)
    with pytest.raises(ValueError, match="t: expected shape"):
        q_sample(s, x0, jnp.array([0, 1, 2]), jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="t: expected an integer dtype"):
        q_sample(s, x0, jnp.array([0.0, 1.0]), jnp.zeros((2, 3)))
    with pytest.raises(ValueError, match="x0 and noise"):
        q_sample(s, x0, jnp.array([0, 1]), jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="num_steps"):
        respace(s, 0)
    with pytest.raises(ValueError, match="betas"):
        linear_schedule(10)  # scaled betas exceed 1
