"""DDIM: the non-Markovian sampler with stochasticity $\\eta$ on a respaced step subset, and its inversion.

On the subset $\\tau_S > \\dots > \\tau_1$ with $\\bar\\alpha_i = \\bar\\alpha_{\\tau_i}$ ($\\bar\\alpha_0 = 1$):

$x_{i-1} = \\sqrt{\\bar\\alpha_{i-1}}\\,\\hat x_0 + \\sqrt{1 - \\bar\\alpha_{i-1} - \\sigma_i^2}\\,\\varepsilon_\\theta(x_i, \\tau_i) + \\sigma_i z$,
$\\sigma_i = \\eta\\sqrt{\\frac{1-\\bar\\alpha_{i-1}}{1-\\bar\\alpha_i}}\\sqrt{1 - \\frac{\\bar\\alpha_i}{\\bar\\alpha_{i-1}}}$.

$\\eta = 0$ is deterministic (an Euler discretisation of the probability-flow ODE in the variables
$x/\\sqrt{\\bar\\alpha}$ and $\\sqrt{1-\\bar\\alpha}/\\sqrt{\\bar\\alpha}$), so it can be run backwards:
:func:`ddim_encode` maps data to latents and :func:`ddim_decode` maps them back.
$\\eta = 1$ gives DDPM's ``"small"`` variance.

References:
    J. Song, C. Meng, S. Ermon, "Denoising Diffusion Implicit Models", ICLR 2021, eq. (12), (16).
    Su Jianlin, "生成扩散模型漫谈（四）：DDIM = 高观点DDPM", https://kexue.fm/archives/9181.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from kexue_jax._src.checks import check_floating, check_rank
from kexue_jax._src.typing import Array, Float, PRNGKey
from kexue_jax.diffusion.parameterization import x0_from_eps
from kexue_jax.diffusion.samplers._common import check_num_steps, check_sample_shape
from kexue_jax.diffusion.schedules import DiscreteSchedule, respace


def _tables(schedule: DiscreteSchedule, num_steps: int | None) -> tuple[DiscreteSchedule, Array, Array]:
    num_steps = schedule.num_steps if num_steps is None else num_steps
    check_num_steps(num_steps)
    sched, steps = respace(schedule, num_steps)
    # 1 - alpha_bar at the previous step, from the float64-derived table (exact near t = 0).
    om_prev = jnp.concatenate([jnp.zeros((1,), jnp.float32), sched.one_minus_alphas_cumprod[:-1]])
    return sched, om_prev, steps


def _check_eta(eta: float) -> None:
    if not eta >= 0.0:
        raise ValueError(f"eta: expected eta >= 0, got {eta!r}")


def ddim_decode(
    eps_fn: Callable[[Array, Array], Array],
    schedule: DiscreteSchedule,
    x_T: Float[Array, "b ..."],
    *,
    num_steps: int | None = None,
    eta: float = 0.0,
    key: PRNGKey | None = None,
) -> Float[Array, "b ..."]:
    """Run the DDIM update from ``x_T`` (at step $\\tau_S$) down to $x_0$ (module formula).

    Args:
        eps_fn: $\\varepsilon_\\theta$ ``(x, t int32 [b])``.
        schedule: the training schedule.
        x_T: latents ``[b, ...]``.
        num_steps: $S$ (default $T$).
        eta: $\\eta \\ge 0$; ``key`` is required when $\\eta > 0$.
        key: PRNG key (unused when $\\eta = 0$).

    Returns:
        float32 ``[b, ...]``.

    Raises:
        ValueError: for a bad ``eta``, ``num_steps``, ``x_T`` or a missing ``key``.
    """
    _check_eta(eta)
    check_floating("x_T", x_T)
    check_rank("x_T", x_T, tuple(range(2, 9)))
    if eta > 0 and key is None:
        raise ValueError("key: required when eta > 0")
    sched, om_prev, steps = _tables(schedule, num_steps)
    b = x_T.shape[0]

    def step(x, i):
        a_i, a_p = sched.alphas_cumprod[i], sched.alphas_cumprod_prev[i]
        eps = eps_fn(x, jnp.full((b,), steps[i], jnp.int32))
        x0_hat = x0_from_eps(x, eps, jnp.sqrt(a_i), jnp.sqrt(sched.one_minus_alphas_cumprod[i]))
        # sigma_i^2 = eta^2 (1 - a_p)/(1 - a_i) (1 - a_i/a_p) = eta^2 * posterior variance.
        var = eta**2 * sched.posterior_variance[i]
        sigma = jnp.sqrt(var)
        x = jnp.sqrt(a_p) * x0_hat + jnp.sqrt(jnp.maximum(om_prev[i] - var, 0.0)) * eps
        if eta > 0:
            x = x + sigma * jax.random.normal(jax.random.fold_in(key, i), x.shape, jnp.float32)
        return x, None

    n = steps.shape[0]
    x, _ = jax.lax.scan(step, x_T.astype(jnp.float32), jnp.arange(n - 1, -1, -1, dtype=jnp.int32))
    return x


def ddim_encode(
    eps_fn: Callable[[Array, Array], Array],
    schedule: DiscreteSchedule,
    x0: Float[Array, "b ..."],
    *,
    num_steps: int | None = None,
) -> Float[Array, "b ..."]:
    """Deterministic DDIM inversion: the $\\eta = 0$ update run from $x_0$ up to $x_{\\tau_S}$.

    Step $i-1 \\to i$: $x_i = \\sqrt{\\bar\\alpha_i}\\,\\hat x_0 + \\sqrt{1-\\bar\\alpha_i}\\,\\varepsilon_\\theta(x_{i-1}, \\tau_{i-1})$
    (with $\\tau_0$ used at the clean start), so ``ddim_decode(ddim_encode(x0))`` $\\approx$ ``x0`` up to
    the $O(1/S)$ discretisation error.

    Args:
        eps_fn: $\\varepsilon_\\theta$ ``(x, t int32 [b])``.
        schedule: the training schedule.
        x0: data ``[b, ...]``.
        num_steps: $S$ (default $T$).

    Returns:
        float32 latents ``[b, ...]``.
    """
    check_floating("x0", x0)
    check_rank("x0", x0, tuple(range(2, 9)))
    sched, om_prev, steps = _tables(schedule, num_steps)
    b = x0.shape[0]

    def step(x, i):
        a_i, a_p = sched.alphas_cumprod[i], sched.alphas_cumprod_prev[i]
        eps = eps_fn(x, jnp.full((b,), steps[jnp.maximum(i - 1, 0)], jnp.int32))
        x0_hat = x0_from_eps(x, eps, jnp.sqrt(a_p), jnp.sqrt(om_prev[i]))
        return jnp.sqrt(a_i) * x0_hat + jnp.sqrt(sched.one_minus_alphas_cumprod[i]) * eps, None

    x, _ = jax.lax.scan(step, x0.astype(jnp.float32), jnp.arange(steps.shape[0], dtype=jnp.int32))
    return x


def ddim_sample(
    eps_fn: Callable[[Array, Array], Array],
    schedule: DiscreteSchedule,
    shape: tuple[int, ...],
    *,
    num_steps: int | None = None,
    eta: float = 0.0,
    key: PRNGKey,
) -> Float[Array, "b ..."]:
    """Draw ``shape`` samples with DDIM from $x_T \\sim \\mathcal N(0, I)$.

    Args:
        eps_fn: $\\varepsilon_\\theta$ ``(x, t int32 [b])``.
        schedule: the training schedule.
        shape: ``(b, ...)``.
        num_steps: $S$ (Song et al. Table 1: 10 to 1000).
        eta: $\\eta$ (0: DDIM, 1: DDPM-like).
        key: PRNG key.

    Returns:
        float32 samples of shape ``shape``.
    """
    shape = check_sample_shape(shape)
    k_init, k_loop = jax.random.split(key)
    x_T = jax.random.normal(k_init, shape, jnp.float32)
    return ddim_decode(eps_fn, schedule, x_T, num_steps=num_steps, eta=eta, key=k_loop)
