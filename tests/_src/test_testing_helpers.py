"""The test helpers themselves must be able to fail."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kexue_jax._src import random as krandom
from kexue_jax._src.testing import assert_eager_jit_vmap, assert_finite_grads, assert_tree_allclose, tree_allclose


def test_tree_allclose_detects_differences():
    a = {"w": jnp.ones(3), "b": [jnp.zeros(2)]}
    assert tree_allclose(a, jax.tree.map(lambda x: x + 1e-8, a))
    assert not tree_allclose(a, jax.tree.map(lambda x: x + 1e-2, a))
    assert not tree_allclose(a, {"w": jnp.ones(3)})
    with pytest.raises(AssertionError, match="max abs error"):
        assert_tree_allclose(a, jax.tree.map(lambda x: x + 1e-2, a))


def test_eager_jit_vmap_passes_pure_and_catches_batch_dependence():
    assert_eager_jit_vmap(lambda x: jnp.sin(x) * 2.0, jnp.arange(4.0))
    leaky = {"n": 0}

    def impure(x):  # depends on a Python counter: eager and jit results differ
        leaky["n"] += 1
        return x * leaky["n"]

    with pytest.raises(AssertionError):
        assert_eager_jit_vmap(impure, jnp.arange(1.0, 4.0))


def test_finite_grads_detects_nan():
    assert_finite_grads(lambda p: jnp.sum(p**2), jnp.ones(3))
    with pytest.raises(AssertionError, match="non-finite"):
        assert_finite_grads(lambda p: jnp.sum(jnp.sqrt(p)), jnp.zeros(3))


def test_keys_round_trip_and_step_keys_differ():
    key = krandom.make_key(0)
    data = krandom.key_data(key)
    assert data.dtype == jnp.uint32
    np.testing.assert_array_equal(krandom.key_data(krandom.wrap_key(data)), data)
    np.testing.assert_array_equal(krandom.key_data(krandom.as_key(data)), data)
    np.testing.assert_array_equal(krandom.key_data(krandom.as_key(0)), data)
    k1 = krandom.key_data(krandom.step_key(key, 1))
    k2 = krandom.key_data(krandom.step_key(key, 2))
    assert not np.array_equal(k1, k2)
    np.testing.assert_array_equal(k1, krandom.key_data(jax.random.fold_in(key, 1)))
    named = krandom.split_named(key, "a", "b")
    assert set(named) == {"a", "b"}
    assert not np.array_equal(krandom.key_data(named["a"]), krandom.key_data(named["b"]))
