"""RealNVP's logit preprocessing $y = \\mathrm{logit}(\\alpha + (1 - 2\\alpha) x)$, $x \\in (0, 1)$.

With $p = \\alpha + (1 - 2\\alpha) x$, $\\frac{dy}{dx} = \\frac{1 - 2\\alpha}{p (1 - p)}$, so
$\\log|\\det J| = \\sum \\left[\\log(1 - 2\\alpha) - \\log p - \\log(1 - p)\\right]$ per example.
The inverse is $x = (\\mathrm{sigmoid}(y) - \\alpha) / (1 - 2\\alpha)$. The margin $\\alpha$ keeps
$p$ away from 0 and 1 where the logit diverges (RealNVP: $\\alpha = 0.05$).

References:
    Su Jianlin, "细水长flow之RealNVP与Glow", https://kexue.fm/archives/5807;
    L. Dinh, J. Sohl-Dickstein, S. Bengio, "Density estimation using Real NVP", ICLR 2017
    (§4.1, "we model the density of logit(α + (1 − α) ⊙ x/256)" with α = .05).

Note:
    The paper's formula writes $(1 - \\alpha)$; the symmetric $(1 - 2\\alpha)$ used by most
    implementations (and here) maps $[0, 1]$ onto $[\\alpha, 1 - \\alpha]$.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from kexue_jax._src.numerics import sum_except_batch, to_f32
from kexue_jax._src.typing import Array, PRNGKey
from kexue_jax.flows._validate import check_input
from kexue_jax.flows.bijector import Bijector


def logit(*, alpha: float = 0.05) -> Bijector:
    """The logit preprocessing bijector (params ``()``; inputs in $(0, 1)$).

    Args:
        alpha: the margin $\\alpha \\in [0, 0.5)$.

    Raises:
        ValueError: when ``alpha`` is outside $[0, 0.5)$.
    """
    if not 0.0 <= alpha < 0.5:
        raise ValueError(f"alpha: expected a value in [0, 0.5), got {alpha!r}")
    log_width = math.log1p(-2.0 * alpha)

    def init(key: PRNGKey, example_x: Array) -> tuple:
        del key
        check_input("x", example_x)
        return ()

    def _log_det(p: Array) -> Array:
        p = to_f32(p)
        return sum_except_batch(log_width - jnp.log(p) - jnp.log1p(-p))

    def forward(params: tuple, x: Array) -> tuple[Array, Array]:
        del params
        check_input("x", x)
        p = alpha + (1.0 - 2.0 * alpha) * x
        return jnp.log(p) - jnp.log1p(-p), _log_det(p)

    def inverse(params: tuple, y: Array) -> tuple[Array, Array]:
        del params
        check_input("y", y)
        p = jax.nn.sigmoid(y)
        return (p - alpha) / (1.0 - 2.0 * alpha), -_log_det(p)

    return Bijector(init, forward, inverse, name="logit", domain="unit_interval")


__all__ = ["logit"]
