"""Learned absolute positions: a table $P \\in \\mathbb{R}^{L\\times d}$, used as $x_k + P_k$.

References:
    Su Jianlin, https://kexue.fm/archives/8130 (survey, "训练式"); J. Devlin et al., "BERT",
    NAACL 2019; A. Radford et al., GPT (2018).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from kexue_jax._src.checks import check_integer, check_positive, check_rank
from kexue_jax._src.typing import Array, ArrayLike, Float, PRNGKey


def init_learned_positions(
    max_length: int, dim: int, *, stddev: float = 0.02, key: PRNGKey
) -> Float[Array, "L d"]:
    """A float32 ``[max_length, dim]`` table from $\\mathcal{N}(0, \\text{stddev}^2)$ (BERT's init).

    Args:
        max_length: $L$, the number of positions the table can encode.
        dim: $d$.
        stddev: initial standard deviation (0.02 as in BERT / GPT-2).
        key: PRNG key.
    """
    check_positive("max_length", max_length)
    check_positive("dim", dim)
    return stddev * jax.random.normal(key, (max_length, dim), jnp.float32)


def learned_position_embedding(
    table: Float[Array, "L d"], positions: ArrayLike
) -> Float[Array, "*p d"]:
    """Rows of ``table`` at integer ``positions`` (any shape).

    A learned table cannot extrapolate: positions outside ``[0, L)`` give NaN rows (a gather with
    ``mode="fill"``), so the error shows instead of being clipped to the last row silently.

    Args:
        table: ``[L, d]``.
        positions: integer positions, any shape.

    Returns:
        ``positions.shape + (d,)`` in ``table``'s dtype.
    """
    check_rank("table", table, 2)
    positions = jnp.asarray(positions)
    check_integer("positions", positions)
    return jnp.take(table, positions, axis=0, mode="fill", fill_value=jnp.nan)


__all__ = ["init_learned_positions", "learned_position_embedding"]
