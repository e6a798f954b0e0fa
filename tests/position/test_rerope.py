"""ReRoPE / Leaky ReRoPE: two-matrix logits = explicit clipped matrix; decode = last row."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kexue_jax._src.testing import assert_eager_jit_vmap
from kexue_jax.position import (
    apply_rope,
    rerope_decode_logits,
    rerope_logits,
    rerope_logits_reference,
    rerope_relative_positions,
    rope_inv_freq,
)
from tests.position.arrays import normal

B, T, H, D = 2, 12, 2, 8
INV_FREQ = rope_inv_freq(D, theta=100.0)  # a small base turns every pair visibly within 12 tokens
seeds = st.integers(0, 2**31 - 1)
windows = st.sampled_from([2, 3, 5])
leaky = st.sampled_from([None, 2.0, 16.0])


# window and scale are traced arguments: one compile per shape and per "scale is None".
@jax.jit
def _merged(q, k, qp, kp, window, scale):
    return rerope_logits(
        q, k, INV_FREQ, window=window, scale=scale, q_positions=qp, k_positions=kp, logit_scale=1.0
    )


@jax.jit
def _reference(q, k, qp, kp, window, scale):
    return rerope_logits_reference(
        q, k, INV_FREQ, window=window, scale=scale, q_positions=qp, k_positions=kp, logit_scale=1.0
    )


@jax.jit
def _rope_logits(q, k, qp, kp):
    qr, kr = apply_rope(q, qp, INV_FREQ), apply_rope(k, kp, INV_FREQ)
    return jnp.einsum("bqhd,bkhd->bhqk", qr, kr)


def _qk(seed):
    return normal(seed, (B, T, H, D)), normal(seed + 1, (B, T, H, D))


def _numpy_logits(q, k, window, scale, offset=0):
    """float64 loop: q_m^T R(-rho(m-n)) k_n with rho from the article's piecewise definition."""
    q, k = np.asarray(q, np.float64), np.asarray(k, np.float64)
    theta = np.asarray(INV_FREQ, np.float64)
    out = np.zeros((B, H, T, T))
    for m in range(T):
        for n in range(T):
            r = (m + offset) - (n + offset)
            rho = r if r < window else (window if scale is None else window + (r - window) / scale)
            c, s = np.cos(-rho * theta), np.sin(-rho * theta)
            x1, x2, y1, y2 = (
                q[:, m, :, : D // 2],
                q[:, m, :, D // 2 :],
                k[:, n, :, : D // 2],
                k[:, n, :, D // 2 :],
            )
            out[:, :, m, n] = np.sum(c * (x1 * y1 + x2 * y2) + s * (x2 * y1 - x1 * y2), axis=-1)
    return out


def test_relative_positions_by_hand():
    rel = jnp.array([-3, 0, 1, 2, 3, 4, 10])
    np.testing.assert_array_equal(
        np.asarray(rerope_relative_positions(rel, window=3)), [-3, 0, 1, 2, 3, 3, 3]
    )
    np.testing.assert_allclose(
        np.asarray(rerope_relative_positions(rel, window=3, scale=4.0)),
        [-3, 0, 1, 2, 3, 3.25, 4.75],
    )


@given(seed=seeds, window=windows, scale=leaky, offset=st.integers(0, 500))
def test_two_matrix_logits_equal_the_explicit_relative_matrix(seed, window, scale, offset):
    q, k = _qk(seed)
    pos = jnp.arange(T) + offset
    merged = _merged(q, k, pos, pos, window, scale)
    reference = _reference(q, k, pos, pos, window, scale)
    np.testing.assert_allclose(np.asarray(merged), np.asarray(reference), atol=1e-4)
    # and both equal a float64 loop that does not use the library at all
    np.testing.assert_allclose(
        np.asarray(reference), _numpy_logits(q, k, window, scale, offset), atol=1e-4
    )
    # the clipping matters: plain RoPE differs beyond the window
    assert not np.allclose(np.asarray(merged), np.asarray(_rope_logits(q, k, pos, pos)), atol=1e-3)


@given(seed=seeds, scale=leaky)
def test_window_at_least_sequence_length_is_rope(seed, scale):
    q, k = _qk(seed)
    pos = jnp.arange(T)
    np.testing.assert_allclose(
        np.asarray(_merged(q, k, pos, pos, window=T, scale=scale)),
        np.asarray(_rope_logits(q, k, pos, pos)),
        atol=1e-4,
    )


@given(seed=seeds, window=windows)
def test_leaky_with_k_one_is_rope_and_large_k_is_rerope(seed, window):
    q, k = _qk(seed)
    pos = jnp.arange(T)
    np.testing.assert_allclose(
        np.asarray(_merged(q, k, pos, pos, window=window, scale=1.0)),
        np.asarray(_rope_logits(q, k, pos, pos)),
        atol=1e-4,
    )
    np.testing.assert_allclose(
        np.asarray(_merged(q, k, pos, pos, window=window, scale=1e6)),
        np.asarray(_merged(q, k, pos, pos, window=window, scale=None)),
        atol=1e-3,
    )


@jax.jit
def _decode(q, k, m, kp, window, scale):
    return rerope_decode_logits(
        q, k, INV_FREQ, q_position=m, k_positions=kp, window=window, scale=scale, logit_scale=1.0
    )


@given(seed=seeds, window=windows, scale=leaky, offset=st.integers(0, 500))
def test_decode_path_equals_last_row_of_full_path(seed, window, scale, offset):
    q, k = _qk(seed)
    pos = jnp.arange(T) + offset
    full = _merged(q, k, pos, pos, window, scale)
    step = _decode(q[:, -1:], k, pos[-1], pos, window, scale)
    assert step.shape == (B, H, 1, T) and step.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(step), np.asarray(full[:, :, -1:]), atol=1e-4)
    # a middle query against the cache up to it (per-example query positions)
    m = 6
    step = _decode(
        q[:, m : m + 1], k[:, : m + 1], jnp.full((B,), pos[m]), pos[: m + 1], window, scale
    )
    np.testing.assert_allclose(
        np.asarray(step), np.asarray(full[:, :, m : m + 1, : m + 1]), atol=1e-4
    )


def test_default_logit_scale_bf16_and_eager_jit_vmap():
    q, k = _qk(7)
    pos = jnp.arange(T)
    fn = lambda a, b: rerope_logits(a, b, INV_FREQ, window=3, scale=4.0)
    assert_eager_jit_vmap(fn, q, k, rtol=1e-5, atol=1e-4)
    raw = _merged(q, k, pos, pos, 3, 4.0)  # logit_scale=1
    np.testing.assert_allclose(
        np.asarray(fn(q, k)), np.asarray(raw) / np.sqrt(D), rtol=1e-5, atol=1e-6
    )
    low = _merged(q.astype(jnp.bfloat16), k.astype(jnp.bfloat16), pos, pos, 3, 4.0)
    assert low.dtype == jnp.float32 and low.shape == (B, H, T, T)
    np.testing.assert_allclose(
        np.asarray(low), np.asarray(raw), atol=0.15
    )  # bf16 inputs: ~3 digits


def test_errors_name_the_argument():
    q, k = _qk(0)
    with pytest.raises(ValueError, match="window"):
        rerope_logits(q, k, INV_FREQ, window=0)
    with pytest.raises(ValueError, match="scale"):
        rerope_logits(q, k, INV_FREQ, window=2, scale=-1.0)
    with pytest.raises(ValueError, match="k: dimension 'h'"):
        rerope_logits(q, k[:, :, :1], INV_FREQ, window=2)
    with pytest.raises(ValueError, match="q: head_dim must be even"):
        rerope_logits(q[..., :7], k[..., :7], INV_FREQ[:3], window=2)
    with pytest.raises(ValueError, match="q: expected shape"):
        rerope_decode_logits(q[:, :2], k, INV_FREQ, q_position=3, window=2)
    with pytest.raises(ValueError, match="q_position"):
        rerope_decode_logits(q[:, :1], k, INV_FREQ, q_position=jnp.zeros((3,)), window=2)
    with pytest.raises(ValueError, match="k_positions"):
        rerope_logits(q, k, INV_FREQ, window=2, k_positions=jnp.arange(T + 1))
