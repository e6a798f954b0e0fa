"""The validation helpers raise ValueError naming the argument and both shapes."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

from kexue_jax._src import checks
from kexue_jax._src.numerics import logsumexp_f32, mean_f32, num_event_dims, sum_except_batch, sum_f32


@given(st.lists(st.integers(1, 4), min_size=1, max_size=4))
def test_check_shape_accepts_matching_and_binds_names(shape):
    x = np.zeros(shape)
    expected = ["b"] + [None] * (len(shape) - 1)
    assert checks.check_shape("x", x, expected) == {"b": shape[0]}


@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.integers(0, 3))
def test_check_shape_rejects_wrong_size_naming_argument_and_shapes(shape, which):
    which = which % len(shape)
    expected = list(shape)
    expected[which] += 1
    with pytest.raises(ValueError) as e:
        checks.check_shape("images", np.zeros(shape), expected)
    msg = str(e.value)
    assert msg.startswith("images:") and str(tuple(shape)) in msg


def test_check_shape_named_dims_must_agree():
    checks.check_shape("x", np.zeros((3, 3)), ["n", "n"])
    with pytest.raises(ValueError, match="equal 'n'"):
        checks.check_shape("x", np.zeros((3, 4)), ["n", "n"])


def test_check_dims_across_arguments():
    a = checks.check_shape("mean", np.zeros((2, 5)), ["b", "d"])
    b = checks.check_shape("log_var", np.zeros((2, 6)), ["b", "d"])
    with pytest.raises(ValueError, match="log_var: dimension 'd' is 6 but mean has 'd' = 5"):
        checks.check_dims([("mean", a), ("log_var", b)])


def test_rank_dtype_and_value_checks():
    with pytest.raises(ValueError, match=r"x: expected rank 4, got rank 3 with shape \(1, 2, 3\)"):
        checks.check_rank("x", np.zeros((1, 2, 3)), 4)
    checks.check_rank("x", np.zeros((1, 2, 3)), (3, 4))
    with pytest.raises(ValueError, match="floating"):
        checks.check_floating("x", jnp.zeros(3, jnp.int32))
    with pytest.raises(ValueError, match="integer"):
        checks.check_integer("y", jnp.zeros(3))
    with pytest.raises(ValueError, match="a and b must have the same shape"):
        checks.check_same_shape("a", np.zeros(2), "b", np.zeros(3))
    with pytest.raises(ValueError, match="num_bins"):
        checks.check_positive("num_bins", 0)
    with pytest.raises(ValueError, match="kind: expected one of"):
        checks.check_in("kind", "c", ["a", "b"])


def test_float32_reductions_of_bfloat16_inputs():
    x = jnp.full((4, 4096), 1.0 + 2.0**-7, jnp.bfloat16)
    # bf16 accumulation would lose the small increments; float32 keeps them
    assert sum_f32(x).dtype == jnp.float32
    np.testing.assert_allclose(float(sum_f32(x)), 4 * 4096 * (1 + 2.0**-7), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(sum_except_batch(x)), 4096 * (1 + 2.0**-7), rtol=1e-6)
    assert mean_f32(x).dtype == jnp.float32
    np.testing.assert_allclose(float(logsumexp_f32(jnp.zeros(8, jnp.bfloat16))), np.log(8), rtol=1e-6)
    assert num_event_dims((7, 28, 28, 1)) == 784
