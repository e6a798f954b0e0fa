r"""GAU (gated attention unit) and FLASH (mixed chunk attention) of "Transformer Quality in Linear Time".

**GAU**: $O = (U \odot AV)W_o$ with $U = \phi(XW_u)$, $V = \phi(XW_v)$, $Z = \phi(XW_z)$
($\phi$ = swish, $W_u, W_v \in \mathbb R^{d\times e}$, $W_z \in \mathbb R^{d\times s}$), a single head
whose $Q, K$ are per-dimension scale-and-offset of the shared $Z$, and the attention
$A = \frac1n \mathrm{relu}^2\!\big(QK^\top/\sqrt s\big) = \frac{1}{ns}\mathrm{relu}^2(QK^\top)$ — the
$1/(ns)$ normalisation Su argues for in 8934 (the paper's code effectively uses $1/n^2$). $A = I$
gives the GLU feed-forward; $U = 1$ gives plain attention.

**FLASH** splits the sequence into chunks of length $c$ and uses four affine heads of $Z$:
$\hat V_g^{quad} = \frac{1}{cs}\mathrm{relu}^2(Q_g^{quad}K_g^{quad\top})V_g$ inside chunk $g$ (lower
triangle only when causal) plus the linear global term $\hat V_g^{lin} = \frac1n Q_g^{lin}\sum_h
K_h^{lin\top}V_h$ (non-causal) or, causally,
$\hat V_g^{lin} = \frac{1}{(g-1)c} Q_g^{lin}\sum_{h<g} K_h^{lin\top}V_h$ ($\hat V_1^{lin} = 0$).
The post writes the causal normaliser as $\frac{1}{(g-1)n/c}$; we read it as the number of tokens
in the earlier chunks, $(g-1)c$, which makes the last chunk's normaliser match the non-causal
$1/n$. Output $O_g = [U_g \odot (\hat V_g^{quad} + \hat V_g^{lin})]W_o$.

References:
    https://kexue.fm/archives/8934 (FLASH：可能是近来最有意思的高效Transformer设计).
    Hua et al. 2022, "Transformer Quality in Linear Time", arXiv:2202.10447.
"""

from __future__ import annotations

import math
from typing import Literal

import jax
import jax.numpy as jnp

from kexue_jax._src.checks import check_dims, check_floating, check_in, check_positive, check_shape
from kexue_jax._src.typing import Array, Bool, Float, PRNGKey
from kexue_jax.attention._jit import jit_with_static
from kexue_jax.attention._validate import check_broadcast_4d, check_qkv, repeat_kv_heads
from kexue_jax.attention.dot_product import attention_from_logits, attention_logits
from kexue_jax.attention.linear import compute_dtype, exclusive_cumsum, mm

Normalization = Literal["relu2", "softmax", "softmax_plus"]
NORMALIZATIONS = ("relu2", "softmax", "softmax_plus")


@jit_with_static("is_causal")
def relu2_attention(
    q: Float[Array, "b tq h s"],
    k: Float[Array, "b tk hk s"],
    v: Float[Array, "b tk hk e"],
    *,
    is_causal: bool = False,
    mask: Bool[Array, "b h tq tk"] | None = None,
) -> Float[Array, "b tq h e"]:
    r"""GAU's attention $\frac1n\mathrm{relu}^2(QK^\top/\sqrt s)\,V$ (no softmax, rows need not sum to one).

    $n$ is the number of keys ``tk``, or with ``mask`` the number of keys each query row may see
    under that mask (e.g. the true length under a padding mask); the causal mask zeroes the upper
    triangle but leaves $n$ unchanged, as in Su's bert4keras GAU.

    Args:
        q: ``[b, tq, h, s]`` queries.
        k: ``[b, tk, hk, s]`` keys.
        v: ``[b, tk, hk, e]`` values.
        is_causal: zero the weights of future keys.
        mask: optional boolean mask broadcastable to ``[b, h, tq, tk]``.

    Returns:
        ``[b, tq, h, e]`` in ``v``'s dtype (weights in float32).

    References:
        https://kexue.fm/archives/8934; Hua et al. 2022, arXiv:2202.10447.
    """
    dims = check_qkv(q, k, v)
    b, h, tq, tk = dims["b"], dims["h"], dims["tq"], dims["tk"]
    mask = check_broadcast_4d("mask", mask, b, h, tq, tk, boolean=True)
    weights = jnp.square(jax.nn.relu(attention_logits(q, k)))
    if mask is None:
        weights = weights / tk
    else:
        count = jnp.maximum(jnp.sum(mask, axis=-1, keepdims=True), 1)
        weights = jnp.where(mask, weights, 0.0) / count
    if is_causal:
        weights = weights * jnp.tril(jnp.ones((tq, tk), jnp.float32))
    vf = repeat_kv_heads(v, h).astype(jnp.float32)
    return jnp.einsum("bhqk,bkhe->bqhe", weights, vf).astype(v.dtype)


