"""Log-n scaling values: max(1, log n / log L)."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kexue_jax.position import apply_logn, logn_scale
from tests.position.arrays import normal


def test_values_by_hand():
    got = np.asarray(logn_scale(jnp.array([1, 100, 512, 1024, 4096, 512**2]), training_length=512))
    np.testing.assert_allclose(got, [1.0, 1.0, 1.0, 10 / 9, 12 / 9, 2.0], rtol=1e-6)
    assert got.dtype == np.float32


@given(seed=st.integers(0, 2**31 - 1), length=st.sampled_from([2, 4, 7]))
def test_queries_scaled_by_their_position(seed, length):
    q = normal(seed, (2, 16, 2, 4))
    out = np.asarray(apply_logn(q, None, training_length=length))
    factor = np.array([max(1.0, math.log(m + 1) / math.log(length)) for m in range(16)])
    np.testing.assert_allclose(out, np.asarray(q) * factor[None, :, None, None], rtol=1e-6)
    assert factor[-1] > 1  # the test exercises the scaled branch


def test_dtype_offsets_and_errors():
    q = normal(0, (1, 3, 1, 4)).astype(jnp.bfloat16)
    out = apply_logn(q, jnp.array([0, 15, 255]), training_length=16)
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(
        np.asarray(out, np.float32)[0, :, 0, 0],
        np.asarray(q, np.float32)[0, :, 0, 0] * [1.0, 1.0, 2.0],
        rtol=1e-2,
    )
    with pytest.raises(ValueError, match="training_length"):
        logn_scale(4, training_length=1)
    with pytest.raises(ValueError, match="positions"):
        apply_logn(q, jnp.arange(4), training_length=16)
