"""NICE's additive coupling layer: $y_1 = x_1$, $y_2 = x_2 + m(x_1)$, $\\log|\\det J| = 0$.

The Jacobian is $\\begin{pmatrix} I & 0 \\\\ \\partial m/\\partial x_1 & I\\end{pmatrix}$, of
determinant 1; the inverse is $x_2 = y_2 - m(y_1)$. With a binary mask $b$ (see
:mod:`kexue_jax.flows.mask`) this reads $y = x + (1 - b) \\odot m(b \\odot x)$.

References:
    Su Jianlin, "细水长flow之NICE", https://kexue.fm/archives/5776 (加性耦合, eq. 9–11);
    L. Dinh, D. Krueger, Y. Bengio, "NICE: Non-linear Independent Components Estimation",
    ICLR 2015 workshop (§3.2, eq. 4).

Note:
    Su's NICE code uses $y_2 = x_2 - m(x_1)$ with a ReLU output so that sampling adds a
    non-negative shift; the sign is absorbed in $m$ here.
"""

from __future__ import annotations

import jax.numpy as jnp

from kexue_jax._src.typing import Array, PRNGKey
from kexue_jax.flows._validate import apply_to_kept_half, check_input
from kexue_jax.flows.bijector import Bijector
from kexue_jax.flows.conditioner import Conditioner, default_conditioner
from kexue_jax.flows.mask import make_mask, split_channels


def additive_coupling(
    *, mask: str = "channel", parity: bool = False, conditioner: Conditioner | None = None
) -> Bijector:
    """The additive coupling $y = x + (1 - b) \\odot m(b \\odot x)$ as a :class:`Bijector`.

    Args:
        mask: ``"channel"``/``"half"`` (split the last axis in half) or ``"checkerboard"``.
        parity: swap which half is kept.
        conditioner: the network $m$; defaults to :func:`default_conditioner` (zero last layer, so
            the layer starts as the identity).

    Returns:
        A bijector on ``[b, d]`` or ``[b, h, w, c]`` inputs; ``log_det`` is exactly 0.
    """
    net = conditioner if conditioner is not None else default_conditioner()

    def init(key: PRNGKey, example_x: Array) -> dict:
        check_input("x", example_x)
        parts = split_channels(example_x, mask, parity=parity)
        if parts is not None:  # channel halves: x1 in, the shift of x2 out
            return {"m": net.init(key, parts[0], parts[1].shape[-1])}
        b = make_mask(mask, example_x.shape[1:], parity=parity)
        return {"m": net.init(key, example_x * b, example_x.shape[-1])}

    def _apply(params: dict, x: Array, name: str, sign: float) -> tuple[Array, Array]:
        check_input(name, x)
        parts = split_channels(x, mask, parity=parity)
        if parts is not None:
            x1, x2, merge = parts
            y = merge(x2 + sign * apply_to_kept_half(net.apply, params["m"], x, x1, x2, 1, name))
        else:
            b = jnp.asarray(make_mask(mask, x.shape[1:], parity=parity), x.dtype)
            y = x + sign * (1.0 - b) * net.apply(params["m"], x * b)
        return y, jnp.zeros(x.shape[:1], jnp.float32)

    def forward(params: dict, x: Array) -> tuple[Array, Array]:
        return _apply(params, x, "x", 1.0)

    def inverse(params: dict, y: Array) -> tuple[Array, Array]:
        return _apply(params, y, "y", -1.0)

    return Bijector(init, forward, inverse, name=f"additive_coupling[{mask}]",
                    event_ndims=3 if mask == "checkerboard" else None)


__all__ = ["additive_coupling"]
