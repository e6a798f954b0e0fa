"""The variational bound of a discrete diffusion model, term by term, and its bits/dim.

$-\\log p_\\theta(x_0) \\le L_T + \\sum_{t \\ge 2} L_{t-1} + L_0$ with
$L_T = \\mathrm{KL}(q(x_T \\mid x_0)\\,\\|\\,\\mathcal N(0, I))$,
$L_{t-1} = \\mathrm{KL}(q(x_{t-1} \\mid x_t, x_0)\\,\\|\\,p_\\theta(x_{t-1} \\mid x_t))$ and the decoder
$L_0 = -\\log p_\\theta(x_0 \\mid x_1)$, a discretized Gaussian over the ``num_bins`` levels of the
data in $[-1, 1]$ (Ho et al. eq. (13)). Each $L_{t-1}$ is estimated with one draw of $x_t$, as in
improved-diffusion's ``calc_bpd_loop``. Because $L_0$ is a log-**mass**, the bound is in nats of
the discrete data and its bits/dim needs no dequantization offset (``bin_width=None`` in
:func:`kexue_jax.metrics.bits_per_dim`).

References:
    Su Jianlin, "生成扩散模型漫谈（二）：DDPM = 自回归式VAE", https://kexue.fm/archives/9152.
    J. Ho et al., "Denoising Diffusion Probabilistic Models", NeurIPS 2020, eq. (5), (13).
    A. Nichol, P. Dhariwal, "Improved Denoising Diffusion Probabilistic Models", ICML 2021, §2-3.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from kexue_jax._src.checks import check_floating, check_in, check_rank
from kexue_jax._src.numerics import sum_except_batch
from kexue_jax._src.typing import Array, Float, PRNGKey
from kexue_jax.diffusion._broadcast import per_example
from kexue_jax.diffusion.parameterization import PREDICTIONS, eps_from_prediction, x0_from_eps
from kexue_jax.diffusion.posterior import marginal_coeffs, q_posterior, q_sample
from kexue_jax.diffusion.schedules import DiscreteSchedule
from kexue_jax.likelihoods.discretized_gaussian import discretized_gaussian_log_prob
from kexue_jax.likelihoods.gaussian import gaussian_kl
from kexue_jax.metrics.bits_per_dim import bits_per_dim

SIGMAS = ("small", "large")


class VLB(NamedTuple):
    """The bound's terms in float32 nats per example.

    Attributes:
        prior: $L_T$, ``[b]``.
        terms: ``[b, T]``; column 0 is the decoder $L_0$, column $t \\ge 1$ is $L_t$ (index convention
            of :mod:`kexue_jax.diffusion.schedules`).
        total: $L_T + \\sum_t$ ``terms``, ``[b]``: an upper bound on $-\\log P(x_0)$.
    """

    prior: Float[Array, " b"]
    terms: Float[Array, "b T"]
    total: Float[Array, " b"]


def model_log_variance(schedule: DiscreteSchedule, sigma: str) -> Float[Array, " T"]:
    """$\\log\\sigma_t^2$ of the reverse kernel: ``"small"`` $\\tilde\\beta_t$, ``"large"`` $\\beta_t$.

    At $t = 0$ (where $\\tilde\\beta = 0$) both use $\\tilde\\beta_1$, as improved-diffusion does.
    """
    check_in("sigma", sigma, SIGMAS)
    post = schedule.posterior_variance
    first = post[1:2] if schedule.num_steps > 1 else schedule.betas[:1]
    rest = post[1:] if sigma == "small" else schedule.betas[1:]
    return jnp.log(jnp.concatenate([first, rest]))


def vlb_terms(
    model_fn: Callable[[Array, Array], Array],
    schedule: DiscreteSchedule,
    x0: Float[Array, "b ..."],
    *,
    prediction: str = "eps",
    sigma: str = "small",
    num_bins: int = 256,
    key: PRNGKey,
) -> VLB:
    """Every term of the variational bound (one ``lax.scan`` over the $T$ steps).

    Args:
        model_fn: ``(x_t, t int32 [b]) -> [b, ...]``, predicting ``prediction``.
        schedule: the discrete schedule.
        x0: data on the ``num_bins`` levels of $[-1, 1]$, ``[b, ...]``.
        prediction: ``"eps"``, ``"x0"`` or ``"v"``.
        sigma: the fixed reverse variance, ``"small"`` ($\\tilde\\beta_t$) or ``"large"`` ($\\beta_t$).
        num_bins: number of data levels (256 for 8-bit images).
        key: PRNG key for the draws of $x_t$.

    Returns:
        A :class:`VLB`.

    Raises:
        ValueError: for unknown options or a non-float ``x0`` of rank < 2.
    """
    check_in("prediction", prediction, PREDICTIONS)
    check_in("sigma", sigma, SIGMAS)
    check_floating("x0", x0)
    check_rank("x0", x0, tuple(range(2, 9)))
    x0 = x0.astype(jnp.float32)
    b = x0.shape[0]
    log_var = model_log_variance(schedule, sigma)

    def term(_, t_scalar):
        t = jnp.full((b,), t_scalar, jnp.int32)
        noise = jax.random.normal(jax.random.fold_in(key, t_scalar), x0.shape, jnp.float32)
        x_t = q_sample(schedule, x0, t, noise)
        a, s = marginal_coeffs(schedule, t)
        eps = eps_from_prediction(prediction, x_t, model_fn(x_t, t).astype(jnp.float32), a, s)
        x0_hat = x0_from_eps(x_t, eps, a, s)
        mean_p, _ = q_posterior(schedule, x0_hat, x_t, t)
        mean_q, var_q = q_posterior(schedule, x0, x_t, t)
        lv_p = jnp.broadcast_to(log_var[t_scalar], x0.shape)
        # var_q = 0 at t = 0; the KL branch is discarded there, the floor only keeps it finite.
        lv_q = jnp.broadcast_to(per_example(jnp.log(jnp.maximum(var_q, 1e-30)), x0), x0.shape)
        kl = sum_except_batch(gaussian_kl(mean_q, lv_q, mean_p, lv_p))
        nll = -sum_except_batch(
            discretized_gaussian_log_prob(x0, mean_p, 0.5 * lv_p, num_bins=num_bins)
        )
        return None, jnp.where(t_scalar == 0, nll, kl)

    _, terms = jax.lax.scan(term, None, jnp.arange(schedule.num_steps, dtype=jnp.int32))
    terms = terms.T
    a_T, s_T = marginal_coeffs(schedule, jnp.full((b,), schedule.num_steps - 1, jnp.int32))
    mean_T = per_example(a_T, x0) * x0
    lv_T = jnp.broadcast_to(per_example(jnp.log(jnp.square(s_T)), x0), x0.shape)
    prior = sum_except_batch(gaussian_kl(mean_T, lv_T, jnp.zeros_like(x0), jnp.zeros_like(x0)))
    return VLB(prior, terms, prior + jnp.sum(terms, axis=1))


def elbo_bits_per_dim(
    model_fn: Callable[[Array, Array], Array],
    schedule: DiscreteSchedule,
    x0: Float[Array, "b ..."],
    *,
    prediction: str = "eps",
    sigma: str = "small",
    num_bins: int = 256,
    key: PRNGKey,
) -> Float[Array, " b"]:
    """The bound of :func:`vlb_terms` in bits/dim of the discrete data (improved-diffusion's ``vb``+prior).

    Args:
        model_fn: as in :func:`vlb_terms`.
        schedule: the discrete schedule.
        x0: data on the levels of $[-1, 1]$, ``[b, ...]``.
        prediction: ``"eps"``, ``"x0"`` or ``"v"``.
        sigma: ``"small"`` or ``"large"``.
        num_bins: number of data levels.
        key: PRNG key.

    Returns:
        float32 ``[b]`` upper bounds on the bits/dim (DDPM CIFAR-10: $\\le 3.75$).
    """
    vlb = vlb_terms(model_fn, schedule, x0, prediction=prediction, sigma=sigma,
                    num_bins=num_bins, key=key)
    return bits_per_dim(-vlb.total, num_dims=int(x0[0].size))
