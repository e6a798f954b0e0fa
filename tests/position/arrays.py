"""Random test arrays from ``jax.random`` with a single compile.

On a small CPU, compiling ``jax.random.normal`` costs seconds per new shape, so every array is cut
from one fixed-size draw keyed by the hypothesis seed.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

POOL = 16384


@jax.jit
def _pool(key: jax.Array) -> jax.Array:
    return jax.random.normal(key, (POOL,), jnp.float32)


def normal(seed: int, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """Standard normal ``shape`` array from ``jax.random.key(seed)`` (at most ``POOL`` elements)."""
    size = math.prod(shape)
    assert size <= POOL, f"test array too large: {shape}"
    return jnp.asarray(np.asarray(_pool(jax.random.key(seed)))[:size].reshape(shape), dtype)
