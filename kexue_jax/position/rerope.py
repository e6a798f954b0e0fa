"""ReRoPE and Leaky ReRoPE: RoPE with the relative position clipped (or compressed) beyond a window.

With $r = m - n$ (query minus key position), RoPE scores $q^\\top R_{-r} k$. ReRoPE replaces $r$ by
$\\min(r, w)$; Leaky ReRoPE by $r$ for $r < w$ and $w + (r-w)/k$ beyond. Because a clipped
relative position is not a difference of two absolute ones, the full-sequence path needs two
logit matrices merged by the window (Su's implementation):

- $a^{(1)}_{mn} = (R_m q_m)^\\top (R_n k_n)$ (plain RoPE), used where $r < w$;
- ReRoPE: $a^{(2)}_{mn} = (R_w q_m)^\\top k_n$; Leaky: $a^{(2)}_{mn} = (R_{(m-w)/k+w} q_m)^\\top
  (R_{n/k} k_n)$; used where $r \\ge w$.

Only the past side is clipped ($r \\ge w$); future keys ($r < 0$) keep plain RoPE, as in Su's causal
LM, where they are masked anyway. When decoding one query at a time a single matrix suffices: keep
the keys un-rotated in the cache and rotate each by its own clipped distance
(:func:`rerope_decode_logits`). Neither path can use a fused RoPE attention kernel.

References:
    Su Jianlin, https://kexue.fm/archives/9708 (Transformer升级之路 12: ReRoPE / Leaky ReRoPE) and
    the code at github.com/bojone/rerope; Su et al. 2021, RoFormer, arXiv:2104.09864.
"""

from __future__ import annotations

import jax.numpy as jnp

from kexue_jax._src.checks import (
    check_positive,
    check_rank,
    check_shape,
)
from kexue_jax._src.typing import Array, ArrayLike, Float
from kexue_jax.position._positions import (
    as_bias,
    as_positions,
    check_qk,
    default_logit_scale,
    relative_matrix,
)
from kexue_jax.position.rope import apply_rope, check_head_dim, rope_angles, split_pairs


def rerope_relative_positions(
    rel: ArrayLike, *, window: float, scale: float | None = None
) -> Float[Array, "*shape"]:
    """The relative position ReRoPE uses: $r$ if $r < w$, else $w$ (leaky: $w + (r-w)/k$).

    Args:
        rel: relative positions $r = m - n$, any shape.
        window: $w > 0$.
        scale: Leaky ReRoPE's $k$; ``None`` for ReRoPE ($k \\to \\infty$).

    Returns:
        float32 array of ``rel``'s shape.

    Example:
        >>> from kexue_jax.position import rerope_relative_positions
        >>> [float(v) for v in rerope_relative_positions([-1, 0, 3, 4, 8], window=4, scale=2.0)]
        [-1.0, 0.0, 3.0, 4.0, 6.0]
    """
    _check_window(window, scale)
    rel = jnp.asarray(rel, jnp.float32)
    far = (
        jnp.broadcast_to(jnp.asarray(window, jnp.float32), rel.shape)
        if scale is None
        else (window + (rel - window) / scale)
    )
    return jnp.where(rel < window, rel, far)


def _check_window(window: float, scale: float | None) -> None:
    # Python numbers are checked; arrays (e.g. a traced window swept under jit or vmap) are not.
    if isinstance(window, int | float):
        check_positive("window", window)
    if isinstance(scale, int | float):
        check_positive("scale", scale)


def _prepare(
    q: Array,
    k: Array,
    inv_freq: Array,
    q_positions: ArrayLike | None,
    k_positions: ArrayLike | None,
) -> tuple[dict[str, int], Array, Array]:
    """Validate the arguments of the full-sequence paths; positions as ``[b', t]``."""
    dims = check_qk(q, k)
    check_head_dim("q", q, jnp.asarray(inv_freq))
    qp = as_positions("q_positions", q_positions, dims["tq"], batch=dims["b"])
    kp = as_positions("k_positions", k_positions, dims["tk"], batch=dims["b"])
    return dims, qp, kp


