r"""The theoretical defect of logit-side relative position encodings (kexue.fm 9105) and its fixes.

**Probe**: map $n$ identical tokens to $[1, 2, \dots, n]$. If position enters only through the
pre-softmax logits $b_{ij}$ (relative biases, RoPE, ...), every row of $A = \mathrm{softmax}(B)$ sums to
one; identical inputs give identical values $v_j = v$, so $o_i = \sum_j a_{ij} v = v$ for every $i$,
at every layer: all positions stay identical and the probe cannot be fitted. Fixes Su lists, each
of which breaks the row-sum constraint or the identical-values premise:

(a) $O = (A \odot C)V$ with a Toeplitz $C$, $c_{ij} = g(\mathrm{clip}(i - j))$
    (:func:`toeplitz_gated_attention`, Luo et al. 2022, arXiv:2205.13401);
(b) drop the softmax denominator, e.g. $a_{ij} = e^{b_{ij}}$ or GAU's $\mathrm{relu}^2(b_{ij})/n$
    (:func:`denominator_free_attention`);
(c) $l_2$-normalised attention $a_{ij} = e^{b_{ij}} / \sqrt{\sum_j e^{2b_{ij}}}$, or
    $\mathrm{swish}(b_{ij})$ + $l_2$ normalisation (:func:`l2_normalized_attention`);
(d) boundary tokens ``[CLS] x [SEP]`` so that the values are no longer all equal
    (:func:`add_boundary_tokens`).

Absolute position encodings (added to the inputs) escape the defect too. All weights are computed in
float32; outputs take ``v``'s dtype.

References:
    https://kexue.fm/archives/9105 (相对位置编码Transformer的一个理论缺陷与对策).
    Luo et al. 2022, "Your Transformer May Not be as Powerful as You Expect", arXiv:2205.13401.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

from kexue_jax._src.checks import check_floating, check_in, check_shape
from kexue_jax._src.typing import Array, Bool, Float
from kexue_jax.attention._jit import jit_with_static
from kexue_jax.attention._validate import check_broadcast_4d, check_logits_v, repeat_kv_heads


@jit_with_static("tq", "tk")
def toeplitz(table: Float[Array, "h m"], tq: int, tk: int | None = None) -> Float[Array, "h tq tk"]:
    r"""The Toeplitz matrices $c_{ij} = g(\mathrm{clip}(i - j, -M, M))$ from a table of $2M + 1$ values.

    ``table[:, M + r]`` holds $g(r)$ for the relative distance $r = i - j \in [-M, M]$; farther
    distances reuse the end values. Used for the multiplicative $C$ of fix (a), or as an additive
    relative bias $b_{ij} = g(i - j)$ (the kind of encoding that has the defect).

    Args:
        table: ``[h, 2M + 1]`` per-head values.
        tq: number of queries.
        tk: number of keys (default ``tq``).

    Returns:
        ``[h, tq, tk]``.

    Example:
        >>> toeplitz(jnp.array([[-1.0, 0.0, 1.0]]), 3)[0].tolist()
        [[0.0, -1.0, -1.0], [1.0, 0.0, -1.0], [1.0, 1.0, 0.0]]
    """
    check_floating("table", table)
    dims = check_shape("table", table, ["h", "m"])
    if dims["m"] % 2 != 1:
        raise ValueError(
            f"table: expected an odd number 2M + 1 of relative distances, got {table.shape}"
        )
    max_distance = dims["m"] // 2
    tk = tq if tk is None else tk
    rel = jnp.arange(tq)[:, None] - jnp.arange(tk)[None, :]
    return table[:, jnp.clip(rel, -max_distance, max_distance) + max_distance]


def _masked_weights(logits, v, mask, is_causal):
    dims = check_logits_v(logits, v)
    b, h, tq, tk = dims["b"], dims["h"], dims["tq"], dims["tk"]
    mask = check_broadcast_4d("mask", mask, b, h, tq, tk, boolean=True)
    if is_causal:
        causal = jnp.tril(jnp.ones((tq, tk), bool))[None, None]
        mask = causal if mask is None else mask & causal
    return logits.astype(jnp.float32), mask, h


def _apply(weights, v, h):
    vf = repeat_kv_heads(v, h).astype(jnp.float32)
    return jnp.einsum("bhqk,bkhe->bqhe", weights, vf).astype(v.dtype)


@jit_with_static("is_causal", "activation")
def l2_normalized_attention(
    logits: Float[Array, "b h tq tk"],
    v: Float[Array, "b tk hk dv"],
    *,
    mask: Bool[Array, "b h tq tk"] | None = None,
    is_causal: bool = False,
    activation: Literal["exp", "swish"] = "exp",
) -> Float[Array, "b tq h dv"]:
    r"""$l_2$-normalised attention $a_{ij} = f(b_{ij}) / \sqrt{\sum_j f(b_{ij})^2}$, fix (c) of 9105.

    With $f = \exp$ this is the $l_2$ analogue of softmax (which is the $l_1$ normalisation of
    $e^{b_{i,:}}$); computed as $e^{b - m}/\lVert e^{b - m}\rVert_2$ with $m$ the row maximum, which
    is exact because the ratio is invariant to the shift. $f = \mathrm{swish}$ drops non-negativity.

    Args:
        logits: ``[b or 1, h, tq, tk]`` pre-normalisation scores $b_{ij}$.
        v: ``[b, tk, hk, dv]`` values.
        mask: optional boolean mask broadcastable to ``[b, h, tq, tk]``.
        is_causal: mask future keys.
        activation: ``"exp"`` or ``"swish"``.

    Returns:
        ``[b, tq, h, dv]`` in ``v``'s dtype.

    References:
        https://kexue.fm/archives/9105.
    """
    check_in("activation", activation, ("exp", "swish"))
    logits, mask, h = _masked_weights(logits, v, mask, is_causal)
    if activation == "exp":
        if mask is not None:
            logits = jnp.where(mask, logits, -jnp.inf)
        m = jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
        m = jnp.where(jnp.isfinite(m), m, 0.0)
        f = jnp.exp(logits - m)
    else:
        f = jax.nn.silu(logits)
        if mask is not None:
            f = jnp.where(mask, f, 0.0)
    norm = jnp.sqrt(jnp.sum(jnp.square(f), axis=-1, keepdims=True) + 1e-30)
    return _apply(f / norm, v, h)


@jit_with_static("is_causal", "activation")
def denominator_free_attention(
    logits: Float[Array, "b h tq tk"],
    v: Float[Array, "b tk hk dv"],
    *,
    mask: Bool[Array, "b h tq tk"] | None = None,
    is_causal: bool = False,
    activation: Literal["exp", "relu2"] = "exp",
) -> Float[Array, "b tq h dv"]:
    r"""Attention without the softmax denominator, fix (b) of 9105.

    $a_{ij} = e^{b_{ij}}$ (``"exp"``) or $\mathrm{relu}^2(b_{ij})/n$ (``"relu2"``).

    ``"exp"`` is softmax without its normaliser (unbounded: keep logits moderate); ``"relu2"``
    is GAU's choice with $n$ = ``tk``, or the number of keys ``mask`` keeps in each row (padding
    does not count; see :func:`~kexue_jax.attention.relu2_attention`).

    Args:
        logits: ``[b or 1, h, tq, tk]`` scores $b_{ij}$.
        v: ``[b, tk, hk, dv]`` values.
        mask: optional boolean mask broadcastable to ``[b, h, tq, tk]``.
        is_causal: mask future keys.
        activation: ``"exp"`` or ``"relu2"``.

    Returns:
        ``[b, tq, h, dv]`` in ``v``'s dtype.

    References:
        https://kexue.fm/archives/9105; https://kexue.fm/archives/8934.
    """
    check_in("activation", activation, ("exp", "relu2"))
    user_mask = mask
    logits, mask, h = _masked_weights(logits, v, mask, is_causal)
    if activation == "exp":
        w = jnp.exp(logits)
    elif user_mask is None:
        w = jnp.square(jax.nn.relu(logits)) / logits.shape[-1]
    else:  # n = the keys the (padding) mask keeps, as in relu2_attention; causality does not change n
        keep = jnp.broadcast_to(user_mask, logits.shape)
        w = jnp.square(jax.nn.relu(logits)) / jnp.maximum(jnp.sum(keep, axis=-1, keepdims=True), 1)
    if mask is not None:
        w = jnp.where(mask, w, 0.0)
    return _apply(w, v, h)


@jit_with_static("is_causal")
def toeplitz_gated_attention(
    logits: Float[Array, "b h tq tk"],
    v: Float[Array, "b tk hk dv"],
    c: Float[Array, "h tq tk"],
    *,
    mask: Bool[Array, "b h tq tk"] | None = None,
    is_causal: bool = False,
) -> Float[Array, "b tq h dv"]:
    r"""$O = (\mathrm{softmax}(B) \odot C)\,V$ with a Toeplitz $C$ (see :func:`toeplitz`), fix (a) of 9105.

    Args:
        logits: ``[b or 1, h, tq, tk]`` scores $B$.
        v: ``[b, tk, hk, dv]`` values.
        c: ``[h, tq, tk]`` multiplicative gates (or anything broadcastable to the logits).
        mask: optional boolean mask broadcastable to ``[b, h, tq, tk]``.
        is_causal: mask future keys.

    Returns:
        ``[b, tq, h, dv]`` in ``v``'s dtype.

    References:
        https://kexue.fm/archives/9105; Luo et al. 2022, arXiv:2205.13401.
    """
    logits, mask, h = _masked_weights(logits, v, mask, is_causal)
    check_floating("c", c)
    c4 = check_broadcast_4d(
        "c", c, logits.shape[0], h, logits.shape[2], logits.shape[3], boolean=False
    )
    if mask is not None:
        logits = jnp.where(mask, logits, -jnp.inf)
    probs = jax.nn.softmax(logits, axis=-1)
    return _apply(probs * c4.astype(jnp.float32), v, h)


def add_boundary_tokens(
    x: Float[Array, "b t *rest"], cls: Float[Array, "*rest"], sep: Float[Array, "*rest"]
) -> Float[Array, "b t+2 *rest"]:
    """Fix (d) of 9105: frame the sequence as ``[CLS] x [SEP]`` along axis 1.

    Args:
        x: ``[b, t, ...]`` embedded tokens.
        cls: ``[...]`` embedding of the leading boundary token.
        sep: ``[...]`` embedding of the trailing boundary token.

    Returns:
        ``[b, t + 2, ...]``.

    Example:
        >>> add_boundary_tokens(jnp.zeros((1, 2, 1)), jnp.ones(1), -jnp.ones(1))[0, :, 0].tolist()
        [1.0, 0.0, 0.0, -1.0]
    """
    check_floating("x", x)
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"x: expected rank >= 2 ([b, t, ...]), got shape {x.shape}")
    for name, tok in (("cls", cls), ("sep", sep)):
        if jnp.shape(tok) != x.shape[2:]:
            raise ValueError(
                f"{name}: expected shape {x.shape[2:]} (x {x.shape}), got {jnp.shape(tok)}"
            )
    b = x.shape[0]
    framing = [jnp.broadcast_to(jnp.asarray(t, x.dtype), (b, 1, *x.shape[2:])) for t in (cls, sep)]
    return jnp.concatenate([framing[0], x, framing[1]], axis=1)


def probe_targets(n: int) -> Float[Array, " n"]:
    """The probe's targets ``[1, 2, ..., n]`` (inputs: ``n`` identical tokens), float32."""
    if not (isinstance(n, int) and n > 0):
        raise ValueError(f"n: expected a positive int, got {n!r}")
    return jnp.arange(1, n + 1, dtype=jnp.float32)
