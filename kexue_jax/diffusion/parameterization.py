"""Conversions between what a network predicts: noise $\\varepsilon$, data $x_0$, velocity $v$, score.

With $x_t = a\\,x_0 + s\\,\\varepsilon$ (discrete: $a = \\sqrt{\\bar\\alpha_t}$, $s = \\sqrt{1-\\bar\\alpha_t}$;
continuous: the SDE's ``marginal_coeffs``):
$x_0 = (x_t - s\\varepsilon)/a$, $\\nabla\\log p_t = -\\varepsilon/s$, and for variance-preserving
processes ($a^2 + s^2 = 1$) $v = a\\varepsilon - s x_0$, so $\\varepsilon = s x_t + a v$ and
$x_0 = a x_t - s v$. Coefficients are per example, ``[b]``.

References:
    T. Salimans, J. Ho, "Progressive Distillation for Fast Sampling of Diffusion Models", ICLR 2022
    (v-prediction, App. D); Su Jianlin, https://kexue.fm/archives/9209 (score $= -\\varepsilon/\\bar\\beta_t$).
"""

from __future__ import annotations

from collections.abc import Callable

from kexue_jax._src.checks import check_in
from kexue_jax._src.typing import Array, Float
from kexue_jax.diffusion._broadcast import per_example

PREDICTIONS = ("eps", "x0", "v")


def eps_from_x0(x_t: Float[Array, "b ..."], x0: Float[Array, "b ..."], a: Array, s: Array) -> Array:
    """$\\varepsilon = (x_t - a x_0)/s$."""
    return (x_t - per_example(a, x_t) * x0) / per_example(s, x_t)


def x0_from_eps(x_t: Float[Array, "b ..."], eps: Float[Array, "b ..."], a: Array, s: Array) -> Array:
    """$x_0 = (x_t - s\\varepsilon)/a$."""
    return (x_t - per_example(s, x_t) * eps) / per_example(a, x_t)


def v_target(x0: Float[Array, "b ..."], eps: Float[Array, "b ..."], a: Array, s: Array) -> Array:
    """$v = a\\varepsilon - s x_0$ (Salimans & Ho 2022)."""
    return per_example(a, x0) * eps - per_example(s, x0) * x0


def eps_from_v(x_t: Float[Array, "b ..."], v: Float[Array, "b ..."], a: Array, s: Array) -> Array:
    """$\\varepsilon = s x_t + a v$ (valid when $a^2 + s^2 = 1$)."""
    return per_example(s, x_t) * x_t + per_example(a, x_t) * v


def eps_from_prediction(
    prediction: str, x_t: Float[Array, "b ..."], out: Float[Array, "b ..."], a: Array, s: Array
) -> Array:
    """The $\\varepsilon$ implied by a network output ``out`` of kind ``prediction`` (eps, x0, v)."""
    check_in("prediction", prediction, PREDICTIONS)
    if prediction == "eps":
        return out
    if prediction == "x0":
        return eps_from_x0(x_t, out, a, s)
    return eps_from_v(x_t, out, a, s)


def score_from_eps(eps: Float[Array, "b ..."], s: Array) -> Array:
    """$\\nabla_x\\log p_t(x) = -\\varepsilon/s$."""
    return -eps / per_example(s, eps)


def eps_fn_to_score_fn(
    eps_fn: Callable[[Array, Array], Array], std_fn: Callable[[Array], Array]
) -> Callable[[Array, Array], Array]:
    """Turn a continuous-time ``eps_fn(x, t)`` into ``score_fn(x, t) = -eps_fn(x, t)/s_t``.

    Args:
        eps_fn: noise predictor, ``t`` float32 ``[b]``.
        std_fn: ``t [b]`` → $s_t$ ``[b]`` (e.g. ``lambda t: sde.marginal_coeffs(t)[1]``).

    Returns:
        The score function.
    """
    return lambda x, t: score_from_eps(eps_fn(x, t), std_fn(t))
