"""bits_per_dim: known values, the dequantization offset, and its sign."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kexue_jax._src.testing import assert_eager_jit_vmap
from kexue_jax.metrics import bits_per_dim

D = 28 * 28


def test_uniform_pmf_over_256_levels_is_8_bits():
    log_prob = jnp.full((3,), D * math.log(1.0 / 256.0), jnp.float32)
    np.testing.assert_allclose(bits_per_dim(log_prob, num_dims=D), 8.0, rtol=1e-6)


def test_uniform_density_with_bin_width_is_8_bits():
    # U[0,1]^D has density 1; 8-bit bins on [0, 1] have width 1/256.
    np.testing.assert_allclose(bits_per_dim(jnp.zeros(2), num_dims=D, bin_width=1 / 256), 8.0, rtol=1e-6)
    # U[-1,1]^D has density 2^-D; bins on [-1, 1] have width 2/256.
    log_density = jnp.full((2,), -D * math.log(2.0), jnp.float32)
    np.testing.assert_allclose(bits_per_dim(log_density, num_dims=D, bin_width=2 / 256), 8.0, rtol=1e-6)


def test_binary_uniform_is_one_bit():
    np.testing.assert_allclose(bits_per_dim(jnp.array(D * math.log(0.5)), num_dims=D), 1.0, rtol=1e-6)


@settings(deadline=None, max_examples=25)
@given(seed=st.integers(0, 2**31 - 1), num_dims=st.integers(1, 4096))
def test_nonnegative_for_a_discrete_mass(seed, num_dims):
    # Any log-mass is <= 0; include exact zeros (a point mass) and tiny masses.
    u = jax.random.uniform(jax.random.key(seed), (16,))
    log_prob = jnp.where(u < 0.1, 0.0, -u * 1e4)
    bpd = bits_per_dim(log_prob, num_dims=num_dims)
    assert bool(jnp.all(bpd >= 0.0))


@settings(deadline=None, max_examples=25)
@given(lp=st.floats(-1e5, 1e3, allow_nan=False), h=st.floats(1e-4, 4.0))
def test_bin_width_is_exactly_the_offset(lp, h):
    with_offset = bits_per_dim(jnp.float32(lp), num_dims=D, bin_width=h)
    shifted = bits_per_dim(jnp.float32(lp + D * math.log(h)), num_dims=D)
    np.testing.assert_allclose(with_offset, shifted, rtol=1e-5, atol=1e-5)


def test_eager_jit_vmap_and_dtype():
    assert_eager_jit_vmap(lambda lp: bits_per_dim(lp, num_dims=D, bin_width=1 / 256), jnp.array(-1500.0))
    assert bits_per_dim(jnp.array(-1.0, jnp.bfloat16), num_dims=3).dtype == jnp.float32


def test_argument_errors():
    with pytest.raises(ValueError, match="num_dims"):
        bits_per_dim(jnp.zeros(2), num_dims=0)
    with pytest.raises(ValueError, match="num_dims"):
        bits_per_dim(jnp.zeros(2), num_dims=2.5)
    with pytest.raises(ValueError, match="bin_width"):
        bits_per_dim(jnp.zeros(2), num_dims=2, bin_width=0.0)
    with pytest.raises(ValueError, match="log_prob"):
        bits_per_dim(jnp.zeros(2, jnp.int32), num_dims=2)
