"""T5 relative position bias: a learned scalar per (bucket of $n - m$, head) added to the logits.

Distances below ``max_exact`` get a bucket each; larger ones share log-spaced buckets up to
``max_distance``, beyond which all share the last bucket. Bidirectional attention halves the
buckets between keys before and after the query.

With ``num_buckets=32``, ``max_distance=128``, bidirectional (16 buckets a side,
``max_exact = 8``), a key $d$ tokens before the query lands in bucket
$d$ for $d < 8$ and $8 + \\lfloor 8 \\log(d/8)/\\log 16 \\rfloor$ (at most 15) beyond:
0..7 → 0..7, 8–11 → 8, 12–15 → 9, 16–22 → 10, 23–31 → 11, …; keys after it add 16.

References:
    Su Jianlin, https://kexue.fm/archives/8130 (survey, T5 式); C. Raffel et al., "Exploring the
    Limits of Transfer Learning with a Unified Text-to-Text Transformer", JMLR 2020 (T5), and
    Mesh TensorFlow's ``_relative_position_bucket``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from kexue_jax._src.checks import check_integer, check_positive, check_rank, check_shape
from kexue_jax._src.typing import Array, ArrayLike, Float, Int, PRNGKey
from kexue_jax.position._positions import as_positions, relative_matrix


def _check_bucket_args(num_buckets: int, max_distance: int, bidirectional: bool) -> None:
    check_positive("num_buckets", num_buckets)
    check_positive("max_distance", max_distance)
    exact = num_buckets // (4 if bidirectional else 2)
    if exact < 1:
        raise ValueError(
            f"num_buckets: too few buckets ({num_buckets}) for bidirectional={bidirectional}"
        )
    if max_distance <= exact:
        raise ValueError(
            f"max_distance: expected a value > max_exact = {exact}, got {max_distance}"
        )


def relative_position_bucket(
    relative_position: ArrayLike,
    *,
    bidirectional: bool = True,
    num_buckets: int = 32,
    max_distance: int = 128,
) -> Int[Array, "*shape"]:
    """T5's bucket of the relative position $n - m$ (key minus query position), int32.

    Args:
        relative_position: integer $n - m$, any shape (negative: the key is in the past).
        bidirectional: half the buckets for future keys ($n > m$, offset by ``num_buckets/2``);
            if ``False`` future keys all fall in bucket 0 (they are masked in a causal model).
        num_buckets: total number of buckets (32 in T5).
        max_distance: distances from here on share the last bucket (128 in T5).

    Returns:
        int32 buckets in ``[0, num_buckets)``, shape of ``relative_position``.

    Example:
        >>> from kexue_jax.position import relative_position_bucket
        >>> [int(b) for b in relative_position_bucket([0, -7, -8, -12, -16, -200, 3])]
        [0, 7, 8, 9, 10, 15, 19]
    """
    _check_bucket_args(num_buckets, max_distance, bidirectional)
    rel = jnp.asarray(relative_position)
    check_integer("relative_position", rel)
    dist = -rel.astype(jnp.int32)  # > 0 for keys in the past
    offset = jnp.zeros_like(dist)
    if bidirectional:
        num_buckets //= 2
        offset = jnp.where(dist < 0, num_buckets, 0)
        dist = jnp.abs(dist)
    else:
        dist = jnp.maximum(dist, 0)
    max_exact = num_buckets // 2
    # log(0) is -inf for dist = 0; those entries take the exact branch, and the clip keeps the
    # int cast of -inf defined.
    log_ratio = jnp.log(jnp.maximum(dist, 1).astype(jnp.float32) / max_exact)
    spread = log_ratio / math.log(max_distance / max_exact) * (num_buckets - max_exact)
    large = max_exact + jnp.clip(spread, 0, num_buckets).astype(jnp.int32)
    large = jnp.minimum(large, num_buckets - 1)
    return offset + jnp.where(dist < max_exact, dist, large)


def init_t5_bias(
    num_buckets: int, num_heads: int, *, stddev: float = 0.02, key: PRNGKey
) -> Float[Array, "buckets h"]:
    """A float32 ``[num_buckets, num_heads]`` table from $\\mathcal{N}(0, \\text{stddev}^2)$."""
    check_positive("num_buckets", num_buckets)
    check_positive("num_heads", num_heads)
    return stddev * jax.random.normal(key, (num_buckets, num_heads), jnp.float32)


def t5_bias(
    table: Float[Array, "buckets h"],
    q_len: int,
    k_len: int,
    *,
    bidirectional: bool = True,
    num_buckets: int = 32,
    max_distance: int = 128,
    q_positions: ArrayLike | None = None,
    k_positions: ArrayLike | None = None,
) -> Float[Array, "1 h tq tk"]:
    """The T5 bias $\\beta_{h,m,n} = \\text{table}[\\text{bucket}(n - m), h]$, ``[1, h, tq, tk]``.

    Args:
        table: ``[num_buckets, h]`` learned scalars.
        q_len: $t_q$.
        k_len: $t_k$.
        bidirectional: see :func:`relative_position_bucket` (``False`` for a decoder).
        num_buckets: must match ``table.shape[0]``.
        max_distance: see :func:`relative_position_bucket`.
        q_positions: ``[tq]`` or ``[b, tq]``; default ``arange(tq)`` (pass offsets when decoding).
        k_positions: ``[tk]`` or ``[b, tk]``; default ``arange(tk)``.

    Returns:
        float32 ``[1 or b, h, tq, tk]``.

    References:
        Raffel et al. 2020 (T5); https://kexue.fm/archives/8130.
    """
    check_rank("table", table, 2)
    check_shape("table", table, [num_buckets, None])
    qp = as_positions("q_positions", q_positions, q_len)
    kp = as_positions("k_positions", k_positions, k_len)
    buckets = relative_position_bucket(
        -relative_matrix(qp, kp),
        bidirectional=bidirectional,
        num_buckets=num_buckets,
        max_distance=max_distance,
    )  # [b', tq, tk]
    bias = jnp.take(jnp.asarray(table, jnp.float32), buckets, axis=0)  # [b', tq, tk, h]
    return jnp.moveaxis(bias, -1, 1)


__all__ = ["init_t5_bias", "relative_position_bucket", "t5_bias"]
