"""Shared invariants of every RoPE-style encoding in ``kexue_jax.position.POSITIONS``.

Each registered factory is checked for: the relative property ($\\langle R_m q, R_n k\\rangle$
equals $q^\\top R_{n-m} k$, so depends only on $m - n$), norms kept up to ``attention_factor``,
equality with plain RoPE at ``scale=1`` (and a slower, different table at ``scale > 1``),
eager = jit = vmap, bf16 in = bf16 out, finite gradients and the odd-``head_dim`` ``ValueError``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kexue_jax._src.testing import assert_eager_jit_vmap, assert_finite_grads
from kexue_jax.position import POSITIONS, RotaryEncoding, apply_rope, rope_inv_freq
from tests.position.arrays import normal

NAMES = sorted(POSITIONS)
HEAD_DIM = 16
SCALES = st.sampled_from([1.0, 4.0, 16.0])
PLAIN = {"rope", "rope_interleaved"}
seeds = st.integers(0, 2**31 - 1)


@functools.cache
def _encoding(name, scale):
    return POSITIONS[name](HEAD_DIM, scale=scale)


@functools.partial(jax.jit, static_argnames="pairing")
def _jit_rotate(inv_freq, attention_factor, x, positions, *, pairing):
    return RotaryEncoding("jit", inv_freq, attention_factor, pairing).rotate(x, positions)


def _rotate(name, scale):
    """``enc.rotate`` under jit, the table as an argument: one compile per pairing and shape."""
    enc = _encoding(name, scale)
    return functools.partial(_jit_rotate, enc.inv_freq, enc.attention_factor, pairing=enc.pairing)


@pytest.mark.parametrize("name", NAMES)
@given(
    seed=seeds,
    scale=SCALES,
    m=st.integers(-512, 512),
    n=st.integers(-512, 512),
    shift=st.integers(-512, 512),
)
def test_dot_product_depends_only_on_relative_position(name, seed, scale, m, n, shift):
    rotate = _rotate(name, scale)
    q = jnp.broadcast_to(normal(seed, (1, 1, 1, HEAD_DIM)), (1, 3, 1, HEAD_DIM))
    k = jnp.broadcast_to(normal(seed + 1, (1, 1, 1, HEAD_DIM)), (1, 3, 1, HEAD_DIM))
    # rows: (m, n), (m + shift, n + shift), and (0, n - m), i.e. q^T R_{n-m} k
    rq = rotate(q, jnp.array([m, m + shift, 0]))
    rk = rotate(k, jnp.array([n, n + shift, n - m]))
    dots = np.asarray(jnp.sum(rq * rk, axis=-1)).ravel()
    # float32 angles at |position| <= 1024 are rounded by up to ~1e-4 rad; with |q||k| ~ 16 that
    # moves the dot product by ~1e-3, hence atol=2e-3 (a wrong rotation moves it by O(1)).
    np.testing.assert_allclose(dots[1], dots[0], atol=2e-3)
    np.testing.assert_allclose(dots[2], dots[0], atol=2e-3)


@pytest.mark.parametrize("name", NAMES)
@given(seed=seeds, scale=SCALES, positions=st.lists(st.integers(1, 8192), min_size=16, max_size=16))
def test_norms_are_kept_up_to_the_attention_factor(name, seed, scale, positions):
    enc = _encoding(name, scale)
    x = normal(seed, (2, 8, 2, HEAD_DIM))
    positions = jnp.asarray(positions).reshape(2, 8)
    y = _rotate(name, scale)(x, positions)
    np.testing.assert_allclose(
        np.linalg.norm(np.asarray(y), axis=-1),
        enc.attention_factor * np.linalg.norm(np.asarray(x), axis=-1),
        rtol=1e-5,
    )
    assert not np.allclose(np.asarray(y), enc.attention_factor * np.asarray(x), atol=1e-3)


@pytest.mark.parametrize("name", NAMES)
@given(seed=seeds)
def test_scale_one_is_plain_rope(name, seed):
    enc = _encoding(name, 1.0)
    plain = rope_inv_freq(HEAD_DIM)
    np.testing.assert_allclose(np.asarray(enc.inv_freq), np.asarray(plain), rtol=1e-6)
    assert enc.attention_factor == 1.0
    x = normal(seed, (2, 8, 2, HEAD_DIM))
    positions = jnp.arange(100, 108)
    np.testing.assert_allclose(
        np.asarray(_rotate(name, 1.0)(x, positions)),
        np.asarray(apply_rope(x, positions, plain, pairing=enc.pairing)),
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize("name", sorted(set(NAMES) - PLAIN))
@pytest.mark.parametrize("scale", [4.0, 16.0])
def test_extension_slows_rotation_down(name, scale):
    """Every extension keeps or lowers each frequency, and changes the table at scale > 1."""
    scaled = np.asarray(_encoding(name, scale).inv_freq)
    plain = np.asarray(rope_inv_freq(HEAD_DIM))
    assert np.all(scaled <= plain * (1 + 1e-6))
    assert scaled[-1] < plain[-1] / 2


@pytest.mark.parametrize("name", NAMES)
def test_eager_jit_vmap_and_finite_grads(name):
    enc = _encoding(name, 4.0)
    x = normal(0, (2, 4, 2, HEAD_DIM))
    positions = jnp.array([0, 3, 17, 900])
    assert_eager_jit_vmap(enc.rotate, x, positions, rtol=1e-5, atol=1e-5)
    w = normal(1, x.shape)
    assert_finite_grads(lambda x_, p: jnp.sum(enc.rotate(x_, p) * w), x, positions)


@pytest.mark.parametrize("name", NAMES)
def test_bfloat16_in_bfloat16_out(name):
    enc = _encoding(name, 4.0)
    x = normal(2, (1, 4, 2, HEAD_DIM))
    positions = jnp.array([0, 5, 1000, 3000])
    y16 = enc.rotate(x.astype(jnp.bfloat16), positions)
    assert y16.dtype == jnp.bfloat16 and y16.shape == x.shape
    y32 = enc.rotate(x.astype(jnp.bfloat16).astype(jnp.float32), positions)
    # the only bf16 rounding is the final cast (relative 2^-8): angles are float32 throughout.
    np.testing.assert_allclose(np.asarray(y16, np.float32), np.asarray(y32), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("name", NAMES)
def test_odd_head_dim_raises_naming_the_argument(name):
    with pytest.raises(ValueError, match="head_dim"):
        POSITIONS[name](15)
    enc = _encoding(name, 1.0)
    with pytest.raises(ValueError, match="inv_freq"):
        enc.rotate(jnp.zeros((1, 2, 1, HEAD_DIM + 2)), None)
    with pytest.raises(ValueError, match="x: head_dim must be even"):
        enc.rotate(jnp.zeros((1, 2, 1, HEAD_DIM + 1)), None)
