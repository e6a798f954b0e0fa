"""split_module / merge_module: the bridge between NNX modules and the engine's pytrees."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from kexue_jax._src.testing import assert_tree_allclose
from kexue_jax.nn import MLP, merge_module, split_module


class _WithStats(nnx.Module):
    def __init__(self, rngs):
        self.mlp = MLP(3, [8] * 11, 2, rngs=rngs)  # 12 layers: keys 0..11 sort differently as strings
        self.norm = nnx.BatchNorm(2, rngs=rngs)
        self.count = nnx.Variable(jnp.zeros((), jnp.int32))

    def __call__(self, x):
        self.count[...] += 1
        return self.norm(self.mlp(x))


def _plain(tree) -> bool:
    if isinstance(tree, dict):
        return type(tree) is dict and all(_plain(v) for v in tree.values())
    return isinstance(tree, jax.Array)


def _stringify(tree):
    return {str(k): _stringify(v) for k, v in tree.items()} if isinstance(tree, dict) else tree


def test_round_trip_plain_dicts_and_same_outputs():
    module = _WithStats(nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (5, 3))
    graphdef, params, state = split_module(module)
    assert _plain(params) and _plain(state)
    assert set(state) == {"norm", "count"} and "kernel" in params["mlp"]["layers"][11]
    rebuilt = merge_module(graphdef, params, state)
    rebuilt.norm.use_running_average = module.norm.use_running_average = True
    np.testing.assert_allclose(rebuilt(x), module(x), rtol=1e-6)
    _, params2, _ = split_module(rebuilt)
    assert_tree_allclose(params2, params)


def test_string_keys_restore_into_the_right_layers():
    """nnx.merge is positional: '10' < '2' as strings would silently permute layers."""
    module = _WithStats(nnx.Rngs(0))
    graphdef, params, state = split_module(module)
    for i in range(12):
        params["mlp"]["layers"][i]["bias"] = jnp.full_like(params["mlp"]["layers"][i]["bias"], float(i))
    rebuilt = merge_module(graphdef, _stringify(params), _stringify(state))
    got = [float(rebuilt.mlp.layers[i].bias[...][0]) for i in range(12)]
    assert got == [float(i) for i in range(12)]


def test_merge_under_jit_grad_and_state_update():
    module = _WithStats(nnx.Rngs(0))
    graphdef, params, state = split_module(module)
    x = jax.random.normal(jax.random.key(1), (5, 3))

    @jax.jit
    def loss(params, state, x):
        m = merge_module(graphdef, params, state)
        y = m(x)
        _, _, new_state = split_module(m)
        return jnp.sum(y**2), new_state

    (val, new_state), grads = jax.value_and_grad(loss, has_aux=True)(params, state, x)
    assert jnp.isfinite(val)
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    assert int(new_state["count"]) == 1  # the mutation is returned, not lost
    assert not np.allclose(new_state["norm"]["mean"], state["norm"]["mean"])


def test_mismatched_trees_raise_value_error():
    module = _WithStats(nnx.Rngs(0))
    graphdef, params, state = split_module(module)
    renamed = dict(params)
    renamed["encoder"] = renamed.pop("mlp")
    with pytest.raises(ValueError, match="params"):
        merge_module(graphdef, renamed, state)
    missing = jax.tree.map(lambda a: a, params)
    del missing["mlp"]["layers"][3]["bias"]
    with pytest.raises(ValueError, match="params"):
        merge_module(graphdef, missing, state)
    with pytest.raises(ValueError, match="state"):
        merge_module(graphdef, params, {})
