"""Transformer-XL / XLNet relative attention: sinusoidal $R_{m-n}$ through $W_R$, biases $u, v$.

The logit between query $m$ and key $n$ is (Dai et al.'s four terms)
$q_m^\\top k_n + q_m^\\top W_R R_{m-n} + u^\\top k_n + v^\\top W_R R_{m-n}$, with $q = xW_Q$,
$k = xW_K$, $R$ the unclipped sinusoidal table and $u, v$ learned per head. This module returns
the three position terms $(q_m + v)^\\top W_R R_{m-n} + u^\\top k_n$ as a bias; the attention
function adds $q_m^\\top k_n$ itself. There is no position term on the values.

References:
    Su Jianlin, https://kexue.fm/archives/8130 (survey, XLNet式); Z. Dai et al.,
    "Transformer-XL: Attentive Language Models Beyond a Fixed-Length Context", ACL 2019;
    Z. Yang et al., "XLNet", NeurIPS 2019.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from kexue_jax._src.checks import (
    check_positive,
    check_rank,
    check_shape,
)
from kexue_jax._src.typing import Array, ArrayLike, Float, PRNGKey
from kexue_jax.position._positions import (
    as_positions,
    check_qk,
    default_logit_scale,
    relative_matrix,
)
from kexue_jax.position.sinusoidal import sinusoidal_embedding


def init_xlnet(
    num_heads: int, head_dim: int, *, rel_dim: int | None = None, stddev: float = 0.02, key: PRNGKey
) -> dict[str, Array]:
    """``{"u": [h, d], "v": [h, d], "w_r": [rel_dim, h, d]}``, $\\mathcal{N}(0, \\text{stddev}^2)$.

    ``rel_dim`` (the width of the sinusoidal $R$) defaults to ``num_heads * head_dim`` (the model
    width, as in Transformer-XL).
    """
    check_positive("num_heads", num_heads)
    check_positive("head_dim", head_dim)
    rel_dim = num_heads * head_dim if rel_dim is None else rel_dim
    if rel_dim % 2:
        raise ValueError(f"rel_dim: expected an even width for the sinusoidal table, got {rel_dim}")
    ku, kv, kw = jax.random.split(key, 3)
    return {
        "u": stddev * jax.random.normal(ku, (num_heads, head_dim), jnp.float32),
        "v": stddev * jax.random.normal(kv, (num_heads, head_dim), jnp.float32),
        "w_r": stddev * jax.random.normal(kw, (rel_dim, num_heads, head_dim), jnp.float32),
    }


def xlnet_bias(
    q: Float[Array, "b tq h d"],
    k: Float[Array, "b tk h d"],
    *,
    u: Float[Array, "h d"],
    v: Float[Array, "h d"],
    w_r: Float[Array, "e h d"],
    q_positions: ArrayLike | None = None,
    k_positions: ArrayLike | None = None,
    theta: float = 10000.0,
    logit_scale: float | None = None,
) -> Float[Array, "b h tq tk"]:
    """$s\\,[(q_m + v)^\\top W_R R_{m-n} + u^\\top k_n]$ as a logit bias ``[b, h, tq, tk]``.

    $W_R R_{m-n}$ is never materialised per pair: $(q_m+v)$ is projected back to the width of $R$
    ($W_R^\\top (q_m + v)$, ``[b, tq, h, e]``) and contracted with $R_{m-n}$ (``[tq, tk, e]``).

    Args:
        q: ``[b, tq, h, d]`` queries $xW_Q$.
        k: ``[b, tk, h, d]`` keys $xW_K$.
        u: ``[h, d]`` content bias.
        v: ``[h, d]`` position bias.
        w_r: ``[e, h, d]`` projection $W_R$ of the ``e``-wide sinusoidal $R$.
        q_positions: ``[tq]`` or ``[b, tq]``; default ``arange(tq)`` (with a memory of $M$ keys,
            pass ``M + arange(tq)``).
        k_positions: ``[tk]`` or ``[b, tk]``; default ``arange(tk)``.
        theta: base of the sinusoidal table.
        logit_scale: $s$; default $1/\\sqrt{d}$ (the scale ``jax.nn.dot_product_attention`` applies
            to $q^\\top k$).

    Returns:
        float32 ``[b, h, tq, tk]``.

    References:
        Dai et al. 2019 (Transformer-XL, §3.3); https://kexue.fm/archives/8130.
    """
    dims = check_qk(q, k)
    for name, p in (("u", u), ("v", v)):
        check_rank(name, p, 2)
        check_shape(name, p, [dims["h"], dims["d"]])
    check_rank("w_r", w_r, 3)
    check_shape("w_r", w_r, [None, dims["h"], dims["d"]])
    e = w_r.shape[0]
    if e % 2:
        raise ValueError(f"w_r: expected an even first dimension (sinusoid width), got {w_r.shape}")
    qp = as_positions("q_positions", q_positions, dims["tq"], batch=dims["b"])
    kp = as_positions("k_positions", k_positions, dims["tk"], batch=dims["b"])
    r = sinusoidal_embedding(relative_matrix(qp, kp), e, theta=theta)  # [b', tq, tk, e]
    r = jnp.broadcast_to(r, (dims["b"], *r.shape[1:]))
    q32, k32 = q.astype(jnp.float32), k.astype(jnp.float32)
    qv = jnp.einsum(
        "bqhd,ehd->bqhe", q32 + jnp.asarray(v, jnp.float32), jnp.asarray(w_r, jnp.float32)
    )
    position = jnp.einsum("bqhe,bqke->bhqk", qv, r)
    content = jnp.einsum("hd,bkhd->bhk", jnp.asarray(u, jnp.float32), k32)[:, :, None, :]
    return (position + content) * default_logit_scale(dims["d"], logit_scale)


__all__ = ["init_xlnet", "xlnet_bias"]
