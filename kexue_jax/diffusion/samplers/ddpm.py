"""DDPM ancestral sampling, $x_{t-1} = \\mu_\\theta(x_t, t) + \\sigma_t z$, as one ``lax.scan``.

$\\mu_\\theta$ is the posterior mean $\\tilde\\mu_t(x_t, \\hat x_0)$ at the denoised
$\\hat x_0 = (x_t - \\sqrt{1-\\bar\\alpha_t}\\varepsilon_\\theta)/\\sqrt{\\bar\\alpha_t}$, which equals
$\\frac{1}{\\sqrt{\\alpha_t}}(x_t - \\frac{\\beta_t}{\\sqrt{1-\\bar\\alpha_t}}\\varepsilon_\\theta)$
(kexue.fm 9164); $\\sigma_t^2 = \\beta_t$ (``"large"``, optimal for $x_0 \\sim \\mathcal N(0, I)$) or
$\\tilde\\beta_t$ (``"small"``, optimal for a single point), Ho et al. §3.2.

References:
    Su Jianlin, https://kexue.fm/archives/9152 and https://kexue.fm/archives/9164.
    J. Ho et al., "Denoising Diffusion Probabilistic Models", NeurIPS 2020, Algorithm 2.
    A. Nichol, P. Dhariwal, "Improved DDPM", ICML 2021 (respacing to fewer steps).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from kexue_jax._src.checks import check_in
from kexue_jax._src.typing import Array, Float, PRNGKey
from kexue_jax.diffusion.parameterization import x0_from_eps
from kexue_jax.diffusion.posterior import marginal_coeffs, q_posterior
from kexue_jax.diffusion.samplers._common import check_num_steps, check_sample_shape
from kexue_jax.diffusion.schedules import DiscreteSchedule, respace

SIGMAS = ("large", "small")


def ddpm_sample(
    eps_fn: Callable[[Array, Array], Array],
    schedule: DiscreteSchedule,
    shape: tuple[int, ...],
    *,
    num_steps: int | None = None,
    sigma: str = "large",
    clip_denoised: bool = False,
    key: PRNGKey,
) -> Float[Array, "b ..."]:
    """Draw ``shape`` samples by ancestral sampling from $x_T \\sim \\mathcal N(0, I)$.

    Args:
        eps_fn: $\\varepsilon_\\theta$ ``(x [b, ...], t int32 [b]) -> [b, ...]`` on the training steps.
        schedule: the training schedule ($T$ steps).
        shape: ``(b, ...)`` of the samples.
        num_steps: $S \\le T$ steps on the respaced schedule (default all $T$).
        sigma: ``"large"`` ($\\sigma_t^2 = \\beta_t$) or ``"small"`` ($\\tilde\\beta_t$).
        clip_denoised: clip $\\hat x_0$ to $[-1, 1]$ (images).
        key: PRNG key.

    Returns:
        float32 samples of shape ``shape``.

    Raises:
        ValueError: for a bad ``shape``, ``num_steps`` or ``sigma``.
    """
    check_in("sigma", sigma, SIGMAS)
    shape = check_sample_shape(shape)
    num_steps = schedule.num_steps if num_steps is None else num_steps
    check_num_steps(num_steps)
    sched, steps = respace(schedule, num_steps)
    var = sched.betas if sigma == "large" else sched.posterior_variance
    b = shape[0]
    k_init, k_loop = jax.random.split(key)

    def step(x, i):
        t = jnp.full((b,), i, jnp.int32)
        a, s = marginal_coeffs(sched, t)
        x0_hat = x0_from_eps(x, eps_fn(x, jnp.full((b,), steps[i], jnp.int32)), a, s)
        if clip_denoised:
            x0_hat = jnp.clip(x0_hat, -1.0, 1.0)
        mean, _ = q_posterior(sched, x0_hat, x, t)
        z = jax.random.normal(jax.random.fold_in(k_loop, i), shape, jnp.float32)
        std = jnp.where(i > 0, jnp.sqrt(var[i]), 0.0)
        return mean + std * z, None

    x_T = jax.random.normal(k_init, shape, jnp.float32)
    x, _ = jax.lax.scan(step, x_T, jnp.arange(num_steps - 1, -1, -1, dtype=jnp.int32))
    return x


__all__ = ["ddpm_sample"]
