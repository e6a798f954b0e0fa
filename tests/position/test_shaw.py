"""Shaw et al.: key and value terms equal a naive per-(i, j) loop; they break the 9105 defect."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kexue_jax.position import shaw_bias, shaw_relative_index, shaw_values
from tests.position.arrays import normal

B, TQ, TK, H, D, K = 2, 4, 6, 2, 4, 2


@jax.jit
def _both(q, rel_k, rel_v, weights, qpos):
    return (
        shaw_bias(q, rel_k, TK, max_distance=K, q_positions=qpos, logit_scale=1.0),
        shaw_values(weights, rel_v, max_distance=K, q_positions=qpos),
    )


@given(seed=st.integers(0, 2**31 - 1))
def test_bias_and_values_equal_naive_loop(seed):
    q = np.asarray(normal(seed, (B, TQ, H, D)), np.float64)
    rel_k, rel_v = normal(seed + 2, (2 * K + 1, D)), normal(seed + 3, (2 * K + 1, D))
    rk, rv = np.asarray(rel_k, np.float64), np.asarray(rel_v, np.float64)
    weights = jax.nn.softmax(normal(seed + 1, (B, H, TQ, TK)), axis=-1)
    qpos = np.arange(TQ) + 2  # queries are the last four of six keys
    bias, values = (
        np.asarray(a) for a in _both(jnp.asarray(q, jnp.float32), rel_k, rel_v, weights, qpos)
    )
    w = np.asarray(weights, np.float64)
    want_bias = np.zeros((B, H, TQ, TK))
    want_values = np.zeros((B, TQ, H, D))
    for b in range(B):
        for h in range(H):
            for i in range(TQ):
                for j in range(TK):
                    row = min(max(int(qpos[i]) - j, -K), K) + K
                    want_bias[b, h, i, j] = q[b, i, h] @ rk[row]
                    want_values[b, i, h] += w[b, h, i, j] * rv[row]
    np.testing.assert_allclose(bias, want_bias, atol=1e-5)
    np.testing.assert_allclose(values, want_values, atol=1e-5)


def test_index_default_scale_and_errors():
    idx = np.asarray(shaw_relative_index(3, 5, max_distance=1))
    np.testing.assert_array_equal(idx[0], [[1, 0, 0, 0, 0], [2, 1, 0, 0, 0], [2, 2, 1, 0, 0]])
    q = normal(0, (1, 3, 1, D))
    table = normal(1, (3, D))
    np.testing.assert_allclose(
        np.asarray(shaw_bias(q, table, 3, max_distance=1)),
        np.asarray(shaw_bias(q, table, 3, max_distance=1, logit_scale=1.0)) / 2.0,
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match="rel_k"):
        shaw_bias(q, normal(1, (5, D)), 3, max_distance=1)
    with pytest.raises(ValueError, match="rel_v"):
        shaw_values(jnp.zeros((1, 1, 3, 3)), jnp.zeros((4, D)), max_distance=1)


def test_value_term_breaks_the_identical_rows_defect():
    """9105: with identical values, logit-only encodings give identical rows; R^V does not."""
    q, k = normal(4, (B, TQ, H, D)), normal(6, (B, TK, H, D))
    rel_k, rel_v = normal(3, (2 * K + 1, D)), normal(5, (2 * K + 1, D))
    qpos = jnp.arange(TQ) + 2
    bias, _ = _both(q, rel_k, rel_v, jnp.zeros((B, H, TQ, TK)), qpos)
    weights = jax.nn.softmax(jnp.einsum("bqhd,bkhd->bhqk", q, k) / 2 + bias, axis=-1)
    _, rv_term = _both(q, rel_k, rel_v, weights, qpos)
    logit_only = np.asarray(jnp.einsum("bhqk,bkhd->bqhd", weights, jnp.ones((B, TK, H, D))))
    np.testing.assert_allclose(logit_only, np.ones_like(logit_only), rtol=1e-6)  # every row = v
    with_rv = logit_only + np.asarray(rv_term)
    assert not np.allclose(with_rv[:, 0], with_rv[:, -1], atol=1e-3)
