"""Glow's activation normalisation: $y = e^{\\log s} \\odot x + b$ per channel, data-dependent init.

$\\log|\\det J| = H W \\sum_c \\log s_c$ per example. ``init`` sets
$\\log s_c = -\\log(\\mathrm{std}_c + \\epsilon)$ and $b_c = -\\mathrm{mean}_c\\, e^{\\log s_c}$
from the example batch (statistics over batch and spatial axes), so that the init batch comes out
with zero mean and unit variance per channel; afterwards both are ordinary trainable parameters.

References:
    Su Jianlin, "细水长flow之RealNVP与Glow", https://kexue.fm/archives/5807 (Actnorm; bojone's
    Keras ``Actnorm`` is $e^{\\log s} x + b$ with log-det $H W \\sum \\log s$);
    D. P. Kingma, P. Dhariwal, "Glow: Generative Flow with Invertible 1×1 Convolutions",
    NeurIPS 2018 (§3.1, Table 1).

Note:
    Su observes that Glow's official code effectively starts from zeros; a zero-initialised actnorm
    is ``init`` followed by zeroing the params.
"""

from __future__ import annotations

import jax.numpy as jnp

from kexue_jax._src.numerics import to_f32
from kexue_jax._src.typing import Array, PRNGKey
from kexue_jax.flows._validate import check_channels, check_input, spatial_size
from kexue_jax.flows.bijector import Bijector


def actnorm(*, eps: float = 1e-6) -> Bijector:
    """Actnorm as a :class:`Bijector` (params ``{"log_scale": [c], "bias": [c]}``).

    Args:
        eps: added to the per-channel std at init, so a constant channel does not give $\\infty$.
    """

    def init(key: PRNGKey, example_x: Array) -> dict:
        del key
        check_input("x", example_x)
        x = to_f32(example_x)
        axes = tuple(range(x.ndim - 1))
        mean, std = jnp.mean(x, axis=axes), jnp.std(x, axis=axes)
        log_scale = -jnp.log(std + eps)
        return {"log_scale": log_scale, "bias": -mean * jnp.exp(log_scale)}

    def _check(params: dict, x: Array, name: str) -> None:
        check_input(name, x)
        check_channels(name, x, params["log_scale"].shape[0])

    def _log_det(params: dict, x: Array) -> Array:
        ld = spatial_size(x) * jnp.sum(to_f32(params["log_scale"]))
        return jnp.broadcast_to(ld, x.shape[:1])

    def forward(params: dict, x: Array) -> tuple[Array, Array]:
        _check(params, x, "x")
        y = x * jnp.exp(params["log_scale"]).astype(x.dtype) + params["bias"].astype(x.dtype)
        return y, _log_det(params, x)

    def inverse(params: dict, y: Array) -> tuple[Array, Array]:
        _check(params, y, "y")
        x = (y - params["bias"].astype(y.dtype)) * jnp.exp(-params["log_scale"]).astype(y.dtype)
        return x, -_log_det(params, y)

    return Bijector(init, forward, inverse, name="actnorm")


__all__ = ["actnorm"]
