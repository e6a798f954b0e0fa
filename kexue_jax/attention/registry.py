"""The registry of attention functions, for the shared suite ``tests/suites/test_attentions.py``.

``ATTENTIONS[name](q, k, v, *, is_causal)`` maps ``[b, t, h, d]`` queries/keys/values to a
``[b, t, h, d]`` output in ``v``'s dtype, with each member's default hyperparameters (small chunks,
windows and blocks, so that short test sequences exercise them). Members with parameters
(Synthesizers) are in ``PARAMETRIC_ATTENTIONS[name] = (init, apply)``:
``init(*, num_heads, head_dim, max_length, key)`` returns params and
``apply(params, q, k, v, *, is_causal)`` has the common signature after binding the params.

``PERMUTATION_EQUIVARIANT`` names the members whose non-causal output is permutation-equivariant
(permuting the positions of ``q, k, v`` permutes the output): those without any notion of position.
Windows, sparse patterns, chunks and synthetic (absolute-position) logits break it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from kexue_jax._src.typing import Array
from kexue_jax.attention.dot_product import attention_logits, dot_product_attention
from kexue_jax.attention.gau import mixed_chunk_attention, relu2_attention
from kexue_jax.attention.linear import efficient_attention, linear_attention
from kexue_jax.attention.relative_defect import l2_normalized_attention
from kexue_jax.attention.sparse import sparse_attention
from kexue_jax.attention.synthesizer import (
    dense_synthesizer_logits,
    factorized_random_synthesizer_logits,
    init_dense_synthesizer,
    init_factorized_random_synthesizer,
    init_random_synthesizer,
    mixture_logits,
    random_synthesizer_logits,
    synthesizer_attention,
)

AttentionFn = Callable[..., Array]

ATTENTIONS: dict[str, AttentionFn] = {
    "softmax": lambda q, k, v, *, is_causal: dot_product_attention(q, k, v, is_causal=is_causal),
    "softmax_local": lambda q, k, v, *, is_causal: dot_product_attention(
        q, k, v, is_causal=is_causal, local_window=(2, 1)
    ),
    "linear_elu": lambda q, k, v, *, is_causal: linear_attention(
        q, k, v, feature_map="elu+1", is_causal=is_causal, chunk_size=3
    ),
    "linear_relu_scan": lambda q, k, v, *, is_causal: linear_attention(
        q, k, v, feature_map="relu", is_causal=is_causal, method="scan"
    ),
    "linear_taylor_cumsum": lambda q, k, v, *, is_causal: linear_attention(
        q, k, v, feature_map="taylor", is_causal=is_causal, method="cumsum"
    ),
    "efficient": lambda q, k, v, *, is_causal: efficient_attention(q, k, v, is_causal=is_causal),
    "sparse_strided": lambda q, k, v, *, is_causal: sparse_attention(
        q, k, v, pattern="strided", block_size=2, is_causal=is_causal
    ),
    "sparse_fixed": lambda q, k, v, *, is_causal: sparse_attention(
        q, k, v, pattern="fixed", block_size=3, num_summary=1, is_causal=is_causal
    ),
    "gau_relu2": lambda q, k, v, *, is_causal: relu2_attention(q, k, v, is_causal=is_causal),
    "flash_mixed_chunk": lambda q, k, v, *, is_causal: mixed_chunk_attention(
        q, k, q, k, v, chunk_size=3, is_causal=is_causal
    ),
    "l2_normalized": lambda q, k, v, *, is_causal: l2_normalized_attention(
        attention_logits(q, k), v, is_causal=is_causal
    ),
}


class ParametricAttention(NamedTuple):
    """A member with parameters.

    ``init(*, num_heads, head_dim, max_length, key) -> params`` and
    ``apply(params, q, k, v, *, is_causal) -> out``.
    """

    init: Callable[..., Any]
    apply: Callable[..., Array]


def _flat(q: Array) -> Array:
    return q.reshape(*q.shape[:2], -1)


def _dense_init(*, num_heads, head_dim, max_length, key):
    return init_dense_synthesizer(
        d_model=num_heads * head_dim,
        num_heads=num_heads,
        hidden=head_dim,
        max_length=max_length,
        key=key,
    )


def _random_plus_vanilla_init(*, num_heads, head_dim, max_length, key):
    del head_dim
    return {
        "random": init_random_synthesizer(num_heads=num_heads, max_length=max_length, key=key),
        "weights": jnp.zeros((2,), jnp.float32),
    }


def _random_plus_vanilla(params, q, k, v, *, is_causal):
    logits = mixture_logits(
        [random_synthesizer_logits(params["random"]["r"], q.shape[1]), attention_logits(q, k)],
        params["weights"],
    )
    return synthesizer_attention(logits, v, is_causal=is_causal)


PARAMETRIC_ATTENTIONS: dict[str, ParametricAttention] = {
    # The dense synthesizer reads its per-token input from the queries (flattened over heads).
    "synthesizer_dense": ParametricAttention(
        _dense_init,
        lambda p, q, k, v, *, is_causal: synthesizer_attention(
            dense_synthesizer_logits(_flat(q), **p), v, is_causal=is_causal
        ),
    ),
    "synthesizer_random": ParametricAttention(
        lambda *, num_heads, head_dim, max_length, key: init_random_synthesizer(
            num_heads=num_heads, max_length=max_length, key=key
        ),
        lambda p, q, k, v, *, is_causal: synthesizer_attention(
            random_synthesizer_logits(p["r"], q.shape[1]), v, is_causal=is_causal
        ),
    ),
    "synthesizer_factorized_random": ParametricAttention(
        lambda *, num_heads, head_dim, max_length, key: init_factorized_random_synthesizer(
            num_heads=num_heads, max_length=max_length, rank=2, key=key
        ),
        lambda p, q, k, v, *, is_causal: synthesizer_attention(
            factorized_random_synthesizer_logits(p["r1"], p["r2"], q.shape[1]),
            v,
            is_causal=is_causal,
        ),
    ),
    "synthesizer_random_plus_vanilla": ParametricAttention(
        _random_plus_vanilla_init, _random_plus_vanilla
    ),
}

PERMUTATION_EQUIVARIANT: set[str] = {
    "softmax",
    "linear_elu",
    "linear_relu_scan",
    "linear_taylor_cumsum",
    "efficient",
    "gau_relu2",
    "l2_normalized",
}


def register_attention(
    name: str, fn: AttentionFn, *, permutation_equivariant: bool = False
) -> None:
    """Add ``fn(q, k, v, *, is_causal)`` to :data:`ATTENTIONS` (and mark its equivariance)."""
    if name in ATTENTIONS or name in PARAMETRIC_ATTENTIONS:
        raise ValueError(f"name: attention {name!r} is already registered")
    ATTENTIONS[name] = fn
    if permutation_equivariant:
        PERMUTATION_EQUIVARIANT.add(name)


def bind(
    name: str, *, num_heads: int, head_dim: int, max_length: int, key: jax.Array
) -> AttentionFn:
    """``fn(q, k, v, *, is_causal)`` for any registered name (parametric members get fresh params)."""
    if name in ATTENTIONS:
        return ATTENTIONS[name]
    if name not in PARAMETRIC_ATTENTIONS:
        raise ValueError(
            f"name: unknown attention {name!r}; known: "
            f"{sorted(ATTENTIONS) + sorted(PARAMETRIC_ATTENTIONS)}"
        )
    entry = PARAMETRIC_ATTENTIONS[name]
    init = functools.partial(
        entry.init, num_heads=num_heads, head_dim=head_dim, max_length=max_length
    )
    params = jax.jit(lambda key: init(key=key))(key)  # one compile instead of many eager ops
    return lambda q, k, v, *, is_causal: entry.apply(params, q, k, v, is_causal=is_causal)
