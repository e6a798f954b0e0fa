"""Shaw et al.'s relative positions: clipped embeddings $R^K_{mn}$ on keys, $R^V_{mn}$ on values.

$a_{mn} = \\mathrm{softmax}_n\\big(q_m^\\top (k_n + R^K_{mn})\\, s\\big)$,
$o_m = \\sum_n a_{mn} (v_n + R^V_{mn})$, with $R^{K,V}_{mn} = p_{K,V}[\\mathrm{clip}(m - n, -K, K)]$
from tables of $2K+1$ rows shared by the heads ($K$ = ``max_distance``). This is one of the few
relative encodings that acts on the values, so it escapes the "identical inputs give identical
outputs" defect of logit-only encodings (9105).

References:
    Su Jianlin, https://kexue.fm/archives/8130 (survey, 经典式) and https://kexue.fm/archives/9105;
    P. Shaw, J. Uszkoreit, A. Vaswani, "Self-Attention with Relative Position Representations",
    NAACL 2018.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from kexue_jax._src.checks import check_floating, check_positive, check_rank, check_shape
from kexue_jax._src.typing import Array, ArrayLike, Float, Int, PRNGKey
from kexue_jax.position._positions import (
    as_positions,
    check_heads,
    default_logit_scale,
    relative_matrix,
)
from kexue_jax.position._relative import gather_relative


def shaw_relative_index(
    q_len: int,
    k_len: int,
    *,
    max_distance: int,
    q_positions: ArrayLike | None = None,
    k_positions: ArrayLike | None = None,
) -> Int[Array, "b tq tk"]:
    """Table row for each pair: $\\mathrm{clip}(m - n, -K, K) + K$, int32 ``[1 or b, tq, tk]``."""
    check_positive("max_distance", max_distance)
    qp = as_positions("q_positions", q_positions, q_len)
    kp = as_positions("k_positions", k_positions, k_len)
    rel = relative_matrix(qp, kp).astype(jnp.int32)
    return jnp.clip(rel, -max_distance, max_distance) + max_distance


def init_shaw(
    max_distance: int, head_dim: int, *, stddev: float = 0.02, key: PRNGKey
) -> dict[str, Float[Array, "r d"]]:
    """Tables ``{"rel_k": [2K+1, d], "rel_v": [2K+1, d]}``, $\\mathcal{N}(0, \\text{stddev}^2)$."""
    check_positive("max_distance", max_distance)
    check_positive("head_dim", head_dim)
    kk, kv = jax.random.split(key)
    shape = (2 * max_distance + 1, head_dim)
    return {
        "rel_k": stddev * jax.random.normal(kk, shape, jnp.float32),
        "rel_v": stddev * jax.random.normal(kv, shape, jnp.float32),
    }


def _check_table(name: str, table: Array, max_distance: int, head_dim: int) -> None:
    check_rank(name, table, 2)
    check_shape(name, table, [2 * max_distance + 1, head_dim])


def shaw_bias(
    q: Float[Array, "b tq h d"],
    rel_k: Float[Array, "r d"],
    k_len: int,
    *,
    max_distance: int,
    q_positions: ArrayLike | None = None,
    k_positions: ArrayLike | None = None,
    logit_scale: float | None = None,
) -> Float[Array, "b h tq tk"]:
    """The key-side term $s\\, q_m^\\top R^K_{mn}$ as an additive logit bias ``[b, h, tq, tk]``.

    Args:
        q: ``[b, tq, h, d]`` queries.
        rel_k: ``[2K+1, d]`` table $p_K$.
        k_len: $t_k$.
        max_distance: $K$, the clipping distance.
        q_positions: ``[tq]`` or ``[b, tq]``; default ``arange(tq)``.
        k_positions: ``[tk]`` or ``[b, tk]``; default ``arange(tk)``.
        logit_scale: $s$; default $1/\\sqrt{d}$, the scale ``jax.nn.dot_product_attention`` applies
            to $q^\\top k$, so the result can be passed as its ``bias``.

    Returns:
        float32 ``[b, h, tq, tk]``.

    References:
        Shaw et al. 2018, eq. (4); https://kexue.fm/archives/8130.
    """
    dims = check_heads("q", q)
    check_floating("q", q)
    _check_table("rel_k", rel_k, max_distance, dims["d"])
    index = shaw_relative_index(
        dims["t"],
        k_len,
        max_distance=max_distance,
        q_positions=q_positions,
        k_positions=k_positions,
    )
    scores = jnp.einsum("bqhd,rd->bhqr", q.astype(jnp.float32), jnp.asarray(rel_k, jnp.float32))
    return gather_relative(scores, index) * default_logit_scale(dims["d"], logit_scale)


def shaw_values(
    weights: Float[Array, "b h tq tk"],
    rel_v: Float[Array, "r d"],
    *,
    max_distance: int,
    q_positions: ArrayLike | None = None,
    k_positions: ArrayLike | None = None,
) -> Float[Array, "b tq h d"]:
    """The value-side term $\\sum_n a_{mn} R^V_{mn}$, to add to the attention output.

    The weights are first summed per clipped distance (a one-hot contraction), then multiplied by
    the table, so no ``[tq, tk, d]`` tensor is built.

    Args:
        weights: ``[b, h, tq, tk]`` attention probabilities $a_{mn}$.
        rel_v: ``[2K+1, d]`` table $p_V$.
        max_distance: $K$.
        q_positions: ``[tq]`` or ``[b, tq]``; default ``arange(tq)``.
        k_positions: ``[tk]`` or ``[b, tk]``; default ``arange(tk)``.

    Returns:
        float32 ``[b, tq, h, d]``.

    References:
        Shaw et al. 2018, eq. (3).
    """
    check_rank("weights", weights, 4)
    check_rank("rel_v", rel_v, 2)
    check_shape("rel_v", rel_v, [2 * max_distance + 1, None])
    _, _, tq, tk = weights.shape
    index = shaw_relative_index(
        tq, tk, max_distance=max_distance, q_positions=q_positions, k_positions=k_positions
    )
    one_hot = jax.nn.one_hot(index, 2 * max_distance + 1, dtype=jnp.float32)  # [b', tq, tk, r]
    one_hot = jnp.broadcast_to(one_hot, (weights.shape[0], *one_hot.shape[1:]))
    per_distance = jnp.einsum("bhqk,bqkr->bhqr", weights.astype(jnp.float32), one_hot)
    return jnp.einsum("bhqr,rd->bqhd", per_distance, jnp.asarray(rel_v, jnp.float32))


__all__ = ["init_shaw", "shaw_bias", "shaw_relative_index", "shaw_values"]
