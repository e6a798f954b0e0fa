r"""Synthesizer: attention weights synthesised without query-key dot products.

The logits $B$ replace $QK^\top/\sqrt{d}$ and the output is $\mathrm{softmax}(B)\,G(X)$ with
$G(X) = XW_v$ (here: the values ``v``). Variants, all per head:

* **Dense**: $B = \mathrm{relu}(XW_1 + b_1)W_2 + b_2$, $W_2 \in \mathbb R^{d_h\times n}$: row $i$
  depends on $x_i$ alone (and addresses absolute key positions $1..n$).
* **Random**: $B = R \in \mathbb R^{n\times n}$, input independent (trainable or fixed).
* **Factorized dense**: $B_1 \in \mathbb R^{n\times a}$, $B_2 \in \mathbb R^{n\times b}$ from two
  dense heads, $ab = n$, $B = \tilde B_1 \odot \tilde B_2$. We read the tiling as the Kronecker
  layout $\tilde B_1[i, pb + r] = B_1[i, p]$, $\tilde B_2[i, pb + r] = B_2[i, r]$, so that every pair
  of factor columns appears exactly once (the paper's tiling is ambiguous, as Su notes in 7430).
* **Factorized random**: $B = R_1R_2^\top$, $R_1, R_2 \in \mathbb R^{n\times k}$ (rank $\le k$).
* **Mixture**: $B = \sum_i \alpha_i B_i$ with $\alpha = \mathrm{softmax}(w)$ (learnable), e.g.
  Random + Vanilla.

Functions take parameter arrays explicitly (pytrees of float32 arrays made by the ``init_*``
helpers); maximum length $n$ is fixed by the parameters and sequences of length $t \le n$ use the
leading $t\times t$ block.

References:
    https://kexue.fm/archives/7430 (Google新作Synthesizer：我们还不够了解自注意力).
    Tay et al. 2020, "Synthesizer: Rethinking Self-Attention in Transformer Models", arXiv:2005.00743.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from kexue_jax._src.checks import check_floating, check_rank, check_shape
from kexue_jax._src.typing import Array, Float, PRNGKey
from kexue_jax.attention._jit import jit_with_static
from kexue_jax.attention.dot_product import attention_from_logits


def _check_length(t: int, n: int) -> None:
    if t > n:
        raise ValueError(f"x: sequence length {t} exceeds the synthesizer's max_length {n}")


def _dense_head(x, w1, b1, w2, b2):
    hidden = jax.nn.relu(jnp.einsum("btm,hmk->bhtk", x, w1) + b1[None, :, None, :])
    return jnp.einsum("bhtk,hkn->bhtn", hidden, w2) + b2[None, :, None, :]


def _check_dense_params(
    x, w1, b1, w2, b2, w2_name: str = "w2", b2_name: str = "b2"
) -> dict[str, int]:
    check_floating("x", x)
    bx = check_shape("x", x, ["b", "t", "m"])
    b1w = check_shape("w1", w1, ["h", "m", "k"])
    check_shape("b1", b1, [b1w["h"], b1w["k"]])
    w2b = check_shape(w2_name, w2, [b1w["h"], b1w["k"], "n"])
    check_shape(b2_name, b2, [b1w["h"], w2b["n"]])
    if bx["m"] != b1w["m"]:
        raise ValueError(f"w1: expected input size {bx['m']} (x {x.shape}), got w1 {w1.shape}")
    return {**bx, **b1w, "n": w2b["n"]}


@jit_with_static()
def dense_synthesizer_logits(
    x: Float[Array, "b t m"],
    *,
    w1: Float[Array, "h m k"],
    b1: Float[Array, "h k"],
    w2: Float[Array, "h k n"],
    b2: Float[Array, "h n"],
) -> Float[Array, "b h t t"]:
    r"""Dense Synthesizer logits $B = \mathrm{relu}(XW_1 + b_1)W_2 + b_2$, cut to ``[..., :t]``.

    Args:
        x: ``[b, t, m]`` token features (``t <= n``).
        w1, b1: ``[h, m, k]``, ``[h, k]`` first layer per head.
        w2, b2: ``[h, k, n]``, ``[h, n]`` projection onto the ``n`` absolute key positions.

    Returns:
        ``[b, h, t, t]`` logits (same dtype as ``x``).

    References:
        https://kexue.fm/archives/7430; Tay et al. 2020, arXiv:2005.00743.
    """
    dims = _check_dense_params(x, w1, b1, w2, b2)
    _check_length(dims["t"], dims["n"])
    return _dense_head(x, w1, b1, w2, b2)[..., : dims["t"]]


@jit_with_static("t")
def random_synthesizer_logits(r: Float[Array, "h n n"], t: int) -> Float[Array, "1 h t t"]:
    r"""Random Synthesizer logits $B = R$ (input independent), the leading ``[t, t]`` block.

    Args:
        r: ``[h, n, n]`` per-head logits.
        t: sequence length (``<= n``).

    Returns:
        ``[1, h, t, t]`` logits.
    """
    check_floating("r", r)
    dims = check_shape("r", r, ["h", "n", "n"])
    _check_length(t, dims["n"])
    return r[None, :, :t, :t]


@jit_with_static()
def factorized_dense_synthesizer_logits(
    x: Float[Array, "b t m"],
    *,
    w1: Float[Array, "h m k"],
    b1: Float[Array, "h k"],
    w_a: Float[Array, "h k a"],
    b_a: Float[Array, "h a"],
    w_b: Float[Array, "h k c"],
    b_b: Float[Array, "h c"],
) -> Float[Array, "b h t t"]:
    r"""Factorized dense logits $B = \tilde B_1 \odot \tilde B_2$.

    $B_1 \in \mathbb R^{t\times a}$ and $B_2 \in \mathbb R^{t\times c}$ come from two dense heads.

    $\tilde B[i, pc + r] = B_1[i, p]\,B_2[i, r]$, so the maximum length is $n = ac$; the two
    factors share the hidden layer ``w1, b1``.

    Args:
        x: ``[b, t, m]`` token features (``t <= a * c``).
        w1, b1: ``[h, m, k]``, ``[h, k]`` shared hidden layer.
        w_a, b_a: ``[h, k, a]``, ``[h, a]`` first factor head.
        w_b, b_b: ``[h, k, c]``, ``[h, c]`` second factor head.

    Returns:
        ``[b, h, t, t]`` logits.

    References:
        https://kexue.fm/archives/7430; Tay et al. 2020, arXiv:2005.00743.
    """
    dims_a = _check_dense_params(x, w1, b1, w_a, b_a, "w_a", "b_a")
    dims_b = _check_dense_params(x, w1, b1, w_b, b_b, "w_b", "b_b")
    a, c, t = dims_a["n"], dims_b["n"], dims_a["t"]
    _check_length(t, a * c)
    b1_ = _dense_head(x, w1, b1, w_a, b_a)  # [b, h, t, a]
    b2_ = _dense_head(x, w1, b1, w_b, b_b)  # [b, h, t, c]
    full = (b1_[..., :, None] * b2_[..., None, :]).reshape(*b1_.shape[:-1], a * c)
    return full[..., :t]


@jit_with_static("t")
def factorized_random_synthesizer_logits(
    r1: Float[Array, "h n k"], r2: Float[Array, "h n k"], t: int
) -> Float[Array, "1 h t t"]:
    r"""Factorized random logits $B = R_1R_2^\top$ (rank $\le k$), the leading ``[t, t]`` block.

    Args:
        r1, r2: ``[h, n, k]`` low-rank factors.
        t: sequence length (``<= n``).

    Returns:
        ``[1, h, t, t]`` logits.
    """
    check_floating("r1", r1)
    check_floating("r2", r2)
    dims = check_shape("r1", r1, ["h", "n", "k"])
    check_shape("r2", r2, [dims["h"], dims["n"], dims["k"]])
    _check_length(t, dims["n"])
    return jnp.einsum("hik,hjk->hij", r1[:, :t], r2[:, :t])[None]


def mixture_logits(
    logits: Sequence[Float[Array, "b h t t"]], weights: Float[Array, " m"]
) -> Float[Array, "b h t t"]:
    r"""Mixture $B = \sum_i \alpha_i B_i$ with $\alpha = \mathrm{softmax}(w)$ (computed in float32).

    Args:
        logits: ``m`` logit arrays broadcastable to a common ``[b, h, t, t]``.
        weights: ``[m]`` unnormalised mixture weights $w$.

    Returns:
        The float32 mixture of the logits.

    Example:
        >>> b = mixture_logits([jnp.zeros((1, 1, 2, 2)), jnp.ones((1, 1, 2, 2))], jnp.zeros(2))
        >>> b[0, 0].tolist()
        [[0.5, 0.5], [0.5, 0.5]]
    """
    check_rank("weights", weights, 1)
    if len(logits) != weights.shape[0]:
        raise ValueError(
            f"weights: expected one weight per logit array ({len(logits)}), got shape {weights.shape}"
        )
    alpha = jax.nn.softmax(weights.astype(jnp.float32))
    return sum(a * b.astype(jnp.float32) for a, b in zip(alpha, logits, strict=True))


@jit_with_static("is_causal")
def synthesizer_attention(
    logits: Float[Array, "b h t t"],
    v: Float[Array, "b t hk dv"],
    *,
    is_causal: bool = False,
    mask: Array | None = None,
) -> Float[Array, "b t h dv"]:
    r"""$\mathrm{softmax}(B)\,V$ for synthetic logits $B$ (softmax in float32).

    Args:
        logits: ``[b or 1, h, t, t]`` synthesised logits.
        v: ``[b, t, hk, dv]`` values.
        is_causal: mask future keys (decoder Synthesizer).
        mask: optional boolean mask broadcastable to ``[b, h, t, t]``.

    Returns:
        ``[b, t, h, dv]`` in ``v``'s dtype.
    """
    return attention_from_logits(logits, v, mask=mask, is_causal=is_causal)


def _dense_init(key, shape_in: int, shape_out: int, h: int):
    return jax.random.normal(key, (h, shape_in, shape_out), jnp.float32) / jnp.sqrt(shape_in)


def init_dense_synthesizer(
    *, d_model: int, num_heads: int, hidden: int, max_length: int, key: PRNGKey
) -> dict[str, Array]:
    """Parameters ``{w1, b1, w2, b2}`` of :func:`dense_synthesizer_logits` (LeCun-normal, zero biases)."""
    k1, k2 = jax.random.split(key)
    return {
        "w1": _dense_init(k1, d_model, hidden, num_heads),
        "b1": jnp.zeros((num_heads, hidden), jnp.float32),
        "w2": _dense_init(k2, hidden, max_length, num_heads),
        "b2": jnp.zeros((num_heads, max_length), jnp.float32),
    }


def init_random_synthesizer(
    *, num_heads: int, max_length: int, std: float = 1.0, key: PRNGKey
) -> dict[str, Array]:
    """Parameters ``{r}`` of :func:`random_synthesizer_logits`: ``r ~ N(0, std²)``."""
    return {"r": std * jax.random.normal(key, (num_heads, max_length, max_length), jnp.float32)}


def init_factorized_dense_synthesizer(
    *, d_model: int, num_heads: int, hidden: int, a: int, c: int, key: PRNGKey
) -> dict[str, Array]:
    """Parameters of :func:`factorized_dense_synthesizer_logits` (max length ``a * c``)."""
    k1, k2, k3 = jax.random.split(key, 3)
    return {
        "w1": _dense_init(k1, d_model, hidden, num_heads),
        "b1": jnp.zeros((num_heads, hidden), jnp.float32),
        "w_a": _dense_init(k2, hidden, a, num_heads),
        "b_a": jnp.zeros((num_heads, a), jnp.float32),
        "w_b": _dense_init(k3, hidden, c, num_heads),
        "b_b": jnp.zeros((num_heads, c), jnp.float32),
    }


def init_factorized_random_synthesizer(
    *, num_heads: int, max_length: int, rank: int, key: PRNGKey
) -> dict[str, Array]:
    """Parameters ``{r1, r2}`` of :func:`factorized_random_synthesizer_logits`.

    Entries are ``N(0, rank^-1/2)`` so that ``R1 R2ᵀ`` has unit-variance entries.
    """
    k1, k2 = jax.random.split(key)
    shape = (num_heads, max_length, rank)
    scale = rank**-0.25  # so that R1 R2ᵀ has unit-variance entries
    return {
        "r1": scale * jax.random.normal(k1, shape, jnp.float32),
        "r2": scale * jax.random.normal(k2, shape, jnp.float32),
    }
