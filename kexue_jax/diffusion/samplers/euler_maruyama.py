"""Euler–Maruyama for $dx = f(x, t)\\,dt + g(t)\\,dw$ on a time grid, and the reverse-SDE sampler.

One step: $x \\leftarrow x + f(x, t)\\Delta t + g(t)\\sqrt{|\\Delta t|}\\,z$, $z \\sim \\mathcal N(0, I)$;
the grid may decrease (reverse time, $\\Delta t < 0$). Strong order 1/2 in general and 1 for
additive noise ($g$ independent of $x$, as for every SDE here); weak order 1.

References:
    P. E. Kloeden, E. Platen, "Numerical Solution of Stochastic Differential Equations", 1992, §9-10.
    Y. Song et al., "Score-Based Generative Modeling through SDEs", ICLR 2021 (``EulerMaruyamaPredictor``).
    Su Jianlin, https://kexue.fm/archives/9209.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from kexue_jax._src.checks import check_floating, check_shape
from kexue_jax._src.typing import Array, Float, PRNGKey
from kexue_jax.diffusion._broadcast import full_time, per_example
from kexue_jax.diffusion.samplers._common import (
    check_num_steps,
    check_sample_shape,
    check_time_grid,
    reverse_time_grid,
)
from kexue_jax.diffusion.sde import SDE, ScoreFn, reverse_sde

DriftFn = Callable[[Array, Array], Array]
DiffusionFn = Callable[[Array], Array]


def euler_maruyama_step(
    drift_fn: DriftFn,
    diffusion_fn: DiffusionFn,
    x: Float[Array, "b ..."],
    t: Float[Array, " b"],
    dt: Float[Array, ""],
    z: Float[Array, "b ..."],
) -> tuple[Float[Array, "b ..."], Float[Array, "b ..."]]:
    """One step; returns ``(x_next, x_mean)`` where ``x_mean`` omits the noise term.

    Args:
        drift_fn: $f$ ``(x [b, ...], t float32 [b])``.
        diffusion_fn: $g$ ``(t [b]) -> [b]``.
        x: state ``[b, ...]``.
        t: current time ``[b]``.
        dt: the (signed) step.
        z: standard normal draw, shape of ``x``.

    Returns:
        ``(x + f dt + g sqrt|dt| z, x + f dt)``.
    """
    mean = x + drift_fn(x, t) * dt
    return mean + per_example(diffusion_fn(t), x) * jnp.sqrt(jnp.abs(dt)) * z, mean


def euler_maruyama(
    drift_fn: DriftFn,
    diffusion_fn: DiffusionFn,
    x_init: Float[Array, "b ..."],
    ts: Float[Array, " n1"],
    *,
    noise: Float[Array, "n b ..."] | None = None,
    denoise: bool = False,
    key: PRNGKey | None = None,
) -> Float[Array, "b ..."]:
    """Integrate the SDE over the grid ``ts`` with Euler–Maruyama (one ``lax.scan``).

    Args:
        drift_fn: $f$ ``(x, t [b])``.
        diffusion_fn: $g$ ``(t [b]) -> [b]``.
        x_init: state at ``ts[0]``, ``[b, ...]``.
        ts: ``[n + 1]`` times (increasing or decreasing).
        noise: optional ``[n, b, ...]`` standard normals (to share one Brownian path across grids);
            otherwise they are drawn from ``key``, one ``fold_in`` per step.
        denoise: return the last step's mean (no noise on the last step), score_sde's
            ``noise_removal``.
        key: PRNG key, required when ``noise`` is None.

    Returns:
        The state at ``ts[-1]``.

    Raises:
        ValueError: for a bad grid, ``noise`` shape, or neither ``noise`` nor ``key``.
    """
    check_floating("x_init", x_init)
    check_time_grid(ts)
    n = ts.shape[0] - 1
    if noise is None and key is None:
        raise ValueError("key: required when noise is None")
    if noise is not None:
        check_shape("noise", noise, (n, *x_init.shape))
    b = x_init.shape[0]

    def step(x, i):
        t, dt = ts[i], ts[i + 1] - ts[i]
        z = noise[i] if noise is not None else jax.random.normal(
            jax.random.fold_in(key, i), x.shape, x.dtype)
        x_next, mean = euler_maruyama_step(drift_fn, diffusion_fn, x, full_time(t, b), dt, z)
        if denoise:
            x_next = jnp.where(i == n - 1, mean, x_next)
        return x_next, None

    x, _ = jax.lax.scan(step, x_init, jnp.arange(n))
    return x


def euler_maruyama_sample(
    sde: SDE,
    score_fn: ScoreFn,
    shape: tuple[int, ...],
    *,
    num_steps: int = 1000,
    eps: float = 1e-3,
    denoise: bool = True,
    key: PRNGKey,
) -> Float[Array, "b ..."]:
    """Sample by Euler–Maruyama on the reverse-time SDE from the prior at $T$ down to $\\epsilon$.

    Args:
        sde: the forward SDE.
        score_fn: $s_\\theta(x, t)$, float32 ``t [b]``.
        shape: ``(b, ...)``.
        num_steps: $N$ (score_sde: 1000).
        eps: end time $\\epsilon$ (score_sde sampling: 1e-3).
        denoise: drop the noise of the last step.
        key: PRNG key.

    Returns:
        float32 samples of shape ``shape``.
    """
    shape = check_sample_shape(shape)
    check_num_steps(num_steps)
    k_init, k_loop = jax.random.split(key)
    rsde = reverse_sde(sde, score_fn)
    x_T = sde.prior_sample(shape, key=k_init)
    ts = reverse_time_grid(sde.T, eps, num_steps)
    return euler_maruyama(rsde.drift, rsde.diffusion, x_T, ts, denoise=denoise, key=k_loop)
