"""Convergence orders: fit log-error against log-steps and check the slope.

* Probability-flow ODE on Gaussian data, where the flow map is exact:
  $x_t = m_t\\mu + C_t^{1/2}C_T^{-1/2}(x_T - m_T\\mu)$. Euler: order 1, Heun: order 2.
* Euler–Maruyama weak order 1 on the reverse VP SDE: the step is affine in $(x, z)$ for a
  Gaussian score, so mean and covariance of the EM chain are propagated exactly (no Monte-Carlo
  noise) and compared with the true marginal at $\\epsilon$.
* Euler–Maruyama strong order on the forward VP SDE against a 4096-step solution on the same
  Brownian path: order 1, since the noise is additive ($g$ does not depend on $x$).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kexue_jax.diffusion import (
    VPSDE,
    euler_maruyama,
    euler_maruyama_step,
    gaussian_score_fn,
    odeint_fixed,
    probability_flow,
    reverse_sde,
)
from tests.diffusion.gaussian_case import COV, MEAN

SDE = VPSDE()
EPS = 1e-3


def _slope(steps, errors):
    return float(np.polyfit(np.log(steps), np.log(errors), 1)[0])


def _gaussian_cov_t(t):
    m, s = (float(v[0]) for v in SDE.marginal_coeffs(jnp.array([t])))
    return m, m**2 * COV + s**2 * np.eye(2)


def _sqrtm(c, inverse=False):
    lam, u = np.linalg.eigh(c)
    return (u * lam ** (-0.5 if inverse else 0.5)) @ u.T


@pytest.mark.parametrize(("method", "band"), [("euler", (0.8, 1.2)), ("heun", (1.7, 2.3))])
def test_probability_flow_order(method, band):
    x_T = np.asarray(jax.random.normal(jax.random.key(0), (16, 2)), np.float64)
    m_T, c_T = _gaussian_cov_t(1.0)
    m_e, c_e = _gaussian_cov_t(EPS)
    exact = m_e * MEAN + (x_T - m_T * MEAN) @ (_sqrtm(c_e) @ _sqrtm(c_T, inverse=True)).T
    flow = probability_flow(SDE, gaussian_score_fn(SDE, MEAN, COV))
    drift = lambda x, t: flow.drift(x, jnp.full((x.shape[0],), t))
    steps = [32, 64, 128] if method == "euler" else [16, 32, 64]  # one compile per grid
    errors = []
    for n in steps:
        x = odeint_fixed(drift, jnp.asarray(x_T, jnp.float32), jnp.linspace(1.0, EPS, n + 1), method=method)
        errors.append(np.max(np.abs(np.asarray(x, np.float64) - exact)))
    slope = -_slope(steps, errors)
    assert band[0] <= slope <= band[1], (steps, errors, slope)


def test_euler_maruyama_weak_order():
    rsde = reverse_sde(SDE, gaussian_score_fn(SDE, MEAN, COV))

    def moments(n):
        ts = jnp.linspace(1.0, EPS, n + 1)

        def step(carry, i):
            m, c = carry
            dt = ts[i + 1] - ts[i]
            f = lambda x, z: euler_maruyama_step(
                rsde.drift, rsde.diffusion, x[None], ts[i][None], dt, z[None])[0][0]
            zero = jnp.zeros(2)
            a, b = jax.jacfwd(f, 0)(zero, zero), jax.jacfwd(f, 1)(zero, zero)
            return (a @ m + f(zero, zero), a @ c @ a.T + b @ b.T), None

        m_T, c_T = _gaussian_cov_t(1.0)
        init = (jnp.asarray(m_T * MEAN, jnp.float32), jnp.asarray(c_T, jnp.float32))
        (m, c), _ = jax.lax.scan(step, init, jnp.arange(n))
        return np.asarray(m, np.float64), np.asarray(c, np.float64)

    m_e, c_e = _gaussian_cov_t(EPS)
    steps = [25, 50, 100]
    errors = []
    for n in steps:
        m, c = moments(n)
        errors.append(max(np.max(np.abs(m - m_e * MEAN)), np.max(np.abs(c - c_e))))
    slope = -_slope(steps, errors)
    assert 0.8 <= slope <= 1.25, (errors, slope)


def test_euler_maruyama_strong_order_additive_noise():
    n_paths, fine = 2000, 4096
    x0 = jnp.full((n_paths, 1), 1.5)
    noise = jax.random.normal(jax.random.key(2), (fine, n_paths, 1))

    def solve(n):
        # Coarse Brownian increments are sums of the fine ones: the same path at every resolution.
        k = fine // n
        coarse = noise.reshape(n, k, n_paths, 1).sum(1) / jnp.sqrt(k)
        return euler_maruyama(SDE.drift, SDE.diffusion, x0, jnp.linspace(0.0, 1.0, n + 1), noise=coarse)

    ref = np.asarray(solve(fine), np.float64)
    steps = [16, 32, 64]
    errors = [float(np.sqrt(np.mean((np.asarray(solve(n), np.float64) - ref) ** 2))) for n in steps]
    slope = -_slope(steps, errors)
    assert 0.8 <= slope <= 1.25, (errors, slope)
