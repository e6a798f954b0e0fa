"""Reductions in float32, whatever the compute dtype.

Log-probabilities, log-determinants, ELBO terms and softmax normalisers are accumulated in float32
even when activations are bfloat16 (DESIGN.md, Dtypes).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from kexue_jax._src.typing import Array


def to_f32(x: Array) -> Array:
    """Cast to float32 (a no-op for float32 and float64 inputs)."""
    x = jnp.asarray(x)
    if x.dtype in (jnp.float32, jnp.float64):
        return x
    return x.astype(jnp.float32)


def sum_f32(x: Array, axis: int | tuple[int, ...] | None = None) -> Array:
    """``sum`` accumulated in float32."""
    return jnp.sum(to_f32(x), axis=axis)


def mean_f32(x: Array, axis: int | tuple[int, ...] | None = None) -> Array:
    """``mean`` accumulated in float32."""
    return jnp.mean(to_f32(x), axis=axis)


def logsumexp_f32(x: Array, axis: int | tuple[int, ...] | None = None) -> Array:
    """``logsumexp`` in float32."""
    return jax.nn.logsumexp(to_f32(x), axis=axis)


def sum_except_batch(x: Array, num_batch_dims: int = 1) -> Array:
    """Sum in float32 over every axis but the leading ``num_batch_dims``: per-example totals."""
    x = to_f32(x)
    return jnp.sum(x, axis=tuple(range(num_batch_dims, x.ndim)))


def num_event_dims(shape: tuple[int, ...], num_batch_dims: int = 1) -> int:
    """Number of scalar dimensions per example (``H*W*C`` for an NHWC batch)."""
    n = 1
    for s in shape[num_batch_dims:]:
        n *= s
    return n
