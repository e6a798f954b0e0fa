"""The discrete forward process $q(x_t \\mid x_0)$ and its Bayes posterior $q(x_{t-1} \\mid x_t, x_0)$.

$q(x_t \\mid x_0) = \\mathcal N(\\sqrt{\\bar\\alpha_t}x_0, (1-\\bar\\alpha_t)I)$ and

$q(x_{t-1} \\mid x_t, x_0) = \\mathcal N\\Big(\\frac{\\sqrt{\\bar\\alpha_{t-1}}\\beta_t}{1-\\bar\\alpha_t}x_0
+ \\frac{\\sqrt{\\alpha_t}(1-\\bar\\alpha_{t-1})}{1-\\bar\\alpha_t}x_t,\\ \\tilde\\beta_t I\\Big)$,
$\\tilde\\beta_t = \\frac{1-\\bar\\alpha_{t-1}}{1-\\bar\\alpha_t}\\beta_t$
(Su's (三) in his notation: mean $\\frac{\\alpha_t\\bar\\beta_{t-1}^2}{\\bar\\beta_t^2}x_t
+ \\frac{\\bar\\alpha_{t-1}\\beta_t^2}{\\bar\\beta_t^2}x_0$, variance
$\\frac{\\bar\\beta_{t-1}^2\\beta_t^2}{\\bar\\beta_t^2}$).

References:
    Su Jianlin, "生成扩散模型漫谈（三）：DDPM = 贝叶斯 + 去噪", https://kexue.fm/archives/9164.
    J. Ho et al., "Denoising Diffusion Probabilistic Models", NeurIPS 2020, eqs. (4), (6), (7).
"""

from __future__ import annotations

import jax.numpy as jnp

from kexue_jax._src.checks import check_floating, check_integer, check_same_shape, check_shape
from kexue_jax._src.typing import Array, Float, Int
from kexue_jax.diffusion._broadcast import per_example
from kexue_jax.diffusion.parameterization import x0_from_eps
from kexue_jax.diffusion.schedules import DiscreteSchedule


def _check(x: Array, t: Array, name: str = "x0") -> None:
    check_floating(name, x)
    check_integer("t", t)
    check_shape("t", t, (x.shape[0],))


def marginal_coeffs(schedule: DiscreteSchedule, t: Int[Array, " b"]) -> tuple[Array, Array]:
    """$(\\sqrt{\\bar\\alpha_t}, \\sqrt{1-\\bar\\alpha_t})$ at integer steps ``t [b]``, each float32 ``[b]``."""
    check_integer("t", t)
    return jnp.sqrt(schedule.alphas_cumprod[t]), jnp.sqrt(schedule.one_minus_alphas_cumprod[t])


def q_sample(
    schedule: DiscreteSchedule,
    x0: Float[Array, "b ..."],
    t: Int[Array, " b"],
    noise: Float[Array, "b ..."],
) -> Float[Array, "b ..."]:
    """$x_t = \\sqrt{\\bar\\alpha_t}\\,x_0 + \\sqrt{1-\\bar\\alpha_t}\\,\\varepsilon$.

    Args:
        schedule: the discrete schedule.
        x0: clean data ``[b, ...]``.
        t: ``int32 [b]`` step indices.
        noise: $\\varepsilon$, same shape as ``x0``.

    Returns:
        $x_t$, shape of ``x0``.

    Raises:
        ValueError: on mismatched shapes or dtypes.
    """
    _check(x0, t)
    check_same_shape("x0", x0, "noise", noise)
    a, s = marginal_coeffs(schedule, t)
    return per_example(a, x0) * x0 + per_example(s, x0) * noise


def q_posterior(
    schedule: DiscreteSchedule,
    x0: Float[Array, "b ..."],
    x_t: Float[Array, "b ..."],
    t: Int[Array, " b"],
) -> tuple[Float[Array, "b ..."], Float[Array, " b"]]:
    """Mean and variance of $q(x_{t-1} \\mid x_t, x_0)$ (formula in the module docstring).

    Args:
        schedule: the discrete schedule.
        x0: ``[b, ...]``.
        x_t: ``[b, ...]``.
        t: ``int32 [b]``; at $t = 0$ the variance is 0 and the mean is $x_0$.

    Returns:
        ``(mean [b, ...], variance [b])``, float32.

    Example:
        >>> from kexue_jax.diffusion.schedules import linear_schedule
        >>> s = linear_schedule(100)
        >>> x0, xt = jnp.ones((1, 2)), jnp.zeros((1, 2))
        >>> mean, var = q_posterior(s, x0, xt, jnp.array([0]))
        >>> mean.tolist(), var.tolist()
        ([[1.0, 1.0]], [0.0])
    """
    _check(x0, t)
    check_same_shape("x0", x0, "x_t", x_t)
    c0, ct = schedule.posterior_coef_x0[t], schedule.posterior_coef_xt[t]
    mean = per_example(c0, x0) * x0 + per_example(ct, x_t) * x_t
    return mean, schedule.posterior_variance[t]


def predict_x0_from_eps(
    schedule: DiscreteSchedule,
    x_t: Float[Array, "b ..."],
    t: Int[Array, " b"],
    eps: Float[Array, "b ..."],
) -> Float[Array, "b ..."]:
    """The denoiser $\\hat x_0 = (x_t - \\sqrt{1-\\bar\\alpha_t}\\,\\varepsilon)/\\sqrt{\\bar\\alpha_t}$ (kexue.fm 9164).

    Args:
        schedule: the discrete schedule.
        x_t: ``[b, ...]``.
        t: ``int32 [b]``.
        eps: predicted noise, same shape as ``x_t``.

    Returns:
        $\\hat x_0$, shape of ``x_t``.
    """
    _check(x_t, t, "x_t")
    check_same_shape("x_t", x_t, "eps", eps)
    return x0_from_eps(x_t, eps, *marginal_coeffs(schedule, t))
