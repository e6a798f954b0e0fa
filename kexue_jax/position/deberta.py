"""DeBERTa's disentangled attention: content-to-position and position-to-content terms.

$A_{mn} = q_m^\\top k_n + q_m^\\top K^r_{\\delta(m,n)} + k_n^\\top Q^r_{\\delta(n,m)}$ (the
position-to-position term is dropped), with $Q^r = P W_{q,r}$, $K^r = P W_{k,r}$ projections of a
shared relative embedding table $P$ of $2K$ rows and
$\\delta(m, n) = \\mathrm{clip}(m - n, -K, K - 1) + K$ ($K$ = ``max_distance``). The paper scales
the sum by $1/\\sqrt{3d}$. This module returns the two position terms as a bias.

References:
    Su Jianlin, https://kexue.fm/archives/8130 (survey, DeBERTa式); P. He, X. Liu, J. Gao, W. Chen,
    "DeBERTa: Decoding-enhanced BERT with Disentangled Attention", ICLR 2021 (eqs. 2–4).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from kexue_jax._src.checks import (
    check_dims,
    check_positive,
    check_rank,
    check_shape,
)
from kexue_jax._src.typing import Array, ArrayLike, Float, Int, PRNGKey
from kexue_jax.position._positions import as_positions, check_qk, relative_matrix
from kexue_jax.position._relative import gather_relative


def deberta_relative_index(rel: ArrayLike, *, max_distance: int) -> Int[Array, "*shape"]:
    """$\\delta = \\mathrm{clip}(r, -K, K-1) + K \\in [0, 2K)$ for relative positions $r$ (int32).

    Example:
        >>> from kexue_jax.position import deberta_relative_index
        >>> [int(i) for i in deberta_relative_index([-9, -4, 0, 3, 9], max_distance=4)]
        [0, 0, 4, 7, 7]
    """
    check_positive("max_distance", max_distance)
    rel = jnp.asarray(rel).astype(jnp.int32)
    return jnp.clip(rel, -max_distance, max_distance - 1) + max_distance


def init_deberta(
    max_distance: int,
    model_dim: int,
    num_heads: int,
    head_dim: int,
    *,
    stddev: float = 0.02,
    key: PRNGKey,
) -> dict[str, Array]:
    """Parameters from $\\mathcal{N}(0, \\text{stddev}^2)$.

    Returns:
        ``{"rel_embeddings": [2K, model_dim], "w_qr": [model_dim, h, d],
        "w_kr": [model_dim, h, d]}``, float32.
    """
    for name, value in (
        ("max_distance", max_distance),
        ("model_dim", model_dim),
        ("num_heads", num_heads),
        ("head_dim", head_dim),
    ):
        check_positive(name, value)
    kp, kq, kk = jax.random.split(key, 3)
    return {
        "rel_embeddings": stddev
        * jax.random.normal(kp, (2 * max_distance, model_dim), jnp.float32),
        "w_qr": stddev * jax.random.normal(kq, (model_dim, num_heads, head_dim), jnp.float32),
        "w_kr": stddev * jax.random.normal(kk, (model_dim, num_heads, head_dim), jnp.float32),
    }


def deberta_bias(
    q: Float[Array, "b tq h d"],
    k: Float[Array, "b tk h d"],
    *,
    rel_embeddings: Float[Array, "r e"],
    w_qr: Float[Array, "e h d"],
    w_kr: Float[Array, "e h d"],
    max_distance: int,
    q_positions: ArrayLike | None = None,
    k_positions: ArrayLike | None = None,
    logit_scale: float | None = None,
) -> Float[Array, "b h tq tk"]:
    """c2p + p2c: $s\\,[q_m^\\top K^r_{\\delta(m,n)} + k_n^\\top Q^r_{\\delta(n,m)}]$ as a bias.

    Both terms are scored against the $2K$ table rows first and then gathered, $O(t\\,K\\,d)$.

    Args:
        q: ``[b, tq, h, d]`` content queries $Q^c$.
        k: ``[b, tk, h, d]`` content keys $K^c$.
        rel_embeddings: ``[2K, e]`` table $P$.
        w_qr: ``[e, h, d]`` projection $W_{q,r}$.
        w_kr: ``[e, h, d]`` projection $W_{k,r}$.
        max_distance: $K$.
        q_positions: ``[tq]`` or ``[b, tq]``; default ``arange(tq)``.
        k_positions: ``[tk]`` or ``[b, tk]``; default ``arange(tk)``.
        logit_scale: $s$; default $1/\\sqrt{3d}$ as in the paper (then call the attention with
            ``scale=1/sqrt(3d)`` too, so that $q^\\top k$ gets the same factor).

    Returns:
        float32 ``[b, h, tq, tk]``.

    Note:
        Hugging Face's DeBERTa (v2) also log-buckets $\\delta$ (``position_buckets``); this is the
        v1 paper's plain clipping.

    References:
        He et al. 2021, DeBERTa, eqs. (2)–(4); https://kexue.fm/archives/8130.
    """
    dims = check_qk(q, k)
    check_rank("rel_embeddings", rel_embeddings, 2)
    table = check_shape("rel_embeddings", rel_embeddings, [2 * max_distance, "e"])
    for name, w in (("w_qr", w_qr), ("w_kr", w_kr)):
        check_rank(name, w, 3)
        check_dims(
            [("rel_embeddings", table), (name, check_shape(name, w, ["e", dims["h"], dims["d"]]))]
        )
    qp = as_positions("q_positions", q_positions, dims["tq"], batch=dims["b"])
    kp = as_positions("k_positions", k_positions, dims["tk"], batch=dims["b"])
    p = jnp.asarray(rel_embeddings, jnp.float32)
    k_rel = jnp.einsum("re,ehd->rhd", p, jnp.asarray(w_kr, jnp.float32))  # K^r
    q_rel = jnp.einsum("re,ehd->rhd", p, jnp.asarray(w_qr, jnp.float32))  # Q^r
    rel = relative_matrix(qp, kp)  # m - n, [b', tq, tk]
    c2p = gather_relative(
        jnp.einsum("bqhd,rhd->bhqr", q.astype(jnp.float32), k_rel),
        deberta_relative_index(rel, max_distance=max_distance),
    )
    # p2c: score every key against every row, then pick row delta(n, m) for the pair (m, n).
    p2c_by_key = jnp.einsum("bkhd,rhd->bhkr", k.astype(jnp.float32), q_rel)  # [b, h, tk, r]
    p2c = gather_relative(
        p2c_by_key, jnp.swapaxes(deberta_relative_index(-rel, max_distance=max_distance), -1, -2)
    )  # [b, h, tk, tq]
    scale = 1.0 / math.sqrt(3 * dims["d"]) if logit_scale is None else float(logit_scale)
    return (c2p + jnp.swapaxes(p2c, -1, -2)) * scale


__all__ = ["deberta_bias", "deberta_relative_index", "init_deberta"]
