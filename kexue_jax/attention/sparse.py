r"""Sparse attention with the strided and fixed patterns of Child et al. (2019).

Each query attends to a static set of keys given by a pattern (with stride / block length $l$):

* **strided**: $j$ is visible from $i$ when $|i - j| < l$ (the previous $l$ tokens) or
  $(i - j) \bmod l = 0$ (every $l$-th token); with $l \approx \sqrt n$ each row has $O(\sqrt n)$ keys.
* **fixed**: $j$ is visible when $\lfloor j/l\rfloor = \lfloor i/l\rfloor$ (same block) or
  $j \bmod l \ge l - c$ (the last $c$ "summary" cells of every block).

Causal versions also require $j \le i$ (the paper's autoregressive setting). The paper splits the
two parts over heads or layers; here one head sees their union, so a single call is the merged
pattern. :func:`sparse_attention` gathers each query's keys (a static index table built from the
mask at trace time) and runs softmax over them only: $O(n \cdot \mathrm{nnz}_{\max})$ work instead of
$O(n^2)$. It equals dense attention with :func:`sparse_mask` (tested).

References:
    Child et al. 2019, "Generating Long Sequences with Sparse Transformers", arXiv:1904.10509.
    https://kexue.fm/archives/6853 (为节约而生：从标准Attention到稀疏Attention).
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from kexue_jax._src.checks import check_in
from kexue_jax._src.typing import Array, Bool, Float
from kexue_jax.attention._jit import jit_with_static
from kexue_jax.attention._validate import check_qkv, repeat_kv_heads

Pattern = Literal["strided", "fixed"]
PATTERNS = ("strided", "fixed")


def _check_pattern_args(t: int, block_size: int, num_summary: int) -> None:
    if not (isinstance(t, int) and t > 0):
        raise ValueError(f"t: expected a positive int, got {t!r}")
    if not (isinstance(block_size, int) and block_size > 0):
        raise ValueError(f"block_size: expected a positive int, got {block_size!r}")
    if not (isinstance(num_summary, int) and 1 <= num_summary <= block_size):
        raise ValueError(
            f"num_summary: expected an int in [1, block_size={block_size}], got {num_summary!r}"
        )


def _pattern_np(
    t: int, pattern: str, block_size: int, num_summary: int, is_causal: bool
) -> np.ndarray:
    check_in("pattern", pattern, PATTERNS)
    _check_pattern_args(t, block_size, num_summary)
    i = np.arange(t)[:, None]
    j = np.arange(t)[None, :]
    if pattern == "strided":
        mask = (np.abs(i - j) < block_size) | ((i - j) % block_size == 0)
    else:
        mask = (i // block_size == j // block_size) | (j % block_size >= block_size - num_summary)
    if is_causal:
        mask &= j <= i
    return mask


def sparse_mask(
    t: int,
    *,
    pattern: Pattern = "strided",
    block_size: int,
    num_summary: int = 1,
    is_causal: bool = True,
) -> Bool[Array, "1 1 t t"]:
    r"""The boolean ``[1, 1, t, t]`` mask of a strided or fixed sparse pattern (a NumPy constant).

    Args:
        t: sequence length.
        pattern: ``"strided"`` or ``"fixed"``.
        block_size: the stride / block length $l$.
        num_summary: $c$, the summary cells per block of the fixed pattern.
        is_causal: also require $j \le i$.

    Returns:
        ``[1, 1, t, t]`` boolean mask.

    Example:
        >>> sparse_mask(5, pattern="strided", block_size=2)[0, 0].astype(int).tolist()
        [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [1, 0, 1, 1, 1]]
    """
    return _pattern_np(t, pattern, block_size, num_summary, is_causal)[None, None]


def _index_table(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the visible key indices, padded to the widest row, and their validity."""
    counts = mask.sum(axis=1)
    width = max(int(counts.max()), 1)
    idx = np.zeros((mask.shape[0], width), np.int32)
    valid = np.zeros((mask.shape[0], width), bool)
    for row in range(mask.shape[0]):
        cols = np.flatnonzero(mask[row])
        idx[row, : cols.size] = cols
        valid[row, : cols.size] = True
    return idx, valid


@jit_with_static("pattern", "block_size", "num_summary", "is_causal", "scale")
def sparse_attention(
    q: Float[Array, "b t h d"],
    k: Float[Array, "b t hk d"],
    v: Float[Array, "b t hk dv"],
    *,
    pattern: Pattern = "strided",
    block_size: int,
    num_summary: int = 1,
    is_causal: bool = True,
    scale: float | None = None,
) -> Float[Array, "b t h dv"]:
    r"""Softmax attention restricted to a strided or fixed pattern, computed on gathered keys only.

    $\mathrm{out}_i = \sum_{j \in S_i} \mathrm{softmax}_{j \in S_i}(s\, q_i^\top k_j)\, v_j$ with $S_i$
    the pattern's keys for query $i$ (see the module docstring); logits and softmax in float32.

    Args:
        q: ``[b, t, h, d]`` queries.
        k: ``[b, t, hk, d]`` keys (``hk`` divides ``h``).
        v: ``[b, t, hk, dv]`` values.
        pattern: ``"strided"`` or ``"fixed"``.
        block_size: the stride / block length $l$.
        num_summary: $c$, summary cells per block (fixed pattern).
        is_causal: autoregressive pattern ($j \le i$).
        scale: logit scale; default $1/\sqrt{d}$.

    Returns:
        ``[b, t, h, dv]`` in ``v``'s dtype.

    References:
        Child et al. 2019, arXiv:1904.10509; https://kexue.fm/archives/6853.
    """
    dims = check_qkv(q, k, v)
    t = dims["tq"]
    if dims["tk"] != t:
        raise ValueError(f"k: sparse self-attention needs tq == tk, got q {q.shape}, k {k.shape}")
    idx, valid = _index_table(_pattern_np(t, pattern, block_size, num_summary, is_causal))
    s = 1.0 / np.sqrt(dims["d"]) if scale is None else scale
    kg = repeat_kv_heads(k, dims["h"]).astype(jnp.float32)[:, idx]  # [b, t, w, h, d]
    vg = repeat_kv_heads(v, dims["h"]).astype(jnp.float32)[:, idx]
    logits = jnp.einsum("bthd,btwhd->bhtw", q.astype(jnp.float32), kg) * s
    logits = jnp.where(jnp.asarray(valid)[None, None], logits, -jnp.inf)
    probs = jax.nn.softmax(logits, axis=-1)
    return jnp.einsum("bhtw,btwhe->bthe", probs, vg).astype(v.dtype)
