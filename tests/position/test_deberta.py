"""DeBERTa c2p + p2c equal a naive per-(i, j) loop with the paper's piecewise delta."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kexue_jax.position import deberta_bias, deberta_relative_index
from tests.position.arrays import normal

B, TQ, TK, H, D, E, K = 2, 4, 6, 2, 4, 5, 2


def _delta(i, j):
    """He et al. 2021, eq. (3)."""
    if i - j <= -K:
        return 0
    if i - j >= K:
        return 2 * K - 1
    return i - j + K


def _params(seed):
    return {
        "rel_embeddings": normal(seed, (2 * K, E)),
        "w_qr": normal(seed + 1, (E, H, D)),
        "w_kr": normal(seed + 2, (E, H, D)),
    }


@jax.jit
def _bias(q, k, p, qpos):
    return deberta_bias(q, k, **p, max_distance=K, q_positions=qpos)


@given(seed=st.integers(0, 2**31 - 1))
def test_bias_equals_naive_loop(seed):
    q, k = normal(seed, (B, TQ, H, D)), normal(seed + 1, (B, TK, H, D))
    p = _params(seed + 2)
    qpos = jnp.arange(TQ) + 1
    got = np.asarray(_bias(q, k, p, qpos))
    q64, k64 = np.asarray(q, np.float64), np.asarray(k, np.float64)
    rel, wq, wk = (np.asarray(p[n], np.float64) for n in ("rel_embeddings", "w_qr", "w_kr"))
    want = np.zeros((B, H, TQ, TK))
    for b in range(B):
        for h in range(H):
            for i in range(TQ):
                for j in range(TK):
                    m = i + 1
                    c2p = q64[b, i, h] @ (rel[_delta(m, j)] @ wk[:, h])
                    p2c = k64[b, j, h] @ (rel[_delta(j, m)] @ wq[:, h])
                    want[b, h, i, j] = (c2p + p2c) / math.sqrt(3 * D)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_index_and_errors():
    np.testing.assert_array_equal(
        np.asarray(deberta_relative_index(jnp.arange(-4, 5), max_distance=2)),
        [_delta(r, 0) for r in range(-4, 5)],
    )
    q = normal(0, (1, 3, H, D))
    p = _params(0)
    with pytest.raises(ValueError, match="rel_embeddings"):
        deberta_bias(q, q, **p, max_distance=K + 1)
    with pytest.raises(ValueError, match="w_kr"):
        deberta_bias(
            q,
            q,
            rel_embeddings=p["rel_embeddings"],
            w_qr=p["w_qr"],
            w_kr=jnp.zeros((E + 1, H, D)),
            max_distance=K,
        )
    with pytest.raises(ValueError, match="q: expected rank 4"):
        deberta_bias(q[0], q, **p, max_distance=K)
