"""RoPE + q/k bias: the four-term expansion; without RoPE the key bias cancels in softmax."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kexue_jax.position import apply_rope, apply_rope_with_bias, init_rope_bias, rope_inv_freq
from tests.position.arrays import normal

B, T, H, D = 1, 6, 2, 8


def _logits(q, k):
    return jnp.einsum("bqhd,bkhd->bhqk", q, k)


@jax.jit
def _compute(q, k, a, b):
    inv_freq = rope_inv_freq(D, theta=100.0)
    rot = lambda x: apply_rope(x, None, inv_freq)
    const = lambda v: jnp.broadcast_to(v, (B, T, H, D))
    both = _logits(
        apply_rope_with_bias(q, None, inv_freq, bias=a),
        apply_rope_with_bias(k, None, inv_freq, bias=b),
    )
    four = (
        _logits(rot(q), rot(k))
        + _logits(rot(const(a)), rot(k))
        + _logits(rot(q), rot(const(b)))
        + _logits(rot(const(a)), rot(const(b)))
    )
    zero = jnp.zeros_like(inv_freq)  # R = I
    q_a = apply_rope_with_bias(q, None, zero, bias=a)
    plain = jax.nn.softmax(_logits(q_a, k), axis=-1)
    with_kb = jax.nn.softmax(_logits(q_a, apply_rope_with_bias(k, None, zero, bias=b)), axis=-1)
    rope_plain = jax.nn.softmax(_logits(rot(q), rot(k)), axis=-1)
    rope_kb = jax.nn.softmax(
        _logits(rot(q), apply_rope_with_bias(k, None, inv_freq, bias=b)), axis=-1
    )
    return both, four, plain, with_kb, rope_plain, rope_kb


@given(seed=st.integers(0, 2**31 - 1))
def test_expansion_and_key_bias_cancels_only_without_rope(seed):
    q, k = normal(seed, (B, T, H, D)), normal(seed + 1, (B, T, H, D))
    a, b = normal(seed + 2, (H, D)), normal(seed + 3, (H, D))
    both, four, plain, with_kb, rope_plain, rope_kb = (np.asarray(x) for x in _compute(q, k, a, b))
    np.testing.assert_allclose(both, four, atol=1e-4)
    np.testing.assert_allclose(with_kb, plain, atol=1e-5)  # without RoPE the key bias cancels
    assert not np.allclose(rope_kb, rope_plain, atol=1e-3)  # with RoPE it does not


def test_init_is_plain_rope_dtype_and_errors():
    x = normal(0, (B, T, H, D)).astype(jnp.bfloat16)
    inv_freq = rope_inv_freq(D)
    bias = init_rope_bias(H, D)
    assert bias.shape == (H, D) and bias.dtype == jnp.float32
    out = apply_rope_with_bias(x, None, inv_freq, bias=bias)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_array_equal(
        np.asarray(out, np.float32), np.asarray(apply_rope(x, None, inv_freq), np.float32)
    )
    with pytest.raises(ValueError, match="bias"):
        apply_rope_with_bias(x, None, inv_freq, bias=jnp.zeros((H + 1, D)))
