r"""Causal Transformer and GAU language models as Flax NNX modules, with KV-cache decoding.

The modules own parameters and call the pure attention of
:mod:`kexue_jax.attention.positional`; every position scheme (RoPE and its NTK / β-mixed / PI /
YaRN / dynamic tables, log-n scaling, ReRoPE and Leaky ReRoPE, local windows, ALiBi, T5, RoPE +
bias, absolute sinusoidal or learned embeddings) is chosen per call by a
:class:`~kexue_jax.attention.PositionScheme`, or per layer by a tuple of them (HWFA), so one set
of trained weights can be evaluated under every extrapolation trick.

* ``block="attention"``: multi-head (grouped-query) attention + MLP (GELU or SwiGLU), Pre-Norm
  $x + f(\mathrm{N}(x))$ or Post-Norm $\mathrm{N}(x + f(x))$.
* ``block="gau"``: the gated attention unit of FLASH / Su's GAU-α,
  $O = (U \odot A V)W_o$ with one softmax head whose $Q, K$ are scale-offsets of a shared $Z$;
  no separate feed-forward layer (a GAU layer is worth about two Transformer sub-layers).

:meth:`TransformerLM.decode` runs ``tn`` new tokens against a cache from :meth:`init_cache`;
decoding token by token reproduces the full-sequence logits for every scheme (tested).

References:
    Vaswani et al. 2017, arXiv:1706.03762; Xiong et al. 2020 (Pre-Norm), arXiv:2002.04745;
    Shazeer 2020 (SwiGLU), arXiv:2002.05202; Hua et al. 2022 (FLASH/GAU), arXiv:2202.10447;
    Su Jianlin, https://kexue.fm/archives/8934 (FLASH), https://kexue.fm/archives/9052 (GAU-α),
    https://kexue.fm/archives/9009 (Pre-Norm vs Post-Norm), https://kexue.fm/archives/9431 and
    the length-extrapolation series (9675, 9706, 9708, 9577, 9603).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from kexue_jax._src.checks import check_in, check_integer, check_positive, check_rank
from kexue_jax._src.typing import Array, Float, Int, PRNGKey
from kexue_jax.attention import synthesizer as S
from kexue_jax.attention.dot_product import attention_logits
from kexue_jax.attention.positional import (
    LayerCache,
    PositionScheme,
    cached_attention,
    init_layer_cache,
    positional_attention,
)
from kexue_jax.position.rope import apply_rope
from kexue_jax.position.sinusoidal import sinusoidal_embedding

BLOCKS = ("attention", "gau")
NORMS = ("pre", "post")
NORM_TYPES = ("layernorm", "rmsnorm")
MLPS = ("gelu", "swiglu")
ABSOLUTE = ("sinusoidal", "learned")
SYNTHESIZERS = ("dense", "random", "factorized_random", "random+vanilla")
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}

Schemes = PositionScheme | Sequence[PositionScheme]
ROPE = PositionScheme()  # the default scheme: plain RoPE
KVCache = tuple[LayerCache, ...]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TransformerConfig:
    """A causal LM. Defaults: a small byte-level Pre-Norm Transformer.

    Attributes:
        vocab_size: number of tokens (256 for bytes).
        d_model: width $d$.
        num_layers: number of blocks.
        num_heads: attention heads (``block="attention"``).
        num_kv_heads: key/value heads (grouped-query attention; ``None`` = ``num_heads``).
        head_dim: per-head width (``None`` = ``d_model // num_heads``).
        mlp: ``"gelu"`` ($W_2\\,\\mathrm{gelu}(W_1 x)$) or ``"swiglu"``.
        mlp_ratio: hidden width of the MLP over ``d_model``.
        block: ``"attention"`` or ``"gau"``.
        synthesizer: replace the query-key logits of ``block="attention"`` by Synthesizer logits
            (kexue.fm 7430): ``"dense"``, ``"random"``, ``"factorized_random"`` or
            ``"random+vanilla"`` (a learned softmax-weighted mixture with the dot-product logits,
            RoPE'd when the scheme has RoPE). Synthetic logits address absolute key positions
            ``< max_len``; no KV-cache decoding.
        synthesizer_hidden: hidden width of the dense Synthesizer.
        synthesizer_rank: rank $k$ of the factorized random Synthesizer.
        gau_expansion: GAU's $e / d$ (2 in FLASH and GAU-α).
        gau_key_size: GAU's $s$ (128).
        norm: ``"pre"`` or ``"post"``.
        norm_type: ``"layernorm"`` or ``"rmsnorm"``.
        absolute: ``None``, ``"sinusoidal"`` or ``"learned"`` absolute position embeddings added to
            the token embeddings.
        max_len: the longest sequence of learned absolute embeddings.
        rope_bias: learn RoPE + bias vectors $a, b$ for $q, k$ (kexue.fm 9577; zero at init).
        t5_buckets: number of T5 buckets of the shared learned bias table (0: no table). Use
            with ``PositionScheme(bias="t5", t5_buckets=...)``.
        dropout: dropout rate on the residual branches (needs a ``key`` when training).
        tie_embeddings: output logits $= h E^\\top$.
        dtype: compute dtype name (``"bfloat16"`` on GPU); parameters stay float32.
    """

    vocab_size: int = 256
    d_model: int = 256
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int | None = None
    head_dim: int | None = None
    mlp: str = "gelu"
    mlp_ratio: float = 4.0
    block: str = "attention"
    synthesizer: str | None = None
    synthesizer_hidden: int = 64
    synthesizer_rank: int = 8
    gau_expansion: int = 2
    gau_key_size: int = 128
    norm: str = "pre"
    norm_type: str = "layernorm"
    absolute: str | None = None
    max_len: int = 512
    rope_bias: bool = False
    t5_buckets: int = 0
    dropout: float = 0.0
    tie_embeddings: bool = True
    dtype: str = "float32"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "num_layers", "num_heads", "max_len",
                     "gau_expansion", "gau_key_size"):
            check_positive(name, getattr(self, name))
        check_positive("mlp_ratio", self.mlp_ratio)
        check_in("block", self.block, BLOCKS)
        check_in("norm", self.norm, NORMS)
        check_in("norm_type", self.norm_type, NORM_TYPES)
        check_in("mlp", self.mlp, MLPS)
        check_in("dtype", self.dtype, sorted(_DTYPES))
        if self.absolute is not None:
            check_in("absolute", self.absolute, ABSOLUTE)
        if self.synthesizer is not None:
            check_in("synthesizer", self.synthesizer, SYNTHESIZERS)
            if self.block != "attention":
                raise ValueError(f"synthesizer: needs block='attention', got block={self.block!r}")
            if self.rope_bias:
                raise ValueError("synthesizer: RoPE + bias needs dot-product logits; set rope_bias=False")
        if self.head_dim is None and self.d_model % self.num_heads:
            raise ValueError(
                f"d_model: {self.d_model} is not divisible by num_heads={self.num_heads}; "
                "set head_dim"
            )
        if self.num_heads % self.kv_heads:
            raise ValueError(
                f"num_kv_heads: {self.kv_heads} must divide num_heads={self.num_heads}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: expected a rate in [0, 1), got {self.dropout!r}")
        if self.t5_buckets < 0:
            raise ValueError(f"t5_buckets: expected >= 0, got {self.t5_buckets!r}")
        if self.absolute == "sinusoidal" and self.d_model % 2:
            raise ValueError(f"d_model: sinusoidal embeddings need an even width, got {self.d_model}")

    @property
    def kv_heads(self) -> int:
        return self.num_heads if self.num_kv_heads is None else self.num_kv_heads

    @property
    def head_width(self) -> int:
        return self.d_model // self.num_heads if self.head_dim is None else self.head_dim

    @property
    def compute_dtype(self):
        return _DTYPES[self.dtype]

    @property
    def attention_heads(self) -> int:
        """Query heads of one attention call (GAU has a single head)."""
        return 1 if self.block == "gau" else self.num_heads


def _dropout(x: Array, rate: float, key: PRNGKey | None) -> Array:
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0).astype(x.dtype)


def _norm(config: TransformerConfig, rngs: nnx.Rngs) -> nnx.Module:
    cls = nnx.LayerNorm if config.norm_type == "layernorm" else nnx.RMSNorm
    return cls(config.d_model, dtype=jnp.float32, param_dtype=jnp.float32, rngs=rngs)


def _dense(n_in: int, n_out: int, config: TransformerConfig, rngs: nnx.Rngs, **kw) -> nnx.Linear:
    return nnx.Linear(n_in, n_out, dtype=config.compute_dtype, param_dtype=jnp.float32,
                      rngs=rngs, **kw)


class Attention(nnx.Module):
    """Multi-head (grouped-query) causal self-attention under a position scheme."""

    def __init__(self, config: TransformerConfig, *, rngs: nnx.Rngs):
        d, h, hk, hd = config.d_model, config.num_heads, config.kv_heads, config.head_width
        self.shape = (h, hk, hd)
        self.wq = _dense(d, h * hd, config, rngs, use_bias=False)
        self.wk = _dense(d, hk * hd, config, rngs, use_bias=False)
        self.wv = _dense(d, hk * hd, config, rngs, use_bias=False)
        self.wo = _dense(h * hd, d, config, rngs, use_bias=False)
        if config.rope_bias:
            self.q_bias = nnx.Param(jnp.zeros((h, hd), jnp.float32))
            self.k_bias = nnx.Param(jnp.zeros((hk, hd), jnp.float32))
        else:
            self.q_bias = self.k_bias = None

    def qkv(self, x: Array) -> tuple[Array, Array, Array, None]:
        b, t, _ = x.shape
        h, hk, hd = self.shape
        return (
            self.wq(x).reshape(b, t, h, hd),
            self.wk(x).reshape(b, t, hk, hd),
            self.wv(x).reshape(b, t, hk, hd),
            None,
        )

    def biases(self) -> dict[str, Array | None]:
        if self.q_bias is None:
            return dict(q_bias=None, k_bias=None)
        return dict(q_bias=self.q_bias[...], k_bias=self.k_bias[...])

    def attend(self, x, *, scheme, t5_table, cache, start):
        """``(output [b, t, d], updated cache or None)`` of the positional attention on ``x``."""
        q, k, v, gate = self.qkv(x)
        new = None
        if cache is None:
            o = positional_attention(q, k, v, scheme=scheme, t5_table=t5_table, **self.biases())
        else:
            o, new = cached_attention(q, k, v, cache, start=start, scheme=scheme, t5_table=t5_table,
                                      **self.biases())
        return self.out(o.astype(x.dtype), gate), new

    def out(self, o: Array, gate: None = None) -> Array:
        del gate
        b, t = o.shape[:2]
        return self.wo(o.reshape(b, t, -1))


class GAU(nnx.Module):
    """GAU-α's gated attention unit: $U, V, Z$ by swish-Dense, one softmax head on $Z$'s scale-offsets."""

    def __init__(self, config: TransformerConfig, *, rngs: nnx.Rngs):
        d, e, s = config.d_model, config.gau_expansion * config.d_model, config.gau_key_size
        self.sizes = (e, s)
        self.wuv = _dense(d, 2 * e, config, rngs)
        self.wz = _dense(d, s, config, rngs)
        self.gamma = nnx.Param(
            jnp.ones((2, s), jnp.float32)
            + 0.02 * jax.random.normal(rngs.params(), (2, s), jnp.float32)
        )
        self.beta = nnx.Param(jnp.zeros((2, s), jnp.float32))
        self.wo = _dense(e, d, config, rngs)
        if config.rope_bias:
            self.q_bias = nnx.Param(jnp.zeros((1, s), jnp.float32))
            self.k_bias = nnx.Param(jnp.zeros((1, s), jnp.float32))
        else:
            self.q_bias = self.k_bias = None

    def qkv(self, x: Array) -> tuple[Array, Array, Array, Array]:
        e, _ = self.sizes
        uv = jax.nn.silu(self.wuv(x))
        z = jax.nn.silu(self.wz(x)).astype(jnp.float32)
        gamma, beta = self.gamma[...], self.beta[...]
        q = (z * gamma[0] + beta[0]).astype(x.dtype)[:, :, None]
        k = (z * gamma[1] + beta[1]).astype(x.dtype)[:, :, None]
        return q, k, uv[..., e:][:, :, None], uv[..., :e]

    biases = Attention.biases
    attend = Attention.attend

    def out(self, o: Array, gate: Array) -> Array:
        return self.wo(gate * o[:, :, 0])


class Synthesizer(nnx.Module):
    """Multi-head attention whose logits are synthesised (kexue.fm 7430; Tay et al. 2020).

    $\\mathrm{softmax}(B)\\,XW_v$ with $B$ from :mod:`kexue_jax.attention.synthesizer`, causal.
    """

    def __init__(self, config: TransformerConfig, *, rngs: nnx.Rngs):
        d, h, hd, n = config.d_model, config.num_heads, config.head_width, config.max_len
        self.kind, self.shape = config.synthesizer, (h, hd)
        self.wv = _dense(d, h * hd, config, rngs, use_bias=False)
        self.wo = _dense(h * hd, d, config, rngs, use_bias=False)
        key = rngs.params()
        if self.kind == "dense":
            arrays = S.init_dense_synthesizer(
                d_model=d, num_heads=h, hidden=config.synthesizer_hidden, max_length=n, key=key)
        elif self.kind == "factorized_random":
            arrays = S.init_factorized_random_synthesizer(
                num_heads=h, max_length=n, rank=config.synthesizer_rank, key=key)
        else:
            arrays = S.init_random_synthesizer(num_heads=h, max_length=n, key=key)
        self.synth = nnx.Dict({name: nnx.Param(a) for name, a in arrays.items()})
        if self.kind == "random+vanilla":
            self.wq = _dense(d, h * hd, config, rngs, use_bias=False)
            self.wk = _dense(d, h * hd, config, rngs, use_bias=False)
            self.mixture = nnx.Param(jnp.zeros((2,), jnp.float32))
        else:
            self.wq = self.wk = self.mixture = None

    def _logits(self, x: Array, scheme: PositionScheme) -> Array:
        t, p = x.shape[1], {name: a[...] for name, a in self.synth.items()}
        if self.kind == "dense":
            return S.dense_synthesizer_logits(x.astype(jnp.float32), **p)
        if self.kind == "factorized_random":
            return S.factorized_random_synthesizer_logits(p["r1"], p["r2"], t)
        logits = S.random_synthesizer_logits(p["r"], t)
        if self.kind == "random":
            return logits
        b = x.shape[0]
        h, hd = self.shape
        q = self.wq(x).reshape(b, t, h, hd)
        k = self.wk(x).reshape(b, t, h, hd)
        if scheme.rope is not None:
            inv_freq, factor = scheme.encoding(hd, t)
            q = apply_rope(q, None, inv_freq, attention_factor=factor)
            k = apply_rope(k, None, inv_freq, attention_factor=factor)
        return S.mixture_logits([logits, attention_logits(q, k)], self.mixture[...])

    def attend(self, x, *, scheme, t5_table, cache, start):
        del t5_table, start
        if cache is not None:
            raise ValueError("cache: Synthesizer blocks have no KV-cache decoding; call the model on the prefix")
        if (scheme.rerope_window, scheme.bias, scheme.local_window) != (None, None, None) or scheme.logn:
            raise ValueError(
                f"scheme: a Synthesizer takes plain RoPE tables only (no ReRoPE, bias, window or log n); "
                f"got {scheme}"
            )
        b, t, _ = x.shape
        h, hd = self.shape
        v = self.wv(x).reshape(b, t, h, hd)
        o = S.synthesizer_attention(self._logits(x, scheme), v, is_causal=True)
        return self.wo(o.reshape(b, t, -1).astype(x.dtype)), None


class Block(nnx.Module):
    """One layer: attention (or GAU) and, for ``block="attention"``, an MLP; Pre- or Post-Norm."""

    def __init__(self, config: TransformerConfig, *, rngs: nnx.Rngs):
        self.config = config
        if config.synthesizer is not None:
            self.mixer = Synthesizer(config, rngs=rngs)
        else:
            self.mixer = Attention(config, rngs=rngs) if config.block == "attention" else GAU(config, rngs=rngs)
        self.norm1 = _norm(config, rngs)
        if config.block == "attention":
            hidden = int(config.mlp_ratio * config.d_model)
            self.w_in = _dense(config.d_model, hidden * (2 if config.mlp == "swiglu" else 1), config, rngs)
            self.w_out = _dense(hidden, config.d_model, config, rngs)
            self.norm2 = _norm(config, rngs)
        else:
            self.w_in = self.w_out = self.norm2 = None

    def _mlp(self, x: Array) -> Array:
        h = self.w_in(x)
        if self.config.mlp == "swiglu":
            a, g = jnp.split(h, 2, axis=-1)
            h = jax.nn.silu(g) * a
        else:
            h = jax.nn.gelu(h)
        return self.w_out(h)

    def _residual(self, x, norm, fn, key):
        if self.config.norm == "pre":
            y = fn(norm(x).astype(x.dtype))
            return x + _dropout(y, self.config.dropout, key)
        y = fn(x)
        return norm(x + _dropout(y, self.config.dropout, key)).astype(x.dtype)

    def __call__(self, x, *, scheme, t5_table, cache=None, start=None, key=None):
        keys = (None, None) if key is None else tuple(jax.random.split(key))
        new_cache = []

        def mix(h):
            o, c = self.mixer.attend(h, scheme=scheme, t5_table=t5_table, cache=cache, start=start)
            new_cache.append(c)
            return o

        x = self._residual(x, self.norm1, mix, keys[0])
        if self.w_in is not None:
            x = self._residual(x, self.norm2, self._mlp, keys[1])
        return x, new_cache[0]


class TransformerLM(nnx.Module):
    """A causal language model: ``tokens [b, t]`` → float32 logits ``[b, t, vocab]``.

    Args:
        config: the :class:`TransformerConfig`.
        rngs: NNX random streams for the initialisers.

    Example:
        >>> from flax import nnx
        >>> cfg = TransformerConfig(d_model=32, num_layers=2, num_heads=2)
        >>> lm = TransformerLM(cfg, rngs=nnx.Rngs(0))
        >>> lm(jnp.zeros((1, 5), jnp.int32)).shape
        (1, 5, 256)
    """

    def __init__(self, config: TransformerConfig, *, rngs: nnx.Rngs):
        self.config = config
        init = nnx.initializers.normal(stddev=0.02)
        self.embed = nnx.Embed(config.vocab_size, config.d_model, param_dtype=jnp.float32,
                               embedding_init=init, rngs=rngs)
        self.positions = (
            nnx.Param(init(rngs.params(), (config.max_len, config.d_model), jnp.float32))
            if config.absolute == "learned" else None
        )
        self.t5_table = (
            nnx.Param(jnp.zeros((config.t5_buckets, config.attention_heads), jnp.float32))
            if config.t5_buckets else None
        )
        self.blocks = nnx.List([Block(config, rngs=rngs) for _ in range(config.num_layers)])
        self.final_norm = _norm(config, rngs) if config.norm == "pre" else None
        self.head = None if config.tie_embeddings else _dense(
            config.d_model, config.vocab_size, config, rngs, use_bias=False
        )

    # -- validation -------------------------------------------------------------------------------
    def _schemes(self, scheme: Schemes) -> tuple[PositionScheme, ...]:
        n = self.config.num_layers
        schemes = (scheme,) * n if isinstance(scheme, PositionScheme) else tuple(scheme)
        if len(schemes) != n or not all(isinstance(s, PositionScheme) for s in schemes):
            raise ValueError(
                f"scheme: expected a PositionScheme or a sequence of {n} (one per layer), got {scheme!r}"
            )
        for s in schemes:
            if s.bias == "t5" and self.t5_table is None:
                raise ValueError("scheme: bias='t5' needs a model built with t5_buckets > 0")
            if s.bias == "t5" and s.t5_buckets != self.config.t5_buckets:
                raise ValueError(
                    f"scheme: t5_buckets={s.t5_buckets} differs from the model's {self.config.t5_buckets}"
                )
            if self.config.rope_bias and s.rope is None:
                raise ValueError("scheme: a rope_bias model needs a RoPE table (scheme.rope is None)")
        return schemes

    def _check_tokens(self, tokens: Array) -> None:
        check_rank("tokens", tokens, 2)
        check_integer("tokens", tokens)

    def _check_length(self, end: int) -> None:
        if self.config.absolute == "learned" and end > self.config.max_len:
            raise ValueError(
                f"tokens: position {end - 1} is beyond the {self.config.max_len} learned absolute "
                "positions (max_len); learned embeddings cannot extrapolate"
            )

    # -- forward ----------------------------------------------------------------------------------
    def _embed(self, tokens: Array, positions: Array) -> Array:
        x = self.embed(tokens).astype(jnp.float32)
        if self.config.absolute == "sinusoidal":
            x = x + sinusoidal_embedding(positions, self.config.d_model)[None]
        elif self.config.absolute == "learned":
            x = x + jnp.take(self.positions[...], positions, axis=0)[None]
        return x.astype(self.config.compute_dtype)

    def _logits(self, x: Array) -> Array:
        if self.final_norm is not None:
            x = self.final_norm(x)
        x = x.astype(jnp.float32)
        if self.head is None:
            return x @ self.embed.embedding[...].T
        return self.head(x).astype(jnp.float32)

    def _table(self):
        return None if self.t5_table is None else self.t5_table[...]

    def __call__(
        self,
        tokens: Int[Array, "b t"],
        *,
        scheme: Schemes = ROPE,
        key: PRNGKey | None = None,
    ) -> Float[Array, "b t vocab"]:
        """Logits of every next token (positions ``0 .. t-1``); ``key`` turns dropout on."""
        self._check_tokens(tokens)
        schemes = self._schemes(scheme)
        t = tokens.shape[1]
        self._check_length(t)
        x = self._embed(tokens, jnp.arange(t))
        keys = [None] * len(self.blocks) if key is None else list(jax.random.split(key, len(self.blocks)))
        for block, s, k in zip(self.blocks, schemes, keys, strict=True):
            x, _ = block(x, scheme=s, t5_table=self._table() if s.bias == "t5" else None, key=k)
        return self._logits(x)

    def init_cache(self, batch: int, max_len: int) -> KVCache:
        """A zero cache of ``max_len`` positions for every layer (in the compute dtype)."""
        c = self.config
        if c.block == "gau":
            dims = (1, c.gau_key_size, c.gau_expansion * c.d_model)
        else:
            dims = (c.kv_heads, c.head_width, c.head_width)
        return tuple(
            init_layer_cache(batch, max_len, dims[0], dims[1], dims[2], dtype=c.compute_dtype)
            for _ in range(c.num_layers)
        )

    def decode(
        self,
        tokens: Int[Array, "b tn"],
        cache: KVCache,
        *,
        start: int | Array,
        scheme: Schemes = ROPE,
    ) -> tuple[Float[Array, "b tn vocab"], KVCache]:
        """Logits of ``tn`` new tokens at positions ``start ..`` and the updated cache.

        A prompt can be prefilled in one call (``tn > 1``) and continued one token at a time;
        the result equals :meth:`__call__` on the whole prefix.

        Raises:
            ValueError: wrong token rank or dtype, a cache of another model, or (when ``start`` is
                a concrete number) ``start + tn`` beyond the cache's length.
        """
        self._check_tokens(tokens)
        schemes = self._schemes(scheme)
        if not isinstance(cache, tuple) or len(cache) != len(self.blocks):
            raise ValueError(f"cache: expected {len(self.blocks)} LayerCache entries from init_cache")
        tn = tokens.shape[1]
        max_len = cache[0].k.shape[1]
        if not isinstance(start, jax.core.Tracer):
            s0 = int(start)
            if s0 < 0 or s0 + tn > max_len:
                raise ValueError(
                    f"start: positions {s0}..{s0 + tn - 1} do not fit the cache of {max_len} slots"
                )
            self._check_length(s0 + tn)
        start = jnp.asarray(start, jnp.int32)
        x = self._embed(tokens, start + jnp.arange(tn))
        new = []
        for block, s, c in zip(self.blocks, schemes, cache, strict=True):
            x, c = block(x, scheme=s, t5_table=self._table() if s.bias == "t5" else None,
                         cache=c, start=start)
            new.append(c)
        return self._logits(x), tuple(new)

    def generate(
        self,
        prompt: Int[Array, "b t0"],
        num_tokens: int,
        *,
        key: PRNGKey,
        temperature: float = 1.0,
        scheme: Schemes = ROPE,
    ) -> Int[Array, "b t"]:
        """Continue ``prompt`` by ``num_tokens`` sampled tokens with the KV cache (one ``lax.scan``).

        Token $m+1$ is drawn from $\\mathrm{softmax}(\\ell_m / \\tau)$; ``temperature=0`` takes the
        argmax (greedy decoding).

        Returns:
            int32 ``[b, t0 + num_tokens]``: the prompt followed by the new tokens.
        """
        self._check_tokens(prompt)
        if not isinstance(num_tokens, int) or num_tokens < 1:
            raise ValueError(f"num_tokens: expected an int >= 1, got {num_tokens!r}")
        if temperature < 0:
            raise ValueError(f"temperature: expected >= 0, got {temperature!r}")
        b, t0 = prompt.shape
        prompt = prompt.astype(jnp.int32)
        cache = self.init_cache(b, t0 + num_tokens)
        logits, cache = self.decode(prompt, cache, start=0, scheme=scheme)

        def pick(last_logits, k):
            if temperature == 0:
                return jnp.argmax(last_logits, axis=-1).astype(jnp.int32)
            return jax.random.categorical(k, last_logits / temperature, axis=-1).astype(jnp.int32)

        keys = jax.random.split(key, num_tokens)
        first = pick(logits[:, -1], keys[0])

        def step(carry, inputs):
            token, cache = carry
            position, k = inputs
            out, cache = self.decode(token[:, None], cache, start=position, scheme=scheme)
            nxt = pick(out[:, -1], k)
            return (nxt, cache), token

        positions = t0 + jnp.arange(num_tokens - 1, dtype=jnp.int32)
        (last, _), tokens = jax.lax.scan(step, (first, cache), (positions, keys[1:]))
        new = jnp.concatenate([tokens.T, last[:, None]], axis=1)
        return jnp.concatenate([prompt, new], axis=1)


__all__ = [
    "BLOCKS",
    "GAU",
    "SYNTHESIZERS",
    "Attention",
    "Block",
    "KVCache",
    "Synthesizer",
    "TransformerConfig",
    "TransformerLM",
]