def _dot(q: Array, k: Array) -> Array:
    """$[b, t_q, h, d] \\times [b, t_k, h, d] \\to [b, h, t_q, t_k]$ in float32."""
    return jnp.einsum("bqhd,bkhd->bhqk", q.astype(jnp.float32), k.astype(jnp.float32))


def rerope_logits(
    q: Float[Array, "b tq h d"],
    k: Float[Array, "b tk h d"],
    inv_freq: Float[Array, " half"],
    *,
    window: float,
    scale: float | None = None,
    q_positions: ArrayLike | None = None,
    k_positions: ArrayLike | None = None,
    pairing: str = "half",
    logit_scale: float | None = None,
) -> Float[Array, "b h tq tk"]:
    """ReRoPE (or Leaky ReRoPE) attention logits by two RoPE matrices merged by the window.

    $\\text{logits}_{mn} = s\\cdot\\big(a^{(1)}_{mn}$ if $m - n < w$ else $a^{(2)}_{mn}\\big)$, see
    the module docstring; equal to $s\\, q_m^\\top R_{-\\rho(m-n)} k_n$ with $\\rho$ from
    :func:`rerope_relative_positions`.

    Args:
        q: un-rotated queries ``[b, tq, h, d]``.
        k: un-rotated keys ``[b, tk, h, d]``.
        inv_freq: ``[d/2]`` RoPE frequency table.
        window: $w$ (Su: a quarter to a half of the training length; 512 in bojone/rerope); a
            number or a scalar array (which may be traced).
        scale: Leaky ReRoPE's $k$ (16 in bojone/rerope), number or scalar array; ``None`` for
            ReRoPE.
        q_positions: ``[tq]`` or ``[b, tq]``; default ``arange(tq)``.
        k_positions: ``[tk]`` or ``[b, tk]``; default ``arange(tk)``.
        pairing: ``"half"`` or ``"interleaved"`` (see :func:`~kexue_jax.position.apply_rope`).
        logit_scale: $s$; default $1/\\sqrt{d}$. Add a mask and take the softmax of the result.

    Returns:
        float32 ``[b, h, tq, tk]`` logits.

    References:
        https://kexue.fm/archives/9708; bojone/rerope ``rerope_patch.py`` and
        ``leaky_rerope_patch.py``.
    """
    _check_window(window, scale)
    dims, qp, kp = _prepare(q, k, inv_freq, q_positions, k_positions)
    near = _dot(
        apply_rope(q, qp, inv_freq, pairing=pairing), apply_rope(k, kp, inv_freq, pairing=pairing)
    )
    if scale is None:
        q_far = apply_rope(
            q,
            jnp.broadcast_to(jnp.asarray(window, jnp.float32), qp.shape),
            inv_freq,
            pairing=pairing,
        )
        k_far = k
    else:
        q_far = apply_rope(q, (qp - window) / scale + window, inv_freq, pairing=pairing)
        k_far = apply_rope(k, kp / scale, inv_freq, pairing=pairing)
    far = _dot(q_far, k_far)
    logits = jnp.where(as_bias(relative_matrix(qp, kp)) < window, near, far)
    return logits * default_logit_scale(dims["d"], logit_scale)


