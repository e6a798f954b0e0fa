"""Exact scores and noise predictors for Gaussian data $x_0 \\sim \\mathcal N(\\mu, \\Sigma)$ (the test oracle).

For any linear forward process $x_t = a_t x_0 + s_t\\varepsilon$ the marginal is
$p_t = \\mathcal N(a_t\\mu, C_t)$ with $C_t = a_t^2\\Sigma + s_t^2 I$, so
$\\nabla\\log p_t(x) = -C_t^{-1}(x - a_t\\mu)$ and $\\varepsilon^*(x, t) = -s_t\\nabla\\log p_t(x)$.
With these every sampler must reproduce $\\mathcal N(\\mu, \\Sigma)$ and the ODE likelihood must
equal the analytic log-density. $C_t^{-1}$ uses the eigendecomposition $\\Sigma = U\\Lambda U^\\top$
(``jnp.linalg.eigh``; ``mean`` and ``cov`` may be traced), so one evaluation is two small
matmuls. ``cov`` must be positive definite (not checked: it may be traced).

References:
    Su Jianlin, https://kexue.fm/archives/9164 (Gaussian data: the exact reverse kernel) and
    https://kexue.fm/archives/9280 (the exact score $-x/(s^2 + \\sigma_t^2)$).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax.numpy as jnp

from kexue_jax._src.checks import check_shape
from kexue_jax._src.typing import Array, Float
from kexue_jax.diffusion._broadcast import per_example
from kexue_jax.diffusion.posterior import marginal_coeffs as discrete_coeffs
from kexue_jax.diffusion.schedules import DiscreteSchedule
from kexue_jax.diffusion.sde import SDE

CoeffFn = Callable[[Array], tuple[Array, Array]]


def _eig(mean: Array, cov: Array) -> tuple[Array, Array, Array]:
    mean, cov = jnp.asarray(mean, jnp.float32), jnp.asarray(cov, jnp.float32)
    if mean.ndim != 1:
        raise ValueError(f"mean: expected shape (d,), got {mean.shape}")
    check_shape("cov", cov, (mean.shape[0], mean.shape[0]))
    # eigh works on traced arrays too, so a test can jit once and vary the covariance.
    lam, u = jnp.linalg.eigh(0.5 * (cov + cov.T))
    return mean, lam, u


def _score(coeffs: CoeffFn, mean: Array, cov: Array) -> Callable[[Array, Array], Array]:
    mu, lam, u = _eig(mean, cov)

    def score(x: Float[Array, "b d"], t: Array) -> Float[Array, "b d"]:
        check_shape("x", x, (None, mu.shape[0]))
        a, s = coeffs(t)
        inv = 1.0 / (jnp.square(a)[:, None] * lam + jnp.square(s)[:, None])
        centred = (x - per_example(a, x) * mu) @ u
        return -(centred * inv) @ u.T

    return score


def gaussian_score_fn(sde: SDE, mean: Array, cov: Array) -> Callable[[Array, Array], Array]:
    """The exact $\\nabla_x\\log p_t(x)$ of ``sde`` started from $\\mathcal N(\\mu, \\Sigma)$.

    Args:
        sde: a linear forward SDE (VP, VE, sub-VP).
        mean: $\\mu$ ``[d]``.
        cov: $\\Sigma$ ``[d, d]``, positive definite.

    Returns:
        ``score_fn(x [b, d], t float32 [b]) -> [b, d]``.
    """
    return _score(sde.marginal_coeffs, mean, cov)


def gaussian_eps_fn(
    schedule: DiscreteSchedule, mean: Array, cov: Array
) -> Callable[[Array, Array], Array]:
    """The exact $\\varepsilon^*(x, t) = \\mathbb E[\\varepsilon \\mid x_t = x]$ of a discrete schedule.

    Args:
        schedule: the discrete schedule.
        mean: $\\mu$ ``[d]``.
        cov: $\\Sigma$ ``[d, d]``.

    Returns:
        ``eps_fn(x [b, d], t int32 [b]) -> [b, d]``.
    """
    def coeffs(t):
        return discrete_coeffs(schedule, t)

    score = _score(coeffs, mean, cov)
    return lambda x, t: -per_example(coeffs(t)[1], x) * score(x, t)


def gaussian_log_prob(x: Float[Array, "b d"], mean: Array, cov: Array) -> Float[Array, " b"]:
    """$\\log\\mathcal N(x; \\mu, \\Sigma)$ per row, float32 ``[b]``.

    Args:
        x: ``[b, d]``.
        mean: $\\mu$ ``[d]``.
        cov: $\\Sigma$ ``[d, d]``.

    Returns:
        float32 ``[b]``.
    """
    mu, lam, u = _eig(mean, cov)
    check_shape("x", x, (None, mu.shape[0]))
    z = ((x - mu) @ u) / jnp.sqrt(lam)
    d = mu.shape[0]
    return -0.5 * jnp.sum(jnp.square(z), axis=-1) - 0.5 * jnp.sum(jnp.log(lam)) - 0.5 * d * math.log(2 * math.pi)
