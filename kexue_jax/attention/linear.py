r"""Linear attention: kernelised attention computed in $O(n)$, non-causal and causal.

$\mathrm{Att}_i = \dfrac{\sum_j \phi(q_i)^\top\phi(k_j)\,v_j}{\sum_j \phi(q_i)^\top\phi(k_j)}
= \dfrac{\phi(q_i)^\top \sum_j \phi(k_j) v_j^\top}{\phi(q_i)^\top \sum_j \phi(k_j)}$: computing
$\phi(K)^\top V$ first makes the cost linear in the length. Causal: the sums run over $j \le i$,
i.e. the RNN $S_i = S_{i-1} + \phi(k_i)v_i^\top$, $z_i = z_{i-1} + \phi(k_i)$,
$\mathrm{Att}_i = \phi(q_i)^\top S_i / \phi(q_i)^\top z_i$, which we compute four ways (the
masked quadratic form, a ``cumsum``, a ``lax.scan`` recurrence, and chunks: quadratic inside a chunk
plus the state carried across chunks). Feature maps, states and normalisers are float32. The
chunked form and the non-causal associative form, the two meant for speed, run every matrix
product in the inputs' dtype (bf16 on a GPU, whose matmul units accumulate in float32), as a fused
kernel would: float32 products run at a fraction of a GPU's bf16 matmul rate. The quadratic, cumsum
and scan forms are references and compute in float32 throughout. Outputs take ``v``'s dtype.

Feature maps (:data:`FEATURE_MAPS`): ``"elu+1"`` (Katharopoulos et al.), ``"relu"``, ``"identity"``
(no map: with ``normalize=False`` this is exactly $(QK^\top)V$) and ``"taylor"``, Su's first-order
Taylor kernel $\mathrm{sim}(q, k) = 1 + \hat q^\top \hat k \in [0, 2]$ with $\hat x = x/\lVert x\rVert$,
written as the feature map $\phi(x) = [1, \hat x]$. The softmax variant
$\mathrm{softmax}_d(Q)\,\mathrm{softmax}_t(K)^\top V$ is :func:`efficient_attention`.

References:
    https://kexue.fm/archives/7546 (线性Attention的探索：Attention必须有个Softmax吗？).
    Katharopoulos et al. 2020, "Transformers are RNNs", arXiv:2006.16236.
    Shen et al. 2018, "Efficient Attention: Attention with Linear Complexities", arXiv:1812.01243.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import jax
import jax.numpy as jnp

from kexue_jax._src.checks import check_in, check_positive
from kexue_jax._src.typing import Array, Float
from kexue_jax.attention._jit import jit_with_static
from kexue_jax.attention._validate import check_qkv, repeat_kv_heads


def elu_plus_one(x: Array) -> Array:
    r"""$\phi(x) = \mathrm{elu}(x) + 1 > 0$ (Katharopoulos et al. 2020)."""
    return jax.nn.elu(x) + 1.0


def taylor_features(x: Array) -> Array:
    r"""$\phi(x) = [1, x/\lVert x\rVert]$, so $\phi(q)^\top\phi(k) = 1 + \hat q^\top \hat k \in [0, 2]$.

    Su's Taylor-expansion kernel of https://kexue.fm/archives/7546 (``head_dim + 1`` features).
    """
    xn = x * jax.lax.rsqrt(jnp.sum(jnp.square(x), axis=-1, keepdims=True) + 1e-12)
    return jnp.concatenate([jnp.ones_like(x[..., :1]), xn], axis=-1)


FEATURE_MAPS: dict[str, Callable[[Array], Array]] = {
    "elu+1": elu_plus_one,
    "relu": jax.nn.relu,
    "identity": lambda x: x,
    "taylor": taylor_features,
}

Method = Literal["quadratic", "cumsum", "scan", "chunked"]
METHODS = ("quadratic", "cumsum", "scan", "chunked")


def _features(feature_map, q, k, h):
    fn = feature_map if callable(feature_map) else None
    if fn is None:
        check_in("feature_map", feature_map, tuple(FEATURE_MAPS))
        fn = FEATURE_MAPS[feature_map]
    fq = fn(q.astype(jnp.float32))
    fk = fn(repeat_kv_heads(k, h).astype(jnp.float32))
    return fq, fk


def mm(spec: str, a: Array, b: Array, dtype: jnp.dtype) -> Array:
    """``einsum(spec, a, b)`` on operands cast to ``dtype``, returned as float32.

    The product's own result is in ``dtype``: a GPU's bf16 matmul accumulates in float32 and rounds
    once at the end. (``preferred_element_type=float32`` would skip that one rounding, but XLA:CPU
    cannot run bf16 × bf16 = float32 for some of these contractions.)
    """
    return jnp.einsum(spec, a.astype(dtype), b.astype(dtype)).astype(jnp.float32)


def compute_dtype(*arrays: Array) -> jnp.dtype:
    """The dtype of the fast paths' matrix operands: the inputs' common floating dtype."""
    dtype = jnp.result_type(*arrays)
    return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.dtype(jnp.float32)


def exclusive_cumsum(x: Array, *, axis: int) -> Array:
    """``sum(x[:i])`` along ``axis`` (0 at the first index).

    Shifts the inclusive cumsum instead of subtracting ``x`` from it: ``cumsum(x) - x`` leaves a
    rounding residue of ``x`` itself, which would leak a chunk's (future) content into its own state.
    """
    c = jnp.cumsum(x, axis=axis)
    pad = [(0, 0)] * x.ndim
    pad[axis] = (1, 0)
    return jax.lax.slice_in_dim(jnp.pad(c, pad), 0, x.shape[axis], axis=axis)


def _normalise(num, den, normalize: bool, eps: float):
    return num / (den[..., None] + eps) if normalize else num


def _quadratic(fq, fk, v, is_causal):
    scores = jnp.einsum("bqhd,bkhd->bhqk", fq, fk)
    if is_causal:
        t = scores.shape[-1]
        scores = scores * jnp.tril(jnp.ones((t, t), scores.dtype))
    return jnp.einsum("bhqk,bkhe->bqhe", scores, v), jnp.einsum("bhqk->bqh", scores)


def _cumsum(fq, fk, v):
    state = jnp.cumsum(jnp.einsum("bthd,bthe->bthde", fk, v), axis=1)
    z = jnp.cumsum(fk, axis=1)
    return jnp.einsum("bthd,bthde->bthe", fq, state), jnp.einsum("bthd,bthd->bth", fq, z)


def _scan(fq, fk, v):
    b, _, h, d = fk.shape
    e = v.shape[-1]

    def step(carry, inputs):
        state, z = carry
        q_t, k_t, v_t = inputs
        state = state + jnp.einsum("bhd,bhe->bhde", k_t, v_t)
        z = z + k_t
        return (state, z), (
            jnp.einsum("bhd,bhde->bhe", q_t, state),
            jnp.einsum("bhd,bhd->bh", q_t, z),
        )

    init = (jnp.zeros((b, h, d, e), jnp.float32), jnp.zeros((b, h, d), jnp.float32))
    xs = tuple(jnp.moveaxis(x, 1, 0) for x in (fq, fk, v))
    _, (num, den) = jax.lax.scan(step, init, xs)
    return jnp.moveaxis(num, 0, 1), jnp.moveaxis(den, 0, 1)


def _chunked(fq, fk, v, chunk_size, dtype):
    b, t, h, d = fq.shape
    e = v.shape[-1]
    c = min(chunk_size, t)
    pad = (-t) % c
    if pad:
        # Zero-padding at the end: padded keys come after every real query, so causally unseen.
        fq, fk, v = (jnp.pad(x, ((0, 0), (0, pad), (0, 0), (0, 0))) for x in (fq, fk, v))
    g = (t + pad) // c
    fq, fk = (x.reshape(b, g, c, h, d) for x in (fq, fk))
    v = v.reshape(b, g, c, h, e)
    scores = mm("bgqhd,bgkhd->bghqk", fq, fk, dtype) * jnp.tril(jnp.ones((c, c), jnp.float32))
    # The denominator sums the very weights (rounded to ``dtype``) that multiply v.
    scores = scores.astype(dtype)
    num = mm("bghqk,bgkhe->bgqhe", scores, v, dtype)
    den = jnp.einsum("bghqk->bgqh", scores.astype(jnp.float32))
    # State entering chunk g: the sum over all earlier chunks (exclusive prefix sum).
    prev_state = exclusive_cumsum(mm("bgkhd,bgkhe->bghde", fk, v, dtype), axis=1)
    prev_z = exclusive_cumsum(jnp.sum(fk, axis=2), axis=1)
    num = num + mm("bgqhd,bghde->bgqhe", fq, prev_state, dtype)
    den = den + mm("bgqhd,bghd->bgqh", fq, prev_z, dtype)
    return num.reshape(b, g * c, h, e)[:, :t], den.reshape(b, g * c, h)[:, :t]


@jit_with_static("feature_map", "is_causal", "method", "chunk_size", "normalize", "eps")
def linear_attention(
    q: Float[Array, "b t h d"],
    k: Float[Array, "b t hk d"],
    v: Float[Array, "b t hk dv"],
    *,
    feature_map: str | Callable[[Array], Array] = "elu+1",
    is_causal: bool = False,
    method: Method = "chunked",
    chunk_size: int = 64,
    normalize: bool = True,
    eps: float = 1e-6,
) -> Float[Array, "b t h dv"]:
    r"""Kernelised linear attention $\phi(Q)\,[\phi(K)^\top V] / \phi(Q)\,[\phi(K)^\top \mathbf 1]$.

    Args:
        q: ``[b, t, h, d]`` queries.
        k: ``[b, t, hk, d]`` keys (``hk`` divides ``h``).
        v: ``[b, t, hk, dv]`` values.
        feature_map: a name in :data:`FEATURE_MAPS` or a callable applied to the last axis.
        is_causal: sums over $j \le i$ only.
        method: how the causal sums are computed: ``"quadratic"`` (explicit masked $n\times n$
            matrix, the reference), ``"cumsum"`` (materialises the ``[b, t, h, d, dv]`` prefix
            states), ``"scan"`` (``lax.scan`` RNN, ``O(1)`` state), ``"chunked"`` (quadratic inside
            chunks of ``chunk_size`` plus the carried state: the training-friendly form). Without
            ``is_causal`` every method but ``"quadratic"`` uses the associative form
            $\phi(Q)(\phi(K)^\top V)$.
        chunk_size: chunk length for ``method="chunked"`` (the last chunk is zero-padded).
            ``"chunked"`` and the non-causal associative form multiply in the inputs' dtype (see
            the module docstring); the others in float32.
        normalize: divide by $\phi(q_i)^\top \sum_j \phi(k_j)$ (``False`` gives the raw
            $(\phi(Q)\phi(K)^\top)V$; use it with ``"identity"``, whose denominator has no sign).
        eps: added to the denominator.

    Returns:
        ``[b, t, h, dv]`` in ``v``'s dtype.

    References:
        https://kexue.fm/archives/7546; Katharopoulos et al. 2020, arXiv:2006.16236.

    Example:
        >>> x = jnp.ones((1, 4, 1, 2))
        >>> out = linear_attention(x, x, jnp.arange(4.0).reshape(1, 4, 1, 1), is_causal=True)
        >>> out[0, :, 0, 0].round(4).tolist()  # equal weights: running means of 0, 1, 2, 3
        [0.0, 0.5, 1.0, 1.5]
    """
    dims = check_qkv(q, k, v)
    if dims["tq"] != dims["tk"]:
        raise ValueError(f"k: linear attention needs tq == tk, got q {q.shape}, k {k.shape}")
    check_in("method", method, METHODS)
    check_positive("chunk_size", chunk_size)
    fq, fk = _features(feature_map, q, k, dims["h"])
    dtype = compute_dtype(q, k, v)
    vf = repeat_kv_heads(v, dims["h"]).astype(jnp.float32)
    if method == "quadratic":
        num, den = _quadratic(fq, fk, vf, is_causal)
    elif not is_causal:
        num = mm("bthd,bhde->bthe", fq, mm("bthd,bthe->bhde", fk, vf, dtype), dtype)
        den = mm("bthd,bhd->bth", fq, jnp.sum(fk, axis=1), dtype)
    elif method == "cumsum":
        num, den = _cumsum(fq, fk, vf)
    elif method == "scan":
        num, den = _scan(fq, fk, vf)
    else:
        num, den = _chunked(fq, fk, vf, chunk_size, dtype)
    return _normalise(num, den, normalize, eps).astype(v.dtype)


def _prefix_softmax_scan(k, v):
    """``sum_{j<=i} e^{k_j} v_j / sum_{j<=i} e^{k_j}`` per feature, by an online-softmax ``lax.scan``.

    The carried running maximum keeps the exponentials bounded and uses only past tokens, so the
    result at ``i`` is exactly independent of ``j > i`` (a global maximum would not be).
    """
    b, _, h, d = k.shape
    e = v.shape[-1]

    def step(carry, inputs):
        m, s, n = carry
        k_t, v_t = inputs
        m_new = jnp.maximum(m, k_t)
        decay, w = jnp.exp(m - m_new), jnp.exp(k_t - m_new)
        s = s * decay + w
        n = n * decay[..., None] + w[..., None] * v_t[:, :, None, :]
        return (m_new, s, n), n / s[..., None]

    init = (
        jnp.full((b, h, d), -jnp.inf, jnp.float32),
        jnp.zeros((b, h, d), jnp.float32),
        jnp.zeros((b, h, d, e), jnp.float32),
    )
    _, kv = jax.lax.scan(step, init, (jnp.moveaxis(k, 1, 0), jnp.moveaxis(v, 1, 0)))
    return jnp.moveaxis(kv, 0, 1)


@jit_with_static("is_causal")
def efficient_attention(
    q: Float[Array, "b t h d"],
    k: Float[Array, "b t hk d"],
    v: Float[Array, "b t hk dv"],
    *,
    is_causal: bool = False,
) -> Float[Array, "b t h dv"]:
    r"""Efficient attention $\mathrm{softmax}_d(Q)\,\mathrm{softmax}_t(K)^\top V$.

    The softmax runs over features for $Q$ and over positions for $K$.

    Each row of $\mathrm{softmax}_d(Q)\mathrm{softmax}_t(K)^\top$ sums to one without a separate
    normaliser. Causal (our extension, not in the article): the softmax of $K$ runs over the prefix
    $j \le i$, $\mathrm{Att}_i = \mathrm{softmax}_d(q_i)^\top
    [\sum_{j\le i} e^{k_j} v_j^\top / \sum_{j \le i} e^{k_j}]$ (per feature), computed stably by a
    ``lax.scan`` over positions that carries the running maximum (sequential, like
    ``linear_attention(method="scan")``).

    Args:
        q: ``[b, t, h, d]`` queries.
        k: ``[b, t, hk, d]`` keys (``hk`` divides ``h``).
        v: ``[b, t, hk, dv]`` values.
        is_causal: prefix softmax over positions for $K$.

    Returns:
        ``[b, t, h, dv]`` in ``v``'s dtype.

    References:
        https://kexue.fm/archives/7546; Shen et al. 2018, arXiv:1812.01243.
    """
    dims = check_qkv(q, k, v)
    if dims["tq"] != dims["tk"]:
        raise ValueError(f"k: efficient attention needs tq == tk, got q {q.shape}, k {k.shape}")
    h = dims["h"]
    pq = jax.nn.softmax(q.astype(jnp.float32), axis=-1)
    kf = repeat_kv_heads(k, h).astype(jnp.float32)
    vf = repeat_kv_heads(v, h).astype(jnp.float32)
    if not is_causal:
        pk = jax.nn.softmax(kf, axis=1)
        return jnp.einsum("bthd,bhde->bthe", pq, jnp.einsum("bthd,bthe->bhde", pk, vf)).astype(
            v.dtype
        )
    return jnp.einsum("bthd,bthde->bthe", pq, _prefix_softmax_scan(kf, vf)).astype(v.dtype)
