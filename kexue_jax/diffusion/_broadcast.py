"""Broadcast per-example ``[b]`` coefficients against ``[b, ...]`` data (private)."""

from __future__ import annotations

import jax.numpy as jnp

from kexue_jax._src.typing import Array


def per_example(c: Array, x: Array) -> Array:
    """Reshape ``c`` of shape ``[b]`` (or a scalar) to ``[b, 1, ..., 1]`` matching ``x.ndim``."""
    c = jnp.asarray(c)
    if c.ndim == 0:
        return c
    return c.reshape(c.shape + (1,) * (x.ndim - c.ndim))


def full_time(t: Array | float, batch: int) -> Array:
    """A float32 ``[b]`` time vector from a scalar or ``[b]`` time."""
    return jnp.broadcast_to(jnp.asarray(t, jnp.float32), (batch,))
