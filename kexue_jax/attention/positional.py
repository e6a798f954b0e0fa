r"""Causal softmax attention under a position scheme, for full sequences and for KV-cache decoding.

A :class:`PositionScheme` gathers the knobs of Su's length-extrapolation articles as hashable data:
a RoPE frequency table from :data:`~kexue_jax.position.POSITIONS` (plain, PI, NTK old/aware/fixed/
mixed, dynamic NTK, YaRN) with its scale $k$, log-n query scaling
$q_m \mapsto \max(1, \log_L(m+1))\,q_m$, ReRoPE / Leaky ReRoPE, a causal local window (each query
sees the last $w$ tokens, itself included: the "super strong baseline" of 9431), an additive ALiBi or
T5 bias, and RoPE + q/k bias (9577). Most of these are inference-time choices: the same trained
weights are evaluated under several schemes, which is how the extrapolation tables are made.

Two entry points share every rule:

* :func:`positional_attention` — the whole causal sequence at once (training, evaluation);
* :func:`cached_attention` — ``t_new`` new tokens against a :class:`LayerCache` (prefill and
  decoding). Keys are cached **after** RoPE when the rotation of a key does not depend on later
  tokens, and **before** RoPE (re-rotated at every step) for ReRoPE, whose key rotation depends on
  the query's distance, and for dynamic NTK, whose frequency table follows the current length.

Both return exactly what the other computes: decoding token $m$ from a cache equals evaluating the
prefix $x_{0..m}$ in full (for static schemes this is also the full sequence's row $m$, by
causality). The tests check this for every scheme.

References:
    https://kexue.fm/archives/9431 (local window, log n), https://kexue.fm/archives/9675 (NTK),
    https://kexue.fm/archives/9706 (β-mixed), https://kexue.fm/archives/9708 (ReRoPE),
    https://kexue.fm/archives/9577 (RoPE + bias), https://kexue.fm/archives/8823 (log n);
    Press et al. 2022 (ALiBi); Raffel et al. 2020 (T5).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from kexue_jax._src.checks import check_floating, check_in, check_positive, check_rank, check_shape
from kexue_jax._src.typing import Array, ArrayLike, Float
from kexue_jax.attention._validate import check_qkv, repeat_kv_heads
from kexue_jax.attention.dot_product import attention_from_logits, dot_product_attention
from kexue_jax.attention.rerope_flash import rerope_flash_attention
from kexue_jax.position import frequencies as F
from kexue_jax.position.alibi import alibi_bias
from kexue_jax.position.logn import logn_scale
from kexue_jax.position.registry import POSITIONS
from kexue_jax.position.rerope import rerope_decode_logits, rerope_logits
from kexue_jax.position.rope import apply_rope
from kexue_jax.position.t5 import t5_bias

BIASES = ("alibi", "t5")
REROPE_KERNELS = ("xla", "pallas")
T5_MAX_DISTANCE = 128


@dataclasses.dataclass(frozen=True, kw_only=True)
class PositionScheme:
    """How causal attention sees positions. Frozen and hashable: a static argument of ``jit``.

    Attributes:
        rope: a key of :data:`~kexue_jax.position.POSITIONS` (``"rope"``, ``"linear"`` (PI),
            ``"ntk_old"``, ``"ntk_aware"``, ``"ntk_fixed"``, ``"ntk_mixed"``, ``"dynamic_ntk"``,
            ``"yarn"``, ...) or ``None`` for no rotation (absolute or no positions, ALiBi, T5).
        rope_scale: the extension factor $k$ of the table (1: plain RoPE for every table).
        theta: the RoPE base.
        training_length: $L$, the training length: the base of log-n scaling and of dynamic NTK.
        logn: multiply query $m$ by $\\max(1, \\log(m+1)/\\log L)$ (Su's "log n†", added to a
            model at inference).
        logn_clip: with ``logn``, ``False`` drops the $\\max(1, \\cdot)$: the factor
            $\\log(m+1)/\\log L$ is below 1 before position $L - 1$, so training with it differs
            from training without it (Su's "logn" models, trained with the scaling, 9706/9708).
        rerope_window: ReRoPE's window $w$: relative positions $r \\ge w$ are clipped to $w$
            (``None``: off). Needs ``rope``.
        leaky_scale: Leaky ReRoPE's $k$: $r \\ge w$ maps to $w + (r - w)/k$. Needs
            ``rerope_window``.
        rerope_kernel: how whole sequences are attended under ReRoPE: ``"xla"`` (two logit
            matrices merged by the window, Su's form) or ``"pallas"``
            (:func:`~kexue_jax.attention.rerope_flash_attention`: fused, $O(T)$ memory; no
            ``bias``, no ``local_window``). Decoding one token uses the single-matrix path either way.
        local_window: query $m$ sees keys $m - w < n \\le m$ (``None``: all earlier keys).
        bias: ``None``, ``"alibi"`` ($-\\lambda_h (m - n)$) or ``"t5"`` (learned bucketed scalars;
            the model owns the ``[num_buckets, heads]`` table).
        t5_buckets: number of T5 buckets (causal bucketing, max distance 128).

    Example:
        >>> ntk = PositionScheme(rope="ntk_aware", rope_scale=8.0, logn=True, training_length=512)
        >>> ntk.rotated_cache
        True
        >>> PositionScheme(rerope_window=128, logn=True).rotated_cache
        False
    """

    rope: str | None = "rope"
    rope_scale: float = 1.0
    theta: float = 10000.0
    training_length: int = 512
    logn: bool = False
    logn_clip: bool = True
    rerope_window: int | None = None
    leaky_scale: float | None = None
    rerope_kernel: str = "xla"
    local_window: int | None = None
    bias: str | None = None
    t5_buckets: int = 32

    def __post_init__(self) -> None:
        if self.rope is not None:
            check_in("rope", self.rope, sorted(POSITIONS))
        check_positive("rope_scale", self.rope_scale)
        check_positive("theta", self.theta)
        if self.training_length < 2:
            raise ValueError(f"training_length: expected an int >= 2, got {self.training_length!r}")
        if self.rerope_window is not None:
            if self.rope is None:
                raise ValueError("rerope_window: ReRoPE needs a RoPE table; got rope=None")
            check_positive("rerope_window", self.rerope_window)
        if self.leaky_scale is not None:
            if self.rerope_window is None:
                raise ValueError("leaky_scale: Leaky ReRoPE needs rerope_window; got None")
            check_positive("leaky_scale", self.leaky_scale)
        if self.local_window is not None:
            check_positive("local_window", self.local_window)
        if self.bias is not None:
            check_in("bias", self.bias, BIASES)
        check_in("rerope_kernel", self.rerope_kernel, REROPE_KERNELS)
        if self.rerope_kernel == "pallas" and (self.bias is not None or self.local_window is not None):
            raise ValueError(
                "rerope_kernel: the fused ReRoPE kernel takes no additive bias or local window; got "
                f"bias={self.bias!r}, local_window={self.local_window!r} (use rerope_kernel='xla')"
            )
        check_positive("t5_buckets", self.t5_buckets)

    @property
    def rotated_cache(self) -> bool:
        """Whether keys may be cached after RoPE (their rotation never changes later)."""
        return self.rope is not None and self.rerope_window is None and self.rope != "dynamic_ntk"

    def encoding(self, head_dim: int, seq_len: ArrayLike | None = None):
        """``(inv_freq, attention_factor)`` of this scheme; ``seq_len`` is used by dynamic NTK."""
        if self.rope == "dynamic_ntk":
            n = self.training_length if seq_len is None else seq_len
            table = F.dynamic_ntk_inv_freq(
                head_dim, n, theta=self.theta, training_length=self.training_length,
                scale=self.rope_scale,
            )
            return table, 1.0
        enc = POSITIONS[self.rope](head_dim, scale=self.rope_scale, theta=self.theta)
        return enc.inv_freq, enc.attention_factor


def hfwa_schemes(num_layers: int, *, window: int, training_length: int) -> tuple[PositionScheme, ...]:
    """HWFA of kexue.fm 9603: window attention with RoPE below, one full layer without RoPE on top.

    Layers ``0 .. L-2`` use RoPE with a causal window ``window``; the last layer attends to
    everything with no position encoding and log-n scaling (unclipped: trained with it). Su picks $w$ with
    $(w - 1)(L - 1) + 1 = \\alpha N$, $\\alpha \\le 3/4$.

    References:
        https://kexue.fm/archives/9603.
    """
    check_positive("num_layers", num_layers)
    check_positive("window", window)
    low = PositionScheme(rope="rope", local_window=window, training_length=training_length)
    top = PositionScheme(rope=None, logn=True, logn_clip=False, training_length=training_length)
    return (low,) * (num_layers - 1) + (top,)


class LayerCache(NamedTuple):
    """One attention layer's cache: ``k`` ``[b, T, hk, d]`` and ``v`` ``[b, T, hk, dv]``.

    Keys are stored after RoPE when ``scheme.rotated_cache`` holds, before RoPE otherwise (with the
    RoPE + bias key bias already added in both cases). Slot ``n`` holds position ``n``.
    """

    k: Array
    v: Array


def init_layer_cache(
    batch: int, max_len: int, num_kv_heads: int, head_dim: int, value_dim: int | None = None,
    *, dtype=jnp.float32,
) -> LayerCache:
    """A zero :class:`LayerCache` for ``max_len`` positions."""
    for name, value in (("batch", batch), ("max_len", max_len), ("num_kv_heads", num_kv_heads),
                        ("head_dim", head_dim)):
        check_positive(name, value)
    dv = head_dim if value_dim is None else value_dim
    return LayerCache(
        jnp.zeros((batch, max_len, num_kv_heads, head_dim), dtype),
        jnp.zeros((batch, max_len, num_kv_heads, dv), dtype),
    )


def _check_bias_args(scheme: PositionScheme, h: int, q_bias, k_bias, t5_table) -> None:
    if (q_bias is None) != (k_bias is None):
        raise ValueError(
            "q_bias, k_bias: RoPE + bias takes both or neither; got "
            f"q_bias {None if q_bias is None else jnp.shape(q_bias)}, "
            f"k_bias {None if k_bias is None else jnp.shape(k_bias)}"
        )
    if q_bias is not None and scheme.rope is None:
        raise ValueError("q_bias: RoPE + bias needs a RoPE table (scheme.rope is None)")
    if scheme.bias == "t5":
        if t5_table is None:
            raise ValueError("t5_table: scheme.bias='t5' needs the [t5_buckets, heads] table")
        check_shape("t5_table", t5_table, [scheme.t5_buckets, h])
    elif t5_table is not None:
        raise ValueError(f"t5_table: given, but scheme.bias is {scheme.bias!r}")


def _add_bias(x: Array, bias: Array | None) -> Array:
    if bias is None:
        return x
    return (x.astype(jnp.float32) + jnp.asarray(bias, jnp.float32)).astype(x.dtype)


def _logn(q: Array, q_positions: Array, scheme: PositionScheme) -> Array:
    if not scheme.logn:
        return q
    if scheme.logn_clip:
        factor = logn_scale(q_positions + 1, training_length=scheme.training_length)
    else:
        factor = jnp.log((q_positions + 1).astype(jnp.float32)) / math.log(scheme.training_length)
    return (q.astype(jnp.float32) * factor[..., None, None]).astype(q.dtype)


def _additive_bias(scheme, h, q_positions, k_positions, t5_table):
    tq, tk = q_positions.shape[-1], k_positions.shape[-1]
    if scheme.bias == "alibi":
        return alibi_bias(h, tq, tk, q_positions=q_positions, k_positions=k_positions)
    if scheme.bias == "t5":
        return t5_bias(
            t5_table, tq, tk, bidirectional=False, num_buckets=scheme.t5_buckets,
            max_distance=T5_MAX_DISTANCE, q_positions=q_positions, k_positions=k_positions,
        )
    return None


def _visible(q_positions: Array, k_positions: Array, scheme: PositionScheme) -> Array:
    """``[1, 1, tq, tk]`` boolean: causal, and inside the local window if there is one."""
    rel = q_positions[:, None] - k_positions[None, :]
    ok = rel >= 0
    if scheme.local_window is not None:
        ok = ok & (rel < scheme.local_window)
    return ok[None, None]


def _attend(q, k, v, *, scheme, q_positions, k_positions, t5_table, seq_len, full):
    """Softmax attention of un-rotated queries ``q [b, tq, h, d]`` against the keys ``k``.

    The caller has rotated ``k`` for every RoPE scheme but ReRoPE, whose logits rotate each
    query-key pair by its clipped distance (and so take raw keys); this function applies log n,
    rotates ``q`` and adds the ALiBi / T5 bias. Positions are ``[tq]`` and ``[tk]`` int32; ``full``
    means both are ``0..t-1`` (the causal / window structure is then passed as flags, not a mask).
    """
    h, d = q.shape[2], q.shape[3]
    if full:
        # Positions 0..t-1 on both sides: the structural causal / window mask, which the fused
        # (cuDNN) kernel takes, instead of a boolean mask array, which it does not.
        mask = None
        structure = dict(is_causal=True, local_window=None if scheme.local_window is None
                         else (scheme.local_window - 1, 0))
    else:
        mask = _visible(q_positions, k_positions, scheme)
        structure = {}
    bias = _additive_bias(scheme, h, q_positions, k_positions, t5_table)
    q = _logn(q, q_positions, scheme)
    if scheme.rope is None:
        return dot_product_attention(q, k, v, bias=bias, mask=mask, **structure)
    inv_freq, factor = scheme.encoding(d, seq_len)
    if scheme.rerope_window is not None:
        if full and scheme.rerope_kernel == "pallas":  # grouped k/v heads go in as they are
            return rerope_flash_attention(q, k, v, inv_freq, window=scheme.rerope_window,
                                          scale=scheme.leaky_scale, causal=True)
        kh = repeat_kv_heads(k, h)
        if q.shape[1] == 1:
            logits = rerope_decode_logits(
                q, kh, inv_freq, q_position=q_positions[0], k_positions=k_positions,
                window=scheme.rerope_window, scale=scheme.leaky_scale,
            )
        else:
            logits = rerope_logits(
                q, kh, inv_freq, window=scheme.rerope_window, scale=scheme.leaky_scale,
                q_positions=q_positions, k_positions=k_positions,
            )
        if bias is not None:
            logits = logits + bias
        return attention_from_logits(logits, v, mask=mask, **structure)
    q = apply_rope(q, q_positions, inv_freq, attention_factor=factor)
    return dot_product_attention(q, k, v, bias=bias, mask=mask, **structure)


def _rotate_keys(k, k_positions, scheme, seq_len):
    inv_freq, factor = scheme.encoding(k.shape[-1], seq_len)
    return apply_rope(k, k_positions, inv_freq, attention_factor=factor)


def positional_attention(
    q: Float[Array, "b t h d"],
    k: Float[Array, "b t hk d"],
    v: Float[Array, "b t hk dv"],
    *,
    scheme: PositionScheme,
    q_bias: Float[Array, "h d"] | None = None,
    k_bias: Float[Array, "hk d"] | None = None,
    t5_table: Float[Array, "buckets h"] | None = None,
) -> Float[Array, "b t h dv"]:
    r"""Causal softmax attention of a whole sequence (positions $0..t-1$) under ``scheme``.

    $\mathrm{out}_m = \sum_{n \le m,\, m - n < w} \mathrm{softmax}_n\big(s_m\,
    \tilde q_m^\top \tilde k_n/\sqrt d + B_{mn}\big)\,v_n$ with $\tilde q, \tilde k$ the rotated
    (ReRoPE: relative-clipped) queries and keys plus their RoPE + bias vectors, $s_m$ the log-n
    factor and $B$ the ALiBi/T5 bias. Dispatches to :func:`~kexue_jax.attention.dot_product_attention`
    (cuDNN when it can take the call) except under ReRoPE, whose two logit matrices go through
    :func:`~kexue_jax.attention.attention_from_logits`.

    Args:
        q: un-rotated queries ``[b, t, h, d]``.
        k: un-rotated keys ``[b, t, hk, d]`` (``hk`` divides ``h``).
        v: values ``[b, t, hk, dv]``.
        scheme: the :class:`PositionScheme` (static).
        q_bias: RoPE + bias query vector ``[h, d]`` (or ``[d]``), with ``k_bias``.
        k_bias: RoPE + bias key vector ``[hk, d]`` (or ``[d]``).
        t5_table: ``[scheme.t5_buckets, h]`` when ``scheme.bias == "t5"``.

    Returns:
        ``[b, t, h, dv]`` in ``v``'s dtype.
    """
    return _positional_attention(q, k, v, q_bias, k_bias, t5_table, scheme=scheme)


@functools.partial(jax.jit, static_argnames="scheme")
def _positional_attention(q, k, v, q_bias, k_bias, t5_table, *, scheme):
    dims = check_qkv(q, k, v)
    if dims["tq"] != dims["tk"]:
        raise ValueError(f"k: self-attention needs tk == tq; got q {q.shape}, k {k.shape}")
    _check_bias_args(scheme, dims["h"], q_bias, k_bias, t5_table)
    t = dims["tq"]
    positions = jnp.arange(t, dtype=jnp.int32)
    q, k = _add_bias(q, q_bias), _add_bias(k, k_bias)
    if scheme.rope is not None and scheme.rerope_window is None:
        k = _rotate_keys(k, positions, scheme, t)
    return _attend(
        q, k, v, scheme=scheme, q_positions=positions, k_positions=positions,
        t5_table=t5_table, seq_len=t, full=True,
    )


def cached_attention(
    q: Float[Array, "b tn h d"],
    k: Float[Array, "b tn hk d"],
    v: Float[Array, "b tn hk dv"],
    cache: LayerCache,
    *,
    start: ArrayLike,
    scheme: PositionScheme,
    q_bias: Float[Array, "h d"] | None = None,
    k_bias: Float[Array, "hk d"] | None = None,
    t5_table: Float[Array, "buckets h"] | None = None,
) -> tuple[Float[Array, "b tn h dv"], LayerCache]:
    r"""Attention of ``tn`` new tokens at positions ``start .. start + tn - 1`` through a KV cache.

    Writes the new keys (rotated or not, see :class:`LayerCache`) and values into the cache slots
    ``start .. start + tn - 1`` and attends over slots ``<= `` each query's position. A single new
    token under ReRoPE uses the one-matrix decode path
    (:func:`~kexue_jax.position.rerope_decode_logits`); dynamic NTK uses the table of the current
    length ``start + tn``.

    Args:
        q, k, v: the new tokens' un-rotated queries ``[b, tn, h, d]``, keys ``[b, tn, hk, d]`` and
            values ``[b, tn, hk, dv]``.
        cache: the layer's :class:`LayerCache` with ``T >= start + tn`` slots, filled below
            ``start``.
        start: int32 scalar, the position of the first new token (may be traced; the caller
            keeps ``start + tn <= T``: ``dynamic_update_slice`` would clamp an overflowing write).
        scheme, q_bias, k_bias, t5_table: as in :func:`positional_attention`.

    Returns:
        ``(out [b, tn, h, dv], updated cache)``.
    """
    return _cached_attention(q, k, v, cache, start, q_bias, k_bias, t5_table, scheme=scheme)


@functools.partial(jax.jit, static_argnames="scheme")
def _cached_attention(q, k, v, cache, start, q_bias, k_bias, t5_table, *, scheme):
    dims = check_qkv(q, k, v)
    if dims["tq"] != dims["tk"]:
        raise ValueError(f"k: new keys must match the new queries; got q {q.shape}, k {k.shape}")
    b, tn, hk = dims["b"], dims["tq"], k.shape[2]
    check_rank("cache.k", cache.k, 4)
    check_shape("cache.k", cache.k, [b, None, hk, k.shape[3]])
    check_shape("cache.v", cache.v, [b, cache.k.shape[1], hk, v.shape[3]])
    check_floating("cache.k", cache.k)
    big_t = cache.k.shape[1]
    if tn > big_t:
        raise ValueError(f"cache: {tn} new tokens do not fit {big_t} slots (cache.k {cache.k.shape})")
    _check_bias_args(scheme, dims["h"], q_bias, k_bias, t5_table)
    start = jnp.asarray(start, jnp.int32)
    check_rank("start", start, 0)
    q_positions = start + jnp.arange(tn, dtype=jnp.int32)
    k_positions = jnp.arange(big_t, dtype=jnp.int32)
    seq_len = start + tn
    q, k = _add_bias(q, q_bias), _add_bias(k, k_bias)
    if scheme.rotated_cache:
        k = _rotate_keys(k, q_positions, scheme, seq_len)
    zero = jnp.zeros((), jnp.int32)
    new_k = jax.lax.dynamic_update_slice(cache.k, k.astype(cache.k.dtype), (zero, start, zero, zero))
    new_v = jax.lax.dynamic_update_slice(cache.v, v.astype(cache.v.dtype), (zero, start, zero, zero))
    keys = new_k
    if scheme.rope is not None and not scheme.rotated_cache and scheme.rerope_window is None:
        keys = _rotate_keys(new_k, k_positions, scheme, seq_len)  # dynamic NTK: today's table
    out = _attend(
        q, keys.astype(q.dtype), new_v.astype(v.dtype), scheme=scheme, q_positions=q_positions,
        k_positions=k_positions, t5_table=t5_table, seq_len=seq_len, full=False,
    )
    return out, LayerCache(new_k, new_v)


__all__ = [
    "BIASES",
    "LayerCache",
    "PositionScheme",
    "cached_attention",
    "hfwa_schemes",
    "init_layer_cache",
    "positional_attention",
]