def _check_mixed(q_quad, k_quad, q_lin, k_lin, v, chunk_size):
    dims = check_qkv(q_quad, k_quad, v, names=("q_quad", "k_quad", "v"))
    if dims["tq"] != dims["tk"] or dims["h"] != dims["hk"]:
        raise ValueError(
            f"k_quad: mixed chunk attention is self-attention with equal heads; got q_quad "
            f"{q_quad.shape}, k_quad {k_quad.shape}"
        )
    check_floating("q_lin", q_lin)
    check_floating("k_lin", k_lin)
    bq = check_shape("q_lin", q_lin, [dims["b"], dims["tq"], dims["h"], "r"])
    bk = check_shape("k_lin", k_lin, [dims["b"], dims["tq"], dims["h"], "r"])
    check_dims([("q_lin", bq), ("k_lin", bk)])
    check_positive("chunk_size", chunk_size)
    return dims


@jit_with_static("chunk_size", "is_causal")
def mixed_chunk_attention(
    q_quad: Float[Array, "b t h s"],
    k_quad: Float[Array, "b t h s"],
    q_lin: Float[Array, "b t h r"],
    k_lin: Float[Array, "b t h r"],
    v: Float[Array, "b t h e"],
    *,
    chunk_size: int = 256,
    is_causal: bool = False,
) -> Float[Array, "b t h e"]:
    r"""FLASH's mixed chunk attention: quadratic $\mathrm{relu}^2$ inside chunks + linear across chunks.

    Cost $O(tc)$ for the local part and $O(t\,r\,e/c)$ memory for the chunk states. A sequence whose
    length is not a multiple of ``chunk_size`` is zero-padded at the end (padded keys have zero
    weight in both parts). See the module docstring for the formula and the normalisers.
    The matrix products take the inputs' dtype (bf16 on a GPU); the $\mathrm{relu}^2$ weights,
    chunk states and normalisers are float32.

    Args:
        q_quad, k_quad: ``[b, t, h, s]`` local (quadratic) queries and keys.
        q_lin, k_lin: ``[b, t, h, r]`` global (linear) queries and keys.
        v: ``[b, t, h, e]`` values.
        chunk_size: $c$ (256 in the paper).
        is_causal: decoder form (lower triangle in the chunk, earlier chunks only across).

    Returns:
        ``[b, t, h, e]`` in ``v``'s dtype.

    References:
        https://kexue.fm/archives/8934; Hua et al. 2022, arXiv:2202.10447.
    """
    dims = _check_mixed(q_quad, k_quad, q_lin, k_lin, v, chunk_size)
    b, t, h, s = dims["b"], dims["tq"], dims["h"], dims["d"]
    c = chunk_size
    pad = (-t) % c
    dtype = compute_dtype(q_quad, k_quad, q_lin, k_lin, v)
    arrays = [x.astype(dtype) for x in (q_quad, k_quad, q_lin, k_lin, v)]
    if pad:
        arrays = [jnp.pad(x, ((0, 0), (0, pad), (0, 0), (0, 0))) for x in arrays]
    g = (t + pad) // c
    qq, kq, ql, kl, vf = (x.reshape(b, g, c, h, x.shape[-1]) for x in arrays)
    weights = jnp.square(jax.nn.relu(mm("bgqhs,bgkhs->bghqk", qq, kq, dtype))) / (c * s)
    if is_causal:
        weights = weights * jnp.tril(jnp.ones((c, c), jnp.float32))
    local = mm("bghqk,bgkhe->bgqhe", weights, vf, dtype)
    chunk_kv = mm("bgkhr,bgkhe->bghre", kl, vf, dtype)
    if is_causal:
        prev_kv = exclusive_cumsum(chunk_kv, axis=1)
        count = jnp.arange(g, dtype=jnp.float32) * c
        prev_kv = prev_kv / jnp.maximum(count, 1.0)[None, :, None, None, None]
        glob = mm("bgqhr,bghre->bgqhe", ql, prev_kv, dtype)
    else:
        glob = mm("bgqhr,bhre->bgqhe", ql, jnp.sum(chunk_kv, axis=1) / t, dtype)
    out = (local + glob).reshape(b, g * c, h, -1)[:, :t]
    return out.astype(v.dtype)


