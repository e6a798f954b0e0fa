"""RealNVP's affine coupling: $y_1 = x_1$, $y_2 = x_2 \\odot \\sigma(x_1) + t(x_1)$.

The conditioner outputs $(h, t)$ and the scale is $\\sigma = \\exp(h)$ (RealNVP, the article),
$\\sigma = \\mathrm{sigmoid}(h + 2)$ (Glow's official code: bounded, and $\\approx 0.88$ at a
zero-initialised conditioner) or $\\sigma = \\exp(2\\tanh(h/2))$ (a soft clamp of the exp scale to
$[e^{-2}, e^{2}]$ per layer, identity at $h = 0$, in the spirit of RealNVP's tanh-bounded $s$,
Dinh et al. 2017 §4.1: it keeps 2-D flows on separated modes from overflowing). The Jacobian is triangular with diagonal $(1, \\sigma)$, so
$\\log|\\det J| = \\sum \\log \\sigma(x_1)$; the inverse is $x_2 = (y_2 - t(y_1)) / \\sigma(y_1)$.
With a binary mask $b$:
$y = b \\odot x + (1-b) \\odot (x \\odot \\sigma(b \\odot x) + t(b \\odot x))$. For the channel
masks the halves are sliced instead (:func:`~kexue_jax.flows.mask.split_channels`): the conditioner
sees $x_1$ alone and predicts $(h, t)$ for $x_2$ only, as in Glow, which is the same family of maps
without the zeroed inputs and unused outputs of the masked form.

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
from kexue_jax.flows._validate import apply_to_kept_half, check_input
from kexue_jax.flows.bijector import Bijector
from kexue_jax.flows.conditioner import Conditioner, default_conditioner
from kexue_jax.flows.mask import make_mask, split_channels

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
        conditioner: the network producing $(h, t)$ (``2 c`` channels from $b \\odot x$, or twice
            the transformed half's channels from $x_1$ for channel masks); defaults to
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
        parts = split_channels(example_x, mask, parity=parity)
        if parts is not None:  # channel halves: x1 in, (h, t) of x2 out
            return {"st": net.init(key, parts[0], 2 * parts[1].shape[-1])}
        b = make_mask(mask, example_x.shape[1:], parity=parity)
        return {"st": net.init(key, example_x * b, 2 * example_x.shape[-1])}

    def _log_scale(h: Array) -> Array:
        if scale == "exp":
            return h
        if scale == "sigmoid":
            return jax.nn.log_sigmoid(h + 2.0)
        return 2.0 * jnp.tanh(0.5 * h)

    def _apply(params: dict, x: Array, name: str, sign: float) -> tuple[Array, Array]:
        """``sign=1``: $x_2 \\odot \\sigma + t$; ``sign=-1``: $(x_2 - t) / \\sigma$; and the log-det."""
        check_input(name, x)
        parts = split_channels(x, mask, parity=parity)
        if parts is not None:
            x1, x2, merge = parts
            h, t = jnp.split(apply_to_kept_half(net.apply, params["st"], x, x1, x2, 2, name), 2, axis=-1)
            log_s = _log_scale(h)
            y2 = x2 * jnp.exp(log_s) + t if sign > 0 else (x2 - t) * jnp.exp(-log_s)
            return merge(y2), sign * sum_except_batch(to_f32(log_s))
        b = jnp.asarray(make_mask(mask, x.shape[1:], parity=parity), x.dtype)
        h, t = jnp.split(net.apply(params["st"], x * b), 2, axis=-1)
        log_s, t = (1.0 - b) * _log_scale(h), (1.0 - b) * t
        y = x * jnp.exp(log_s) + t if sign > 0 else (x - t) * jnp.exp(-log_s)
        return y, sign * sum_except_batch(to_f32(log_s))

    def forward(params: dict, x: Array) -> tuple[Array, Array]:
        return _apply(params, x, "x", 1.0)

    def inverse(params: dict, y: Array) -> tuple[Array, Array]:
        return _apply(params, y, "y", -1.0)

    return Bijector(init, forward, inverse, name=f"affine_coupling[{mask},{scale}]",
                    event_ndims=3 if mask == "checkerboard" else None)


__all__ = ["SCALES", "affine_coupling"]
