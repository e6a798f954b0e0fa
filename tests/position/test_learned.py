"""Learned absolute PE: init, gather, NaN outside the table, gradients land on the used rows."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kexue_jax.position import learned_position_embedding
from tests.position.arrays import normal


def test_init_gather_and_out_of_range():
    table = normal(0, (64, 8))
    pos = jnp.array([[0, 5], [63, 5]])
    out = learned_position_embedding(table, pos)
    assert out.shape == (2, 2, 8)
    np.testing.assert_array_equal(np.asarray(out[1, 0]), np.asarray(table[63]))
    assert np.isnan(np.asarray(learned_position_embedding(table, jnp.array([64])))).all()


def test_gradient_counts_uses():
    table = jnp.zeros((6, 3))
    grad = jax.grad(lambda t: jnp.sum(learned_position_embedding(t, jnp.array([1, 1, 4]))))(table)
    np.testing.assert_array_equal(np.asarray(grad[:, 0]), [0, 2, 0, 0, 1, 0])


def test_errors_name_the_argument():
    table = jnp.zeros((6, 3))
    with pytest.raises(ValueError, match="positions"):
        learned_position_embedding(table, jnp.array([1.0]))
    with pytest.raises(ValueError, match="table"):
        learned_position_embedding(jnp.zeros((6,)), jnp.array([1]))