@jit_with_static("chunk_size", "is_causal")
def mixed_chunk_attention_reference(
    q_quad: Float[Array, "b t h s"],
    k_quad: Float[Array, "b t h s"],
    q_lin: Float[Array, "b t h r"],
    k_lin: Float[Array, "b t h r"],
    v: Float[Array, "b t h e"],
    *,
    chunk_size: int = 256,
    is_causal: bool = False,
) -> Float[Array, "b t h e"]:
    r"""The same output as :func:`mixed_chunk_attention` from explicit ``[t, t]`` weight matrices.

    $W = \frac{1}{cs}\mathrm{relu}^2(Q^{quad}K^{quad\top}) \odot M_{block}
    + \mathrm{diag}(1/n_i)\,(Q^{lin}K^{lin\top}) \odot M_{global}$ with $M_{block}$ the same-chunk mask
    (and $j \le i$ when causal), $M_{global}$ all ones (non-causal, $n_i = t$) or
    $\mathrm{chunk}(j) < \mathrm{chunk}(i)$ (causal, $n_i = c\cdot\mathrm{chunk}(i)$, 0-based).
    $O(t^2)$: an oracle for tests.
    """
    dims = _check_mixed(q_quad, k_quad, q_lin, k_lin, v, chunk_size)
    t, s, c = dims["tq"], dims["d"], chunk_size
    f32 = [x.astype(jnp.float32) for x in (q_quad, k_quad, q_lin, k_lin, v)]
    qq, kq, ql, kl, vf = f32
    chunk = jnp.arange(t) // c
    same = chunk[:, None] == chunk[None, :]
    if is_causal:
        same &= jnp.arange(t)[None, :] <= jnp.arange(t)[:, None]
        earlier = chunk[None, :] < chunk[:, None]
        norm = jnp.maximum(chunk * c, 1).astype(jnp.float32)[:, None]
        glob_mask = earlier / norm
    else:
        glob_mask = jnp.ones((t, t), jnp.float32) / t
    quad = jnp.square(jax.nn.relu(jnp.einsum("bqhs,bkhs->bhqk", qq, kq))) / (c * s) * same
    lin = jnp.einsum("bqhr,bkhr->bhqk", ql, kl) * glob_mask
    return jnp.einsum("bhqk,bkhe->bqhe", quad + lin, vf).astype(v.dtype)


def _gate_projections(params, x):
    """U, V (width e) and Z (width s) of GAU/FLASH, all swish-activated, in float32."""
    xf = x.astype(jnp.float32)
    u = jax.nn.silu(xf @ params["w_u"] + params["b_u"])
    v = jax.nn.silu(xf @ params["w_v"] + params["b_v"])
    z = jax.nn.silu(xf @ params["w_z"] + params["b_z"])
    return u, v, z


def _check_layer(params, x, num_affine: int):
    check_floating("x", x)
    bx = check_shape("x", x, ["b", "t", "d"])
    bu = check_shape("params['w_u']", params["w_u"], ["d", "e"])
    bz = check_shape("params['w_z']", params["w_z"], ["d", "s"])
    check_shape("params['gamma']", params["gamma"], [num_affine, "s"])
    check_shape("params['w_o']", params["w_o"], ["e", "d"])
    return check_dims([("x", bx), ("params['w_u']", bu), ("params['w_z']", bz)])


@jit_with_static("is_causal", "normalization", "train_length")
def gau(
    params: dict[str, Array],
    x: Float[Array, "b t d"],
    *,
    is_causal: bool = False,
    mask: Bool[Array, "b 1 t t"] | None = None,
    normalization: Normalization = "relu2",
    train_length: int = 512,
) -> Float[Array, "b t d"]:
    r"""Gated attention unit $O = (U \odot AV)W_o$ with a single head $Q, K$ = scale-offsets of $Z$.

    Args:
        params: from :func:`init_gau`: ``w_u, b_u, w_v, b_v`` (``[d, e]``, ``[e]``), ``w_z, b_z``
            (``[d, s]``, ``[s]``), ``gamma, beta`` (``[2, s]``: rows for $Q$ and $K$), ``w_o, b_o``
            (``[e, d]``, ``[d]``).
        x: ``[b, t, d]`` inputs.
        is_causal: decoder GAU.
        mask: optional boolean mask broadcastable to ``[b, 1, t, t]``.
        normalization: ``"relu2"`` ($\frac1n\mathrm{relu}^2(QK^\top/\sqrt s)$, 8934),
            ``"softmax"`` ($\mathrm{softmax}(QK^\top/\sqrt s)$) or ``"softmax_plus"``
            ($\mathrm{softmax}(\log_{L}(n)\,QK^\top/\sqrt s)$ with $L$ = ``train_length``, Su's
            entropy-invariant variant of https://kexue.fm/archives/8823).
        train_length: $L$ of ``softmax_plus``.

    Returns:
        ``[b, t, d]`` in ``x``'s dtype.

    References:
        https://kexue.fm/archives/8934; Hua et al. 2022, arXiv:2202.10447.
    """
    check_in("normalization", normalization, NORMALIZATIONS)
    _check_layer(params, x, 2)
    u, v, z = _gate_projections(params, x)
    qk = (
        z[:, :, None, :] * params["gamma"][:, None, None, None, :]
        + params["beta"][:, None, None, None, :]
    )
    q, k = qk[0], qk[1]  # [b, t, 1, s]
    vh = v[:, :, None, :]
    if normalization == "relu2":
        av = relu2_attention(q, k, vh, is_causal=is_causal, mask=mask)
    else:
        logits = attention_logits(q, k)
        if normalization == "softmax_plus":
            logits = logits * math.log(x.shape[1]) / math.log(train_length)
        av = attention_from_logits(logits, vh, mask=mask, is_causal=is_causal)
    out = (u * av[:, :, 0, :]) @ params["w_o"] + params["b_o"]
    return out.astype(x.dtype)


