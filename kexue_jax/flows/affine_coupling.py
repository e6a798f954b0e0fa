"""RealNVP's affine coupling: $y_1 = x_1$, $y_2 = x_2 \\odot \\sigma(x_1) + t(x_1)$.

The conditioner outputs $(h, t)$ and the scale is $\\sigma = \\exp(h)$ (RealNVP, the article),
$\\sigma = \\mathrm{sigmoid}(h + 2)$ (Glow's official code: bounded, and $\\approx 0.88$ at a
zero-initialised conditioner) or $\\sigma = \\exp(2\\tanh(h/2))$ (a soft clamp of the exp scale to
$[e^{-2}, e^{2}]$ per layer, identity at $h = 0$, in the spirit of RealNVP's tanh-bounded $s$,
Dinh et al. 2017 §4.1: it keeps 2-D flows on separated modes from overflowing). The Jacobian is triangular with diagonal $(1, \\sigma)$, so
$\\log|\\det J| = \\sum \\log \\sigma(x_1)$; the inverse is $x_2 = (y_2 - t(y_1)) / \\sigma(y_1)$.
With a binary mask $b$:
$y = b \\odot x + (1-b) \\odot (x \\odot \\sigma(b \\odot x) + t(b \\odot x))$.

References:
    Su Jianlin, "细水长flow之RealNVP与Glow", https://kexue.fm/archives/5807 (仿射耦合层);
    L. Dinh, J. Sohl-Dickstein, S. Bengio, "Density estimation using Real NVP", ICLR 2017
    (eq. 7–9); D. P. Kingma, P. Dhariwal, "Glow", NeurIPS 2018 (Table 1, affine coupling).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from kexue_jax._src.checks import check_in
from kexue_jax._src.numerics import sum_except_batch, to_f32
from kexue_jax._src.typing import Array, PRNGKey
from kexue_jax.flows._validate import check_input
from kexue_jax.flows.bijector import Bijector
from kexue_jax.flows.conditioner import Conditioner, default_conditioner
from kexue_jax.flows.mask import make_mask

SCALES = ("exp", "sigmoid", "tanh")


def affine_coupling(
    *,
    mask: str = "channel",
    parity: bool = False,
    scale: str = "exp",
    conditioner: Conditioner | None = None,
) -> Bijector:
    """The affine coupling $y_2 = x_2 \\odot \\sigma(x_1) + t(x_1)$ as a :class:`Bijector`.

    Args:
        mask: ``"channel"``/``"half"`` or ``"checkerboard"`` (see :func:`make_mask`).
        parity: swap which half is kept.
        scale: ``"exp"`` ($\\sigma = e^{h}$), ``"sigmoid"`` ($\\sigma = \\mathrm{sigmoid}(h+2)$) or
            ``"tanh"`` ($\\sigma = e^{2\\tanh(h/2)}$).
        conditioner: the network producing ``2 c`` channels $(h, t)$; defaults to
            :func:`default_conditioner` with a zero last layer.

    Returns:
        A bijector with $\\log|\\det J| = \\sum_{(1-b)} \\log\\sigma$ per example (float32).

    Raises:
        ValueError: for an unknown ``scale`` or ``mask``.
    """
    check_in("scale", scale, SCALES)
    net = conditioner if conditioner is not None else default_conditioner()

    def init(key: PRNGKey, example_x: Array) -> dict:
        check_input("x", example_x)
        b = make_mask(mask, example_x.shape[1:], parity=parity)
        return {"st": net.init(key, example_x * b, 2 * example_x.shape[-1])}

    def _scale_shift(params: dict, x: Array, name: str) -> tuple[Array, Array]:
        check_input(name, x)
        b = jnp.asarray(make_mask(mask, x.shape[1:], parity=parity), x.dtype)
        h, t = jnp.split(net.apply(params["st"], x * b), 2, axis=-1)
        if scale == "exp":
            log_s = h
        elif scale == "sigmoid":
            log_s = jax.nn.log_sigmoid(h + 2.0)
        else:
            log_s = 2.0 * jnp.tanh(0.5 * h)
        return (1.0 - b) * log_s, (1.0 - b) * t

    def forward(params: dict, x: Array) -> tuple[Array, Array]:
        log_s, t = _scale_shift(params, x, "x")
        return x * jnp.exp(log_s) + t, sum_except_batch(to_f32(log_s))

    def inverse(params: dict, y: Array) -> tuple[Array, Array]:
        log_s, t = _scale_shift(params, y, "y")
        return (y - t) * jnp.exp(-log_s), -sum_except_batch(to_f32(log_s))

    return Bijector(init, forward, inverse, name=f"affine_coupling[{mask},{scale}]",
                    event_ndims=3 if mask == "checkerboard" else None)


__all__ = ["SCALES", "affine_coupling"]
