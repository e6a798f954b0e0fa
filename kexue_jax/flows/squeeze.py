"""Squeeze and unsqueeze, $h{\\times}w{\\times}c \\to h/2{\\times}w/2{\\times}4c$.

Each 2×2 spatial block becomes the channels of one position: reshape to
``(b, h/2, 2, w/2, 2, c)``, transpose ``(0, 1, 3, 2, 4, 5)``, reshape to ``(b, h/2, w/2, 4c)``
(as bojone's Keras ``Squeeze``). It is a permutation of the entries, so $\\log|\\det J| = 0$.

References:
    Su Jianlin, "细水长flow之RealNVP与Glow", https://kexue.fm/archives/5807 (squeeze 操作);
    L. Dinh, J. Sohl-Dickstein, S. Bengio, "Density estimation using Real NVP", ICLR 2017 (§3.6).
"""

from __future__ import annotations

import jax.numpy as jnp

from kexue_jax._src.typing import Array, Float, PRNGKey
from kexue_jax.flows._validate import check_input
from kexue_jax.flows.bijector import Bijector


def squeeze_nhwc(x: Float[Array, "b h w c"], *, name: str = "x") -> Float[Array, "b h/2 w/2 4c"]:
    """The squeeze permutation of an NHWC batch.

    Raises:
        ValueError: when ``x`` is not rank 4 or ``h`` or ``w`` is odd.
    """
    check_input(name, x, rank=4)
    b, h, w, c = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"{name}: squeeze needs even height and width, got shape {x.shape}")
    x = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h // 2, w // 2, 4 * c)


def unsqueeze_nhwc(y: Float[Array, "b h w c"], *, name: str = "y") -> Float[Array, "b 2h 2w c/4"]:
    """The inverse of :func:`squeeze_nhwc`.

    Raises:
        ValueError: when ``y`` is not rank 4 or its channel count is not a multiple of 4.
    """
    check_input(name, y, rank=4)
    b, h, w, c = y.shape
    if c % 4:
        raise ValueError(f"{name}: unsqueeze needs channels divisible by 4, got shape {y.shape}")
    y = y.reshape(b, h, w, 2, 2, c // 4).transpose(0, 1, 3, 2, 4, 5)
    return y.reshape(b, 2 * h, 2 * w, c // 4)


def _zeros(x: Array) -> Array:
    return jnp.zeros(x.shape[:1], jnp.float32)


def squeeze() -> Bijector:
    """Squeeze as a parameter-free :class:`Bijector` (params ``()``, ``log_det`` 0)."""

    def init(key: PRNGKey, example_x: Array) -> tuple:
        del key
        squeeze_nhwc(example_x)
        return ()

    def forward(params: tuple, x: Array) -> tuple[Array, Array]:
        del params
        return squeeze_nhwc(x, name="x"), _zeros(x)

    def inverse(params: tuple, y: Array) -> tuple[Array, Array]:
        del params
        return unsqueeze_nhwc(y, name="y"), _zeros(y)

    return Bijector(init, forward, inverse, name="squeeze", event_ndims=3)


def unsqueeze() -> Bijector:
    """Unsqueeze (the inverse of :func:`squeeze`) as a :class:`Bijector`."""

    def init(key: PRNGKey, example_x: Array) -> tuple:
        del key
        unsqueeze_nhwc(example_x, name="x")
        return ()

    def forward(params: tuple, x: Array) -> tuple[Array, Array]:
        del params
        return unsqueeze_nhwc(x, name="x"), _zeros(x)

    def inverse(params: tuple, y: Array) -> tuple[Array, Array]:
        del params
        return squeeze_nhwc(y, name="y"), _zeros(y)

    return Bijector(init, forward, inverse, name="unsqueeze", event_ndims=3)


__all__ = ["squeeze", "squeeze_nhwc", "unsqueeze", "unsqueeze_nhwc"]
