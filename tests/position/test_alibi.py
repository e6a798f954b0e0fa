"""ALiBi slopes (Press et al.'s rule) and the bias -slope * |m - n|."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kexue_jax.position import alibi_bias, alibi_slopes
from tests.position.arrays import normal


def test_slopes():
    np.testing.assert_array_equal(np.asarray(alibi_slopes(8)), [2.0**-k for k in range(1, 9)])
    # 6 heads: the 4-head slopes, then every other 8-head slope
    np.testing.assert_array_equal(
        np.asarray(alibi_slopes(6)), [2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3]
    )
    np.testing.assert_allclose(
        np.asarray(alibi_slopes(12))[8:], [2**-0.5, 2**-1.5, 2**-2.5, 2**-3.5], rtol=1e-6
    )


def test_bias_by_loop():
    bias = np.asarray(alibi_bias(4, 3, 5, q_positions=jnp.array([2, 3, 4])))
    assert bias.shape == (1, 4, 3, 5) and bias.dtype == np.float32
    slopes = [2**-2, 2**-4, 2**-6, 2**-8]
    for h in range(4):
        for i in range(3):
            for j in range(5):
                assert bias[0, h, i, j] == -slopes[h] * abs(i + 2 - j)


def test_errors():
    with pytest.raises(ValueError, match="num_heads"):
        alibi_slopes(0)
    with pytest.raises(ValueError, match="k_positions"):
        alibi_bias(2, 3, 3, k_positions=jnp.arange(2))


@jax.jit
def _attention_two_ways(q, k, v):
    bias = alibi_bias(4, 5, 5)
    got = jax.nn.dot_product_attention(q, k, v, bias=bias, is_causal=True)
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(8) + bias
    logits = jnp.where(jnp.tril(jnp.ones((5, 5), bool)), logits, -jnp.inf)
    return got, jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(logits, axis=-1), v)


def test_bias_composes_with_jax_dot_product_attention():
    """The [1, h, tq, tk] float32 layout is what ``jax.nn.dot_product_attention(bias=)`` takes."""
    got, want = _attention_two_ways(
        normal(0, (2, 5, 4, 8)), normal(1, (2, 5, 4, 8)), normal(2, (2, 5, 4, 8))
    )
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)
