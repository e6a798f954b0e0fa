"""Softmax attention: the dispatcher equals the float32 reference; dispatch rules; validation."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kexue_jax.attention import (
    attention_from_logits,
    attention_logits,
    dot_product_attention,
    padding_mask,
    reference_attention,
    select_implementation,
)
from tests.attention.arrays import normals

B, TQ, TK, H, HK, D = 2, 5, 6, 4, 2, 8


@functools.partial(jax.jit, static_argnames=("tq", "dv"))
def _inputs(seed, tq=TQ, dv=D):
    q, k, v, bias, z = normals(
        seed, (B, tq, H, D), (B, TK, HK, D), (B, TK, HK, dv), (1, H, tq, TK), (B,)
    )
    lengths = 1 + (jnp.abs(z) * 1000).astype(jnp.int32) % TK  # in [1, TK]
    return q, k, v, bias, lengths


# (name, kwargs builder). Each config compiles once per dtype; tq != tk and grouped-query heads
# (H = 4 query heads over HK = 2 key/value heads) throughout.
CONFIGS = {
    "plain": lambda bias, lengths: {},
    "causal": lambda bias, lengths: {"is_causal": True},
    "window": lambda bias, lengths: {"local_window": (1, 2)},
    "causal_window": lambda bias, lengths: {"is_causal": True, "local_window": (2, None)},
    "bias_padding": lambda bias, lengths: {"bias": bias, "mask": padding_mask(lengths, TK)},
}


@functools.cache
def _outputs(config):
    """Dispatched and reference outputs in float32 and bfloat16 (one compile per config)."""

    def run(impl, dtype, q, k, v, bias, lengths):
        kw = CONFIGS[config](bias, lengths)
        return dot_product_attention(
            q.astype(dtype), k.astype(dtype), v.astype(dtype), implementation=impl, **kw
        )

    return jax.jit(
        lambda *a: {
            (impl or "dispatch", dtype.__name__): run(impl, dtype, *a)
            for impl in (None, "reference")
            for dtype in (jnp.float32, jnp.bfloat16)
        }
    )


@pytest.mark.parametrize("config", sorted(CONFIGS))
@given(seed=st.integers(0, 2**31 - 1))
def test_dispatch_equals_reference_f32_and_bf16(config, seed):
    out = _outputs(config)(*_inputs(seed))
    fast, ref = out[("dispatch", "float32")], out[("reference", "float32")]
    assert fast.dtype == ref.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(fast), np.asarray(ref), rtol=1e-5, atol=1e-5)
    fast, ref = out[("dispatch", "bfloat16")], out[("reference", "bfloat16")]
    assert fast.dtype == ref.dtype == jnp.bfloat16
    # Looser on purpose: jax.nn rounds the float32 probabilities to bf16 before the PV matmul and
    # the output is rounded to bf16 (2^-8 relative); the reference keeps PV in float32. With unit
    # normal values |out| < 4, so 3e-2 absolute is a few bf16 ulps, far below a wrong mask (O(1),
    # see the next test).
    np.testing.assert_allclose(
        np.asarray(fast, np.float32), np.asarray(ref, np.float32), rtol=2e-2, atol=3e-2
    )


def test_bf16_tolerance_still_sees_a_wrong_mask():
    # The bf16 tolerance above must not hide a missing causal mask.
    q, k, v, _, _ = _inputs(0)
    bf = lambda x: x.astype(jnp.bfloat16)
    causal, full = jax.jit(
        lambda q, k, v: (
            dot_product_attention(q, k, v, is_causal=True),
            reference_attention(q, k, v),
        )
    )(bf(q), bf(k), bf(v))
    assert not np.allclose(
        np.asarray(causal, np.float32), np.asarray(full, np.float32), rtol=2e-2, atol=3e-2
    )


def test_gradients_of_dispatch_equal_reference():
    q, k, v, bias, _ = _inputs(1)

    def loss(impl):
        return lambda q, k, v: jnp.sum(
            jnp.sin(dot_product_attention(q, k, v, bias=bias, is_causal=True, implementation=impl))
        )

    g_fast = jax.jit(jax.grad(loss(None), argnums=(0, 1, 2)))(q, k, v)
    g_ref = jax.jit(jax.grad(loss("reference"), argnums=(0, 1, 2)))(q, k, v)
    for a, b in zip(g_fast, g_ref, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def test_reference_equals_explicit_softmax_formula():
    q, k, v, bias, _ = _inputs(2, tq=TK)
    out = jax.jit(functools.partial(reference_attention, is_causal=True))(q, k, v, bias=bias)
    kk, vv = (np.repeat(np.asarray(x, np.float64), H // HK, axis=2) for x in (k, v))
    logits = np.einsum("bqhd,bkhd->bhqk", np.asarray(q, np.float64), kk) / np.sqrt(D) + np.asarray(
        bias
    )
    logits = np.where(np.tril(np.ones((TK, TK), bool)), logits, -np.inf)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(
        np.asarray(out), np.einsum("bhqk,bkhe->bqhe", p, vv), rtol=1e-5, atol=1e-5
    )


def test_dispatch_rules_on_this_backend():
    q, k, v, _, _ = _inputs(0)
    assert select_implementation(q, k, v) == "xla"  # float32: never cuDNN, on any backend
    # jax.nn needs v's head_dim == k's and equal dtypes: otherwise the reference path.
    assert select_implementation(q, k, v[..., :3]) == "reference"
    assert select_implementation(q, k, v.astype(jnp.bfloat16)) == "reference"
    assert select_implementation(q, k, v, implementation="reference") == "reference"
    with pytest.raises(ValueError, match="implementation"):
        select_implementation(q, k, v[..., :3], implementation="xla")


def test_value_head_dim_may_differ_and_falls_back():
    q, k, v, _, _ = _inputs(3, dv=3)
    fn = jax.jit(functools.partial(dot_product_attention, is_causal=True))
    out = fn(q, k, v)
    assert out.shape == (B, TQ, H, 3)
    probe = fn(q, k, jnp.ones_like(v))
    np.testing.assert_allclose(np.asarray(probe), 1.0, rtol=1e-6)  # rows of softmax sum to one


def test_fully_masked_rows_average_all_values_like_jax_nn():
    q, k, v, _, _ = _inputs(4)
    mask = jnp.zeros((1, 1, TQ, TK), bool).at[..., 1:, :].set(True)
    for impl in (None, "reference"):
        out = jax.jit(functools.partial(dot_product_attention, mask=mask, implementation=impl))(
            q, k, v
        )
        expected = jnp.repeat(jnp.mean(v, axis=1), H // HK, axis=1)
        np.testing.assert_allclose(
            np.asarray(out[:, 0]), np.asarray(expected), rtol=1e-5, atol=1e-5
        )


def test_attention_from_logits_takes_custom_logits():
    q, k, v, bias, _ = _inputs(5)
    got, want = jax.jit(
        lambda q, k, v, bias: (
            attention_from_logits(attention_logits(q, k) + bias, v, local_window=(0, 1)),
            reference_attention(q, k, v, bias=bias, local_window=(0, 1)),
        )
    )(q, k, v, bias)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"q": jnp.zeros((B, TQ, H))}, "q: expected shape"),
        ({"k": jnp.zeros((B, TK, HK, D + 1))}, "'d'"),
        ({"k": jnp.zeros((B, TK, 3, D)), "v": jnp.zeros((B, TK, 3, D))}, "must divide"),
        ({"v": jnp.zeros((B, TK + 1, HK, D))}, "'tk'"),
        ({"q": jnp.zeros((B, TQ, H, D), jnp.int32)}, "q: expected a floating dtype"),
        ({"bias": jnp.zeros((B, H, TQ, TK + 1))}, "bias: expected a shape broadcastable"),
        ({"mask": jnp.ones((TQ, TK))}, "mask: expected a boolean mask"),
        ({"mask": jnp.ones((2, 2, 1, TQ, TK), bool)}, "mask: expected rank"),
        ({"local_window": (-1, 2)}, "local_window"),
        ({"implementation": "flash"}, "implementation"),
    ],
)
def test_invalid_inputs_raise_value_error(kwargs, match):
    args = {
        "q": jnp.zeros((B, TQ, H, D)),
        "k": jnp.zeros((B, TK, HK, D)),
        "v": jnp.zeros((B, TK, HK, D)),
    }
    args.update(kwargs)
    q, k, v = args.pop("q"), args.pop("k"), args.pop("v")
    with pytest.raises(ValueError, match=match):
        dot_product_attention(q, k, v, **args)
