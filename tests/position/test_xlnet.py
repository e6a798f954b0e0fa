"""Transformer-XL / XLNet position terms equal a naive per-(i, j) loop, hand-built sinusoid."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kexue_jax.position import xlnet_bias
from tests.position.arrays import normal

B, TQ, TK, H, D, E = 2, 3, 5, 2, 4, 6


def _sinusoid(r, dim):
    theta = 10000.0 ** (-np.arange(0, dim, 2) / dim)
    out = np.empty(dim)
    out[0::2], out[1::2] = np.sin(r * theta), np.cos(r * theta)
    return out


@jax.jit
def _bias(q, k, p, qpos):
    return xlnet_bias(q, k, **p, q_positions=qpos, logit_scale=1.0)


@given(seed=st.integers(0, 2**31 - 1))
def test_bias_equals_naive_loop(seed):
    q, k = normal(seed, (B, TQ, H, D)), normal(seed + 1, (B, TK, H, D))
    p = {
        "u": normal(seed + 2, (H, D)),
        "v": normal(seed + 3, (H, D)),
        "w_r": normal(seed + 4, (E, H, D)),
    }
    qpos = jnp.arange(TQ) + 2  # memory of two keys before the segment
    got = np.asarray(_bias(q, k, p, qpos))
    q64, k64 = np.asarray(q, np.float64), np.asarray(k, np.float64)
    u, v, w = (np.asarray(p[n], np.float64) for n in ("u", "v", "w_r"))
    want = np.zeros((B, H, TQ, TK))
    for b in range(B):
        for h in range(H):
            for i in range(TQ):
                for j in range(TK):
                    wr = _sinusoid(i + 2 - j, E) @ w[:, h, :]  # W_R R_{i-j}
                    want[b, h, i, j] = q64[b, i, h] @ wr + u[h] @ k64[b, j, h] + v[h] @ wr
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_default_scale_and_errors():
    q = normal(0, (1, 2, H, D))
    p = {"u": normal(2, (H, D)), "v": normal(3, (H, D)), "w_r": normal(4, (E, H, D))}
    raw = xlnet_bias(q, q, **p, logit_scale=1.0)
    np.testing.assert_allclose(np.asarray(xlnet_bias(q, q, **p)), np.asarray(raw) / 2.0, rtol=1e-6)
    assert raw.dtype == jnp.float32 and raw.shape == (1, H, 2, 2)
    with pytest.raises(ValueError, match="u"):
        xlnet_bias(q, q, u=jnp.zeros((H + 1, D)), v=p["v"], w_r=p["w_r"])
    with pytest.raises(ValueError, match="w_r"):
        xlnet_bias(q, q, u=p["u"], v=p["v"], w_r=jnp.zeros((5, H, D)))
    with pytest.raises(ValueError, match="k: dimension 'd'"):
        xlnet_bias(q, q[..., :2], **p)
