"""Training losses: $\\varepsilon$-, $x_0$- and $v$-prediction (discrete) and denoising score matching (SDE).

All return float32 per-example losses ``[b]``; average them for the step loss. Model functions:
``model_fn(x_t, t)`` with ``int32 t [b]`` for the discrete losses, ``score_fn(x_t, t)`` with float32
``t [b]`` for score matching.

References:
    J. Ho et al., "Denoising Diffusion Probabilistic Models", NeurIPS 2020, eq. (14) ($L_{simple}$).
    T. Salimans, J. Ho, "Progressive Distillation for Fast Sampling of Diffusion Models", ICLR 2022.
    Y. Song et al., "Score-Based Generative Modeling through SDEs", ICLR 2021, eq. (7).
    Y. Song, C. Durkan, I. Murray, S. Ermon, "Maximum Likelihood Training of Score-Based Diffusion
    Models", NeurIPS 2021 (likelihood weighting $\\lambda = g^2$).
    Su Jianlin, https://kexue.fm/archives/9152 and https://kexue.fm/archives/9209.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from kexue_jax._src.checks import check_floating, check_in, check_rank
from kexue_jax._src.numerics import sum_except_batch, to_f32
from kexue_jax._src.typing import Array, Float, PRNGKey
from kexue_jax.diffusion._broadcast import per_example
from kexue_jax.diffusion.parameterization import PREDICTIONS, v_target
from kexue_jax.diffusion.posterior import marginal_coeffs
from kexue_jax.diffusion.schedules import DiscreteSchedule
from kexue_jax.diffusion.sde import SDE

WEIGHTINGS = ("score_sde", "likelihood", "none")
REDUCTIONS = ("mean", "sum")


def _reduce(err: Array, reduce: str) -> Array:
    total = sum_except_batch(err)
    return total if reduce == "sum" else total / (err[0].size)


def ddpm_loss(
    model_fn: Callable[[Array, Array], Array],
    schedule: DiscreteSchedule,
    x0: Float[Array, "b ..."],
    *,
    prediction: str = "eps",
    reduce: str = "mean",
    key: PRNGKey,
) -> Float[Array, " b"]:
    """$L_{simple}$: $\\|y - \\hat y_\\theta(x_t, t)\\|^2$ with $t \\sim U\\{0..T-1\\}$, $y \\in \\{\\varepsilon, x_0, v\\}$.

    $x_t = \\sqrt{\\bar\\alpha_t}x_0 + \\sqrt{1-\\bar\\alpha_t}\\varepsilon$; the target is $\\varepsilon$
    (Ho et al.), $x_0$, or $v = \\sqrt{\\bar\\alpha_t}\\varepsilon - \\sqrt{1-\\bar\\alpha_t}x_0$
    (Salimans & Ho).

    Args:
        model_fn: ``(x_t [b, ...], t int32 [b]) -> [b, ...]``.
        schedule: the discrete schedule.
        x0: data ``[b, ...]`` (rank >= 2).
        prediction: ``"eps"``, ``"x0"`` or ``"v"``.
        reduce: ``"mean"`` over the event dims (Ho's ``mean_flat``) or ``"sum"`` (Su's advice for
            Keras-DDPM: the same minimiser, a $D$-times larger scale).
        key: PRNG key for $t$ and $\\varepsilon$.

    Returns:
        float32 ``[b]`` losses.

    Raises:
        ValueError: for an unknown ``prediction``/``reduce`` or a non-float ``x0`` of rank < 2.

    Example:
        >>> from kexue_jax.diffusion.schedules import linear_schedule
        >>> x0 = jnp.zeros((4, 3))
        >>> loss = ddpm_loss(lambda x, t: jnp.zeros_like(x), linear_schedule(100), x0,
        ...                  prediction="x0", key=jax.random.key(0))
        >>> loss.tolist()
        [0.0, 0.0, 0.0, 0.0]
    """
    check_in("prediction", prediction, PREDICTIONS)
    check_in("reduce", reduce, REDUCTIONS)
    check_floating("x0", x0)
    check_rank("x0", x0, tuple(range(2, 9)))
    k_t, k_e = jax.random.split(key)
    t = jax.random.randint(k_t, (x0.shape[0],), 0, schedule.num_steps, jnp.int32)
    eps = jax.random.normal(k_e, x0.shape, x0.dtype)
    a, s = marginal_coeffs(schedule, t)
    x_t = per_example(a, x0) * x0 + per_example(s, x0) * eps
    target = {"eps": eps, "x0": x0}.get(prediction)
    if target is None:
        target = v_target(x0, eps, a, s)
    return _reduce(jnp.square(to_f32(model_fn(x_t, t)) - to_f32(target)), reduce)


def dsm_loss(
    score_fn: Callable[[Array, Array], Array],
    sde: SDE,
    x0: Float[Array, "b ..."],
    *,
    weighting: str = "score_sde",
    eps: float = 1e-5,
    reduce: str = "sum",
    key: PRNGKey,
) -> Float[Array, " b"]:
    """Denoising score matching $\\lambda(t)\\,\\|s_\\theta(x_t, t) - \\nabla\\log p(x_t \\mid x_0)\\|^2$.

    $t \\sim U(\\epsilon, T)$, $x_t = m_t x_0 + s_t z$, $\\nabla\\log p(x_t \\mid x_0) = -z/s_t$.
    Weightings: ``"score_sde"`` $\\lambda = s_t^2$ (i.e. $\\|s_t s_\\theta + z\\|^2$, score_sde's
    default), ``"likelihood"`` $\\lambda = g(t)^2$ (bounds the negative log-likelihood, Song et al.
    2021b), ``"none"`` $\\lambda = 1$.

    Args:
        score_fn: ``(x_t [b, ...], t float32 [b]) -> [b, ...]``.
        sde: a forward SDE.
        x0: data ``[b, ...]``.
        weighting: one of ``"score_sde"``, ``"likelihood"``, ``"none"``.
        eps: the smallest time, $\\epsilon$ (score_sde: 1e-5).
        reduce: ``"sum"`` over event dims (score_sde's ``reduce_mean=False``) or ``"mean"``.
        key: PRNG key for $t$ and $z$.

    Returns:
        float32 ``[b]`` losses.

    Raises:
        ValueError: for unknown options or a non-float ``x0``.
    """
    check_in("weighting", weighting, WEIGHTINGS)
    check_in("reduce", reduce, REDUCTIONS)
    check_floating("x0", x0)
    check_rank("x0", x0, tuple(range(2, 9)))
    k_t, k_z = jax.random.split(key)
    b = x0.shape[0]
    t = jax.random.uniform(k_t, (b,), jnp.float32, eps, sde.T)
    z = jax.random.normal(k_z, x0.shape, x0.dtype)
    mean, std = sde.marginal(x0, t)
    x_t = mean + per_example(std, x0) * z
    score = to_f32(score_fn(x_t, t))
    if weighting == "score_sde":
        return _reduce(jnp.square(score * per_example(std, x0) + z), reduce)
    err = _reduce(jnp.square(score + z / per_example(std, x0)), reduce)
    return err * jnp.square(sde.diffusion(t)) if weighting == "likelihood" else err