def rerope_decode_logits(
    q: Float[Array, "b 1 h d"],
    k_cache: Float[Array, "b tk h d"],
    inv_freq: Float[Array, " half"],
    *,
    q_position: ArrayLike,
    k_positions: ArrayLike | None = None,
    window: float,
    scale: float | None = None,
    pairing: str = "half",
    logit_scale: float | None = None,
) -> Float[Array, "b h 1 tk"]:
    """ReRoPE (or Leaky) logits of one new query against un-rotated cached keys: one matrix.

    Key $n$ is rotated by $-\\rho(m - n)$ and dotted with the un-rotated query:
    $q_m^\\top R_{-\\rho(m-n)} k_n$. Equal to the last row of :func:`rerope_logits`.

    Args:
        q: the new query, un-rotated, ``[b, 1, h, d]``.
        k_cache: un-rotated keys ``[b, tk, h, d]`` (the cache must hold keys before RoPE).
        inv_freq: ``[d/2]`` RoPE frequency table.
        q_position: the query's position $m$, scalar or ``[b]``.
        k_positions: ``[tk]`` or ``[b, tk]``; default ``arange(tk)``.
        window: $w$.
        scale: Leaky ReRoPE's $k$; ``None`` for ReRoPE.
        pairing: ``"half"`` or ``"interleaved"``.
        logit_scale: $s$; default $1/\\sqrt{d}$.

    Returns:
        float32 ``[b, h, 1, tk]`` logits.

    References:
        https://kexue.fm/archives/9708 ("decoding re-rotates the keys at every step").
    """
    _check_window(window, scale)
    dims = check_qk(q, k_cache, k_name="k_cache")
    check_head_dim("q", q, jnp.asarray(inv_freq))
    check_shape("q", q, [None, 1, None, None])
    kp = as_positions("k_positions", k_positions, dims["tk"], batch=dims["b"])
    m = jnp.asarray(q_position)
    check_rank("q_position", m, (0, 1))
    m = m.reshape(-1, 1)  # [1 or b, 1]
    if m.shape[0] not in (1, dims["b"]):
        raise ValueError(
            f"q_position: expected a scalar or shape ({dims['b']},), got {m.shape[:1]}"
        )
    rho = rerope_relative_positions(m - kp, window=window, scale=scale)  # [b', tk]
    k_rot = apply_rope(k_cache, -rho, inv_freq, pairing=pairing)
    return _dot(q, k_rot) * default_logit_scale(dims["d"], logit_scale)


def rerope_logits_reference(
    q: Float[Array, "b tq h d"],
    k: Float[Array, "b tk h d"],
    inv_freq: Float[Array, " half"],
    *,
    window: float,
    scale: float | None = None,
    q_positions: ArrayLike | None = None,
    k_positions: ArrayLike | None = None,
    pairing: str = "half",
    logit_scale: float | None = None,
) -> Float[Array, "b h tq tk"]:
    """Test reference: $s\\,q_m^\\top R_{-\\rho_{mn}} k_n$ from the explicit matrix $\\rho_{mn}$.

    Each pair contributes $\\cos\\phi\\,(x_1y_1 + x_2y_2) + \\sin\\phi\\,(x_2y_1 - x_1y_2)$ with
    $\\phi = -\\rho_{mn}\\theta_i$: memory $O(b\\,h\\,t_q\\,t_k\\,d)$, no rotated copies of q or k,
    so it checks :func:`rerope_logits` and :func:`rerope_decode_logits` by a different route.
    Arguments and result as in :func:`rerope_logits`.
    """
    dims, qp, kp = _prepare(q, k, inv_freq, q_positions, k_positions)
    rho = rerope_relative_positions(relative_matrix(qp, kp), window=window, scale=scale)
    phi = -rope_angles(rho, inv_freq)[:, None]  # [b', 1, tq, tk, d/2]
    x1, x2 = split_pairs(q.astype(jnp.float32), pairing)
    y1, y2 = split_pairs(k.astype(jnp.float32), pairing)
    same = jnp.einsum("bqhi,bkhi->bhqki", x1, y1) + jnp.einsum("bqhi,bkhi->bhqki", x2, y2)
    cross = jnp.einsum("bqhi,bkhi->bhqki", x2, y1) - jnp.einsum("bqhi,bkhi->bhqki", x1, y2)
    logits = jnp.sum(jnp.cos(phi) * same + jnp.sin(phi) * cross, axis=-1)
    return logits * default_logit_scale(dims["d"], logit_scale)


__all__ = [
    "rerope_decode_logits",
    "rerope_logits",
    "rerope_logits_reference",
    "rerope_relative_positions",
]
