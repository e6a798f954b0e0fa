"""apply_in_batches: padded fixed-size batches give the unbatched result with one compiled program."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kexue_jax.diffusion.sample_quality import apply_in_batches as sample_quality_apply_in_batches
from kexue_jax.metrics.batched import apply_in_batches


def test_sample_quality_reexports_the_one_implementation():
    assert sample_quality_apply_in_batches is apply_in_batches


@pytest.mark.parametrize("n", [1, 4, 5, 11])
def test_batches_equal_one_call_and_compile_once(n):
    shapes = []

    def fn(v):
        shapes.append(v.shape)  # runs once per trace
        return jnp.tanh(v @ jnp.ones((3, 2))) + v[:, :1]

    x = np.random.default_rng(n).standard_normal((n, 3)).astype(np.float32)
    out = apply_in_batches(fn, x, batch_size=4)
    np.testing.assert_allclose(out, np.asarray(fn(jnp.asarray(x))), rtol=1e-6, atol=1e-6)
    assert out.shape == (n, 2) and isinstance(out, np.ndarray)
    assert shapes[:-1] == [(4, 3)], shapes  # one trace at the padded size (the last entry is the reference)


def test_device_arrays_and_a_precompiled_function_without_rejit():
    compiled = jax.jit(lambda params, v: v * params["scale"])
    params = {"scale": jnp.float32(3.0)}
    x = jnp.arange(14.0, dtype=jnp.float32).reshape(7, 2)
    out = apply_in_batches(lambda v: compiled(params, v), x, batch_size=3, jit=False)
    np.testing.assert_allclose(out, 3.0 * np.asarray(x))


def test_bad_inputs_raise_value_errors():
    with pytest.raises(ValueError, match="batch_size"):
        apply_in_batches(lambda v: v, np.zeros((2, 1)), batch_size=0)
    with pytest.raises(ValueError, match="x: expected at least one row"):
        apply_in_batches(lambda v: v, np.zeros((0, 3)))
    with pytest.raises(ValueError, match="x: expected at least one row"):
        apply_in_batches(lambda v: v, np.float32(1.0))
