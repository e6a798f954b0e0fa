"""Diagonal Gaussian log-density and the closed-form KL divergences between diagonal Gaussians.

The Gaussian is parameterised by its mean and **log-variance** (what a VAE encoder outputs), so that
the variance $\\sigma^2 = e^{\\log\\sigma^2}$ is positive without a constraint.

References:
    Su Jianlin, "变分自编码器（一）：原来是这么一回事", https://kexue.fm/archives/5253 (the KL term
    $\\frac12\\sum(\\mu^2 + \\sigma^2 - \\log\\sigma^2 - 1)$ in closed form).
    D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014, Appendix B.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from kexue_jax._src.checks import check_floating, check_same_shape
from kexue_jax._src.numerics import to_f32
from kexue_jax._src.typing import Array, Float

_LOG_2PI = math.log(2.0 * math.pi)


def gaussian_log_prob(
    x: Float[Array, "*shape"], mean: Float[Array, "*shape"], log_var: Float[Array, "*shape"]
) -> Float[Array, "*shape"]:
    """Per-element log-density of a diagonal Gaussian, in float32 nats.

    $\\log\\mathcal N(x;\\mu,\\sigma^2) = -\\frac12\\left(\\log 2\\pi + \\log\\sigma^2
    + (x-\\mu)^2 e^{-\\log\\sigma^2}\\right)$.

    Args:
        x: the point, any shape.
        mean: $\\mu$, same shape as ``x``.
        log_var: $\\log\\sigma^2$, same shape as ``x``.

    Returns:
        float32 array of the shape of ``x``; sum over the event axes for a joint log-density.

    Raises:
        ValueError: when the shapes differ or an input is not floating point.
    """
    for name, a in (("x", x), ("mean", mean), ("log_var", log_var)):
        check_floating(name, a)
    check_same_shape("x", x, "mean", mean)
    check_same_shape("mean", mean, "log_var", log_var)
    x, mean, log_var = to_f32(x), to_f32(mean), to_f32(log_var)
    return -0.5 * (_LOG_2PI + log_var + jnp.square(x - mean) * jnp.exp(-log_var))


def gaussian_kl(
    mean_q: Float[Array, "*shape"],
    log_var_q: Float[Array, "*shape"],
    mean_p: Float[Array, "*shape"],
    log_var_p: Float[Array, "*shape"],
) -> Float[Array, "*shape"]:
    """Per-element $\\mathrm{KL}(\\mathcal N(\\mu_q,\\sigma_q^2)\\,\\|\\,\\mathcal N(\\mu_p,\\sigma_p^2))$.

    $\\mathrm{KL} = \\frac12\\left(\\log\\sigma_p^2 - \\log\\sigma_q^2
    + \\frac{\\sigma_q^2 + (\\mu_q-\\mu_p)^2}{\\sigma_p^2} - 1\\right)$, in float32 nats; the KL of
    diagonal Gaussians is the sum of these over the event axes.

    Args:
        mean_q: $\\mu_q$.
        log_var_q: $\\log\\sigma_q^2$, same shape.
        mean_p: $\\mu_p$, same shape.
        log_var_p: $\\log\\sigma_p^2$, same shape.

    Returns:
        float32 array of the common shape, every element $\\ge 0$ (up to rounding).

    Raises:
        ValueError: when the four shapes are not all equal.
    """
    check_same_shape("mean_q", mean_q, "log_var_q", log_var_q)
    check_same_shape("mean_q", mean_q, "mean_p", mean_p)
    check_same_shape("mean_q", mean_q, "log_var_p", log_var_p)
    mean_q, log_var_q = to_f32(mean_q), to_f32(log_var_q)
    mean_p, log_var_p = to_f32(mean_p), to_f32(log_var_p)
    # exp(lq - lp) - (lq - lp) - 1 >= 0 elementwise, so the sum is a sum of non-negative terms.
    d = log_var_q - log_var_p
    return 0.5 * (jnp.expm1(d) - d + jnp.square(mean_q - mean_p) * jnp.exp(-log_var_p))


def standard_normal_kl(
    mean: Float[Array, "*shape"], log_var: Float[Array, "*shape"]
) -> Float[Array, "*shape"]:
    """Per-element $\\mathrm{KL}(\\mathcal N(\\mu,\\sigma^2)\\,\\|\\,\\mathcal N(0,1))$ from mean and log-variance.

    $\\mathrm{KL} = \\frac12\\left(\\mu^2 + \\sigma^2 - \\log\\sigma^2 - 1\\right)$ (the VAE's KL term,
    kexue.fm/archives/5253, eq. for $KL(N(\\mu,\\sigma^2)\\|N(0,1))$), in float32 nats.

    Args:
        mean: $\\mu$, any shape.
        log_var: $\\log\\sigma^2$, same shape as ``mean``.

    Returns:
        float32 array of the shape of ``mean``; sum over the latent axis for the KL of a diagonal
        posterior.

    Raises:
        ValueError: when ``mean`` and ``log_var`` have different shapes.
    """
    check_same_shape("mean", mean, "log_var", log_var)
    mean, log_var = to_f32(mean), to_f32(log_var)
    # expm1(l) - l is exact near l = 0, where sigma^2 - log sigma^2 - 1 would cancel.
    return 0.5 * (jnp.square(mean) + jnp.expm1(log_var) - log_var)
