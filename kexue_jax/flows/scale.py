"""NICE's diagonal scaling layer: $y = e^{s} \\odot x$, $\\log|\\det J| = H W \\sum_c s_c$.

Placed last in NICE, it lets the model give each dimension its own prior width: with a standard
normal on $y$ the loss $\\tfrac12\\|e^{s} \\odot f(x)\\|^2 - \\sum_i s_i$ is the NLL of $f(x)$ under
$\\mathcal N(0, \\mathrm{diag}(e^{-2s}))$, and a very small $e^{-s_i}$ marks a collapsed dimension.
The scale is per entry of the last axis (per dimension for vectors, per channel for images).

References:
    Su Jianlin, "细水长flow之NICE", https://kexue.fm/archives/5776 (尺度变换层, eq. 15–17);
    L. Dinh, D. Krueger, Y. Bengio, "NICE", ICLR 2015 workshop (§3.3, the rescaling layer).
"""

from __future__ import annotations

import jax.numpy as jnp

from kexue_jax._src.numerics import to_f32
from kexue_jax._src.typing import Array, PRNGKey
from kexue_jax.flows._validate import check_channels, check_input, spatial_size
from kexue_jax.flows.bijector import Bijector


def scale(*, data_init: bool = False, eps: float = 1e-6) -> Bijector:
    """The scaling layer $y = e^{s} \\odot x$ (params ``{"log_scale": [c]}``).

    Args:
        data_init: start from $s_c = -\\log(\\mathrm{std}_c + \\epsilon)$ of the example batch (the
            statistics over batch and spatial axes, like actnorm's scale) instead of $s = 0$. On
            dequantized images the always-black pixels have a spread of about $1/(256\\sqrt{12})$,
            so the optimal $s_i$ is near 7; from zero, Adam at lr $10^{-3}$ needs thousands of steps
            to get there. This changes only the starting point, not the model.
        eps: added to the std at a data-dependent init.
    """

    def init(key: PRNGKey, example_x: Array) -> dict:
        del key
        check_input("x", example_x)
        if not data_init:
            return {"log_scale": jnp.zeros((example_x.shape[-1],), jnp.float32)}
        x = to_f32(example_x)
        std = jnp.std(x, axis=tuple(range(x.ndim - 1)))
        return {"log_scale": -jnp.log(std + eps)}

    def _log_det(params: dict, x: Array) -> Array:
        ld = spatial_size(x) * jnp.sum(to_f32(params["log_scale"]))
        return jnp.broadcast_to(ld, x.shape[:1])

    def forward(params: dict, x: Array) -> tuple[Array, Array]:
        check_input("x", x)
        check_channels("x", x, params["log_scale"].shape[0])
        return x * jnp.exp(params["log_scale"]).astype(x.dtype), _log_det(params, x)

    def inverse(params: dict, y: Array) -> tuple[Array, Array]:
        check_input("y", y)
        check_channels("y", y, params["log_scale"].shape[0])
        return y * jnp.exp(-params["log_scale"]).astype(y.dtype), -_log_det(params, y)

    return Bijector(init, forward, inverse, name="scale")


__all__ = ["scale"]