@jit_with_static("chunk_size", "is_causal")
def flash(
    params: dict[str, Array],
    x: Float[Array, "b t d"],
    *,
    chunk_size: int = 256,
    is_causal: bool = False,
) -> Float[Array, "b t d"]:
    r"""FLASH layer $O = [U \odot (\hat V^{quad} + \hat V^{lin})]W_o$ (linear in the sequence length).

    Args:
        params: from :func:`init_flash` (as :func:`gau` but ``gamma, beta`` are ``[4, s]``: rows
            for $Q^{quad}, K^{quad}, Q^{lin}, K^{lin}$).
        x: ``[b, t, d]`` inputs.
        chunk_size: $c$ (256 in the paper).
        is_causal: decoder FLASH.

    Returns:
        ``[b, t, d]`` in ``x``'s dtype.

    References:
        https://kexue.fm/archives/8934; Hua et al. 2022, arXiv:2202.10447.
    """
    _check_layer(params, x, 4)
    u, v, z = _gate_projections(params, x)
    heads = (
        z[None, :, :, None, :] * params["gamma"][:, None, None, None, :]
        + params["beta"][:, None, None, None, :]
    )
    av = mixed_chunk_attention(
        heads[0],
        heads[1],
        heads[2],
        heads[3],
        v[:, :, None, :],
        chunk_size=chunk_size,
        is_causal=is_causal,
    )
    out = (u * av[:, :, 0, :]) @ params["w_o"] + params["b_o"]
    return out.astype(x.dtype)


def _init_layer(num_affine: int, *, d_model: int, expansion: int, key_size: int, key: PRNGKey):
    e = expansion * d_model
    ku, kv, kz, kg, ko = jax.random.split(key, 5)

    def dense(k, n_in, n_out):
        return jax.random.normal(k, (n_in, n_out), jnp.float32) / math.sqrt(n_in)

    return {
        "w_u": dense(ku, d_model, e),
        "b_u": jnp.zeros((e,), jnp.float32),
        "w_v": dense(kv, d_model, e),
        "b_v": jnp.zeros((e,), jnp.float32),
        "w_z": dense(kz, d_model, key_size),
        "b_z": jnp.zeros((key_size,), jnp.float32),
        # Scales near 1 with a little noise so that the affine heads of Z differ from the start.
        "gamma": 1.0 + 0.02 * jax.random.normal(kg, (num_affine, key_size), jnp.float32),
        "beta": jnp.zeros((num_affine, key_size), jnp.float32),
        "w_o": dense(ko, e, d_model),
        "b_o": jnp.zeros((d_model,), jnp.float32),
    }


def init_gau(
    *, d_model: int, expansion: int = 2, key_size: int = 128, key: PRNGKey
) -> dict[str, Array]:
    """Parameters of :func:`gau`: ``e = expansion * d_model``, ``s = key_size`` (paper: e = 2d, s = 128)."""
    return _init_layer(2, d_model=d_model, expansion=expansion, key_size=key_size, key=key)


def init_flash(
    *, d_model: int, expansion: int = 2, key_size: int = 128, key: PRNGKey
) -> dict[str, Array]:
    """Parameters of :func:`flash` (four affine heads of ``Z``)."""
    return _init_layer(4, d_model=d_model, expansion=expansion, key_size=key_size, key=key)
