"""Random test arrays: one ``jax.random.normal`` draw per call, sliced into the requested shapes.

Each sampling kernel is compiled once per distinct set of shapes (a few per test file) instead of
once per array. The keys use the ``rbg`` implementation: threefry's kernel takes seconds to compile
on CPU, and the tests only need reproducible draws (the library is indifferent to the key's impl).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp


def key(seed: int) -> jax.Array:
    """A reproducible test key."""
    return jax.random.key(seed, impl="rbg")


@functools.partial(jax.jit, static_argnames="shapes")
def _draw(seed, shapes):
    sizes = [math.prod(s) for s in shapes]
    flat = jax.random.normal(key(seed), (sum(sizes),))
    out, start = [], 0
    for shape, size in zip(shapes, sizes, strict=True):
        out.append(flat[start : start + size].reshape(shape))
        start += size
    return tuple(out)


def normals(seed: int, *shapes: tuple[int, ...]) -> tuple[jax.Array, ...]:
    """Standard normal float32 arrays of the given shapes, from ``seed``."""
    return _draw(seed, tuple(tuple(s) for s in shapes))


# Each product rounds its operands and its result to bf16 (relative 2^-9 each), two products are
# chained (weights, then weights·V, plus the carried state), and the output is rounded once more:
# at most 7 roundings, 7·2^-9 < 2^-6 of the output's scale.
BF16_TOLERANCE = 2.0**-6


def bf16_and_rounded_f32(*arrays: jax.Array) -> tuple[tuple[jax.Array, ...], tuple[jax.Array, ...]]:
    """The arrays in bf16, and the same (rounded) values in float32 for a reference."""
    low = tuple(x.astype(jnp.bfloat16) for x in arrays)
    return low, tuple(x.astype(jnp.float32) for x in low)
