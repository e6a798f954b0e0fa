"""``reshape``: view each example under another event shape (a permutation-free bijection, log-det 0).

NICE works on vectors; ``reshape((h, w, c), (h * w * c,))`` flattens images in front of it and
unflattens its samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax.numpy as jnp

from kexue_jax._src.checks import check_shape
from kexue_jax._src.typing import Array, PRNGKey
from kexue_jax.flows.bijector import Bijector


def reshape(event_shape_in: Sequence[int], event_shape_out: Sequence[int]) -> Bijector:
    """Reshape every example from ``event_shape_in`` to ``event_shape_out`` (same size).

    Raises:
        ValueError: when the sizes differ, or an input does not have the expected event shape.
    """
    shape_in, shape_out = tuple(event_shape_in), tuple(event_shape_out)
    if math.prod(shape_in) != math.prod(shape_out):
        raise ValueError(
            f"event_shape_out: expected {math.prod(shape_in)} entries like event_shape_in {shape_in}, "
            f"got {shape_out}"
        )

    def init(key: PRNGKey, example_x: Array) -> tuple:
        del key
        check_shape("x", example_x, (None, *shape_in))
        return ()

    def forward(params: tuple, x: Array) -> tuple[Array, Array]:
        check_shape("x", x, (None, *shape_in))
        return x.reshape(x.shape[0], *shape_out), jnp.zeros(x.shape[:1], jnp.float32)

    def inverse(params: tuple, y: Array) -> tuple[Array, Array]:
        check_shape("y", y, (None, *shape_out))
        return y.reshape(y.shape[0], *shape_in), jnp.zeros(y.shape[:1], jnp.float32)

    return Bijector(init, forward, inverse, name="reshape", event_ndims=len(shape_in))


__all__ = ["reshape"]
