"""Shared invariants of every bijector in ``kexue_jax.flows.BIJECTORS``.

Each registered factory's default bijector is checked for: round trip and opposite log-dets after
a random perturbation of its params (so couplings are not the identity), log-det = slogdet of the
Jacobian of the flattened single-example map, eager = jit = vmap, float32 ``[b]`` log-dets,
finite gradients, ``ValueError`` naming the argument on a wrong rank, and that the leaves declared
fixed (``FIXED_KEYS``, kept out of the optimizer by the NNX shell) are exactly those without gradient.
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
from kexue_jax.flows import BIJECTORS
from kexue_jax.flows.bijector import is_fixed

NAMES = sorted(BIJECTORS)
IMAGE_SHAPE = (2, 4, 4, 2)
VECTOR_SHAPE = (2, 4)


def _shape(bij):
    return VECTOR_SHAPE if bij.event_ndims == 1 else IMAGE_SHAPE


def _sample(bij, key, shape=None):
    x = jax.random.normal(key, shape or _shape(bij), jnp.float32)
    return jax.nn.sigmoid(x) if bij.domain == "unit_interval" else x


@functools.partial(jax.jit, static_argnames="scale")
def perturb(params, key, scale=0.1):
    """Add N(0, scale²) noise to every leaf so that zero-initialised layers are not the identity."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, max(len(leaves), 1))
    noisy = [leaf + scale * jax.random.normal(k, leaf.shape, leaf.dtype)
             for leaf, k in zip(leaves, keys, strict=False)]
    return jax.tree.unflatten(treedef, noisy)


@functools.cache
def _setup(name):
    """The bijector, its jitted maps and perturbed params (one compile per name)."""
    bij = BIJECTORS[name]()
    x = _sample(bij, jax.random.key(0))
    params = perturb(bij.init(jax.random.key(1), x), jax.random.key(2))
    return bij, jax.jit(bij.forward), jax.jit(bij.inverse), params


@pytest.mark.parametrize("name", NAMES)
@given(seed=st.integers(0, 2**31 - 1))
def test_round_trip_and_opposite_log_dets(name, seed):
    bij, fwd, inv, params0 = _setup(name)
    kx, kp = jax.random.split(jax.random.key(seed))
    params = perturb(params0, kp)
    x = _sample(bij, kx)
    y, ld = fwd(params, x)
    x_back, ld_inv = inv(params, y)
    np.testing.assert_allclose(np.asarray(x_back), np.asarray(x), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(ld_inv), -np.asarray(ld), rtol=1e-4, atol=1e-4)
    assert ld.shape == ld_inv.shape == (x.shape[0],)
    assert ld.dtype == ld_inv.dtype == jnp.float32
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_log_det_is_slogdet_of_jacobian(name, direction):
    bij, fwd, inv, params = _setup(name)
    x = _sample(bij, jax.random.key(4))
    if direction == "inverse":
        x, _ = fwd(params, x)
    fn = bij.forward if direction == "forward" else bij.inverse
    event = x.shape[1:]

    def flat(v):
        return fn(params, v.reshape((1, *event)))[0].reshape(-1)

    for i in range(x.shape[0]):
        jac = jax.jacfwd(flat)(x[i].reshape(-1))
        sign, logabs = jnp.linalg.slogdet(jac)
        _, ld = fn(params, x[i : i + 1])
        assert float(sign) != 0.0
        np.testing.assert_allclose(float(ld[0]), float(logabs), rtol=1e-3, atol=2e-3)


@pytest.mark.parametrize("name", NAMES)
def test_eager_jit_vmap(name):
    bij, fwd, _, params = _setup(name)
    x = _sample(bij, jax.random.key(5))
    y, _ = fwd(params, x)
    for fn, v in ((bij.forward, x[0]), (bij.inverse, y[0])):
        single = lambda v, fn=fn: jax.tree.map(lambda a: a[0], fn(params, v[None]))
        assert_eager_jit_vmap(single, v, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_batch_rows_are_independent(name):
    bij, fwd, _, params = _setup(name)
    x = _sample(bij, jax.random.key(6))
    y, ld = fwd(params, x)
    y0, ld0 = bij.forward(params, x[:1])
    np.testing.assert_allclose(np.asarray(y[:1]), np.asarray(y0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ld[:1]), np.asarray(ld0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_finite_grads(name):
    bij, _, _, params = _setup(name)
    x = _sample(bij, jax.random.key(7))

    def loss(p, x):
        y, ld = bij.forward(p, x)
        return jnp.sum(ld) + jnp.sum(y**2)

    assert_finite_grads(loss, params, x)


@pytest.mark.parametrize("name", NAMES)
def test_fixed_leaves_are_exactly_the_leaves_without_gradient(name):
    # A leaf with no gradient that is not declared fixed would be decayed by AdamW; a declared
    # one with a gradient would silently stop learning.
    bij, _, _, params = _setup(name)
    x = _sample(bij, jax.random.key(11))
    y0, _ = bij.forward(params, x)
    r = jax.random.normal(jax.random.key(12), y0.shape, jnp.float32)

    def loss(p):
        y, ld = bij.forward(p, x)
        x_back, ld_inv = bij.inverse(p, y0)
        return jnp.sum(ld) + jnp.sum(y * r) + jnp.sum(ld_inv) + jnp.sum(x_back * x)

    grads = jax.jit(jax.grad(loss))(params)
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        no_grad = not np.any(np.asarray(g))
        assert no_grad == is_fixed(path), (jax.tree_util.keystr(path), no_grad)


@pytest.mark.parametrize("name", NAMES)
def test_wrong_rank_raises_naming_the_argument(name):
    bij, _, _, params = _setup(name)
    x = _sample(bij, jax.random.key(8))
    bad = x.reshape(-1)  # rank 1: never a valid batch
    with pytest.raises(ValueError, match=r"^x: "):
        bij.forward(params, bad)
    with pytest.raises(ValueError, match=r"^y: "):
        bij.inverse(params, bad)


@pytest.mark.parametrize("name", NAMES)
def test_init_is_a_function_of_the_key(name):
    bij = BIJECTORS[name]()
    x = _sample(bij, jax.random.key(9))
    a = bij.init(jax.random.key(10), x)
    b = bij.init(jax.random.key(10), x)
    for la, lb in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(la), np.asarray(lb))
