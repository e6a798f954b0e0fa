"""Every ``init_*`` helper: shapes, float32, spread, and determinism in the key.

Shapes are chosen to coincide ((5, 4), (6, 5, 4), (6, 6)) because compiling ``jax.random.normal``
costs about a second per new shape on a small CPU.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from kexue_jax.position import (
    init_deberta,
    init_learned_positions,
    init_rope_bias,
    init_shaw,
    init_t5_bias,
    init_xlnet,
)


def _leaves(tree):
    return jax.tree.leaves(tree)


def test_init_helpers():
    key = jax.random.key(0)
    made = {
        "learned": init_learned_positions(5, 4, stddev=1.0, key=key),
        "t5": init_t5_bias(5, 4, stddev=1.0, key=key),
        "shaw": init_shaw(2, 4, stddev=1.0, key=key),
        "xlnet": init_xlnet(5, 4, rel_dim=6, stddev=1.0, key=key),
        "deberta": init_deberta(3, 6, 5, 4, stddev=1.0, key=key),
    }
    shapes = {name: [leaf.shape for leaf in _leaves(tree)] for name, tree in made.items()}
    assert shapes == {
        "learned": [(5, 4)],
        "t5": [(5, 4)],
        "shaw": [(5, 4), (5, 4)],
        "xlnet": [(5, 4), (5, 4), (6, 5, 4)],  # u, v, w_r (dict keys sorted)
        "deberta": [(6, 6), (6, 5, 4), (6, 5, 4)],  # rel_embeddings, w_kr, w_qr
    }
    for tree in made.values():
        for leaf in _leaves(tree):
            assert leaf.dtype == jnp.float32
    everything = np.concatenate(
        [np.ravel(leaf) for tree in made.values() for leaf in _leaves(tree)]
    )
    assert 0.7 < everything.std() < 1.3 and abs(everything.mean()) < 0.2
    # tables drawn from one key differ from each other (keys are split) and repeat for the same key
    assert not np.allclose(made["shaw"]["rel_k"], made["shaw"]["rel_v"])
    np.testing.assert_array_equal(
        init_shaw(2, 4, stddev=1.0, key=key)["rel_v"], made["shaw"]["rel_v"]
    )
    np.testing.assert_array_equal(init_rope_bias(5, 4), np.zeros((5, 4)))
