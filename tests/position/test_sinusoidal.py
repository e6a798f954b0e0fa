"""Sinusoidal PE: the article's numbers, norm d/2, relative dot products and block rotations."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kexue_jax.position import sinusoidal_embedding


def test_sum_of_cosines_matches_article_8231():
    """d = 128: sum_i cos(r theta_i) = 64, 62.09, 42.82, 30.54, 10.18 at r = 0, 1, 10, 100, 1000."""
    p = np.asarray(sinusoidal_embedding(jnp.array([7, 8, 17, 107, 1007]), 128), np.float64)
    dots = p[0] @ p.T
    np.testing.assert_allclose(
        dots, [64.0, 62.09, 42.82, 30.54, 10.18], atol=6e-3
    )  # article: 2 decimals


def test_layout_by_hand():
    p = np.asarray(sinusoidal_embedding(jnp.array([0.0, 2.0]), 4, theta=100.0))
    np.testing.assert_allclose(
        p, [[0, 1, 0, 1], [np.sin(2), np.cos(2), np.sin(0.2), np.cos(0.2)]], atol=1e-6
    )


@given(m=st.integers(-2000, 2000), n=st.integers(-2000, 2000), shift=st.integers(-2000, 2000))
def test_norm_relative_dot_and_block_rotation(m, n, shift):
    p = np.asarray(sinusoidal_embedding(jnp.array([m, n, m + shift, n + shift]), 16), np.float64)
    np.testing.assert_allclose(np.sum(p**2, axis=-1), 8.0, rtol=1e-5)
    np.testing.assert_allclose(p[0] @ p[1], p[2] @ p[3], atol=2e-3)  # float32 angles up to 4000 rad
    # p_{m+s} = block-rotation(s) p_m: (sin, cos)(a + b) from (sin, cos)(a)
    ps = np.asarray(sinusoidal_embedding(jnp.array([shift]), 16), np.float64)[0]
    sin_m, cos_m, sin_s, cos_s = p[0, 0::2], p[0, 1::2], ps[0::2], ps[1::2]
    np.testing.assert_allclose(p[2, 0::2], sin_m * cos_s + cos_m * sin_s, atol=2e-3)
    np.testing.assert_allclose(p[2, 1::2], cos_m * cos_s - sin_m * sin_s, atol=2e-3)


def test_odd_dim_raises():
    with pytest.raises(ValueError, match="dim"):
        sinusoidal_embedding(jnp.arange(3), 5)
