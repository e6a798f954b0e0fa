"""Predictor–corrector sampling: an Euler–Maruyama predictor and a Langevin corrector with an SNR.

At each time $t_i$: ``num_corrector_steps`` Langevin steps
$x \\leftarrow x + \\epsilon_i s_\\theta(x, t_i) + \\sqrt{2\\epsilon_i}\\,z$ with
$\\epsilon_i = 2\\alpha_i\\,(r\\,\\|z\\|/\\|s_\\theta\\|)^2$ ($r$ = ``snr``, $\\alpha_i$ the SDE's
``discrete_alpha``), then one reverse-SDE Euler–Maruyama step to $t_{i+1}$ (score_sde Algorithms 2-3).

Note:
    Like score_sde, the default ``norm="batch"`` averages $\\|z\\|$ and $\\|s_\\theta\\|$ over the
    batch, so one example's step depends on the others. ``norm="example"`` uses each example's
    own norms (a batch is then the ``vmap`` of single examples); it is only sound in high
    dimension, where $\\|s_\\theta\\|$ concentrates: in $d = 2$ a near-zero score norm gives a huge
    step.

References:
    Y. Song et al., "Score-Based Generative Modeling through SDEs", ICLR 2021, §4.2, App. G
    (``snr=0.16`` for CIFAR-10 VE).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from kexue_jax._src.checks import check_in, check_positive
from kexue_jax._src.numerics import sum_except_batch
from kexue_jax._src.typing import Array, Float, PRNGKey
from kexue_jax.diffusion._broadcast import full_time, per_example
from kexue_jax.diffusion.samplers._common import (
    check_num_steps,
    check_sample_shape,
    reverse_time_grid,
)
from kexue_jax.diffusion.samplers.euler_maruyama import euler_maruyama_step
from kexue_jax.diffusion.sde import SDE, ScoreFn, reverse_sde

NORMS = ("batch", "example")


def langevin_step(
    score_fn: ScoreFn,
    x: Float[Array, "b ..."],
    t: Float[Array, " b"],
    *,
    snr: float,
    alpha: Float[Array, " b"] | float = 1.0,
    norm: str = "batch",
    key: PRNGKey,
) -> Float[Array, "b ..."]:
    """One Langevin corrector step at fixed $t$ with the SNR step-size rule (module formula).

    Args:
        score_fn: $s_\\theta(x, t)$.
        x: ``[b, ...]``.
        t: ``[b]``.
        snr: $r > 0$.
        alpha: $\\alpha_i$, ``[b]`` or scalar.
        norm: ``"batch"`` (score_sde: norms averaged over the batch) or ``"example"``.
        key: PRNG key.

    Returns:
        The corrected ``x``.
    """
    score = score_fn(x, t)
    z = jax.random.normal(key, x.shape, x.dtype)
    check_in("norm", norm, NORMS)
    grad_norm = jnp.sqrt(sum_except_batch(jnp.square(score)))
    noise_norm = jnp.sqrt(sum_except_batch(jnp.square(z)))
    if norm == "batch":
        grad_norm, noise_norm = jnp.mean(grad_norm), jnp.mean(noise_norm)
    step = 2.0 * alpha * jnp.square(snr * noise_norm / jnp.maximum(grad_norm, 1e-12))
    step = per_example(step, x)
    return x + step * score + jnp.sqrt(2.0 * step) * z


def pc_sample(
    sde: SDE,
    score_fn: ScoreFn,
    shape: tuple[int, ...],
    *,
    num_steps: int = 1000,
    snr: float = 0.16,
    num_corrector_steps: int = 1,
    norm: str = "batch",
    eps: float = 1e-3,
    denoise: bool = True,
    key: PRNGKey,
) -> Float[Array, "b ..."]:
    """Sample with the predictor–corrector scheme (one ``lax.scan`` over steps, an inner one over correctors).

    Args:
        sde: the forward SDE.
        score_fn: $s_\\theta(x, t)$.
        shape: ``(b, ...)``.
        num_steps: $N$ predictor steps.
        snr: the corrector's signal-to-noise ratio $r$ (0.16 for CIFAR-10 VE).
        num_corrector_steps: Langevin steps per time step ($M$; 0 gives Euler–Maruyama).
        norm: ``"batch"`` or ``"example"`` (see the note).
        eps: end time.
        denoise: drop the noise of the last predictor step.
        key: PRNG key.

    Returns:
        float32 samples of shape ``shape``.

    Raises:
        ValueError: for a bad ``shape``, ``num_steps``, ``snr`` or ``num_corrector_steps``.
    """
    shape = check_sample_shape(shape)
    check_num_steps(num_steps)
    check_positive("snr", snr)
    check_in("norm", norm, NORMS)
    if isinstance(num_corrector_steps, bool) or not isinstance(num_corrector_steps, int) or num_corrector_steps < 0:
        raise ValueError(f"num_corrector_steps: expected an int >= 0, got {num_corrector_steps!r}")
    k_init, k_loop = jax.random.split(key)
    rsde = reverse_sde(sde, score_fn)
    ts = reverse_time_grid(sde.T, eps, num_steps)
    dt_abs = (sde.T - eps) / num_steps
    b = shape[0]

    def step(x, i):
        t = full_time(ts[i], b)
        k_step = jax.random.fold_in(k_loop, i)
        alpha = sde.discrete_alpha(t, dt_abs)

        def correct(x, j):
            return langevin_step(score_fn, x, t, snr=snr, alpha=alpha, norm=norm,
                                 key=jax.random.fold_in(k_step, j + 1)), None

        x, _ = jax.lax.scan(correct, x, jnp.arange(num_corrector_steps))
        z = jax.random.normal(jax.random.fold_in(k_step, 0), shape, jnp.float32)
        x_next, mean = euler_maruyama_step(rsde.drift, rsde.diffusion, x, t, ts[i + 1] - ts[i], z)
        if denoise:
            x_next = jnp.where(i == num_steps - 1, mean, x_next)
        return x_next, None

    x, _ = jax.lax.scan(step, sde.prior_sample(shape, key=k_init), jnp.arange(num_steps))
    return x
