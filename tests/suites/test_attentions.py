"""Shared invariants of every attention in ``kexue_jax.attention`` (ATTENTIONS + PARAMETRIC_ATTENTIONS).

Each member ``fn(q, k, v, *, is_causal)`` is checked for: output shape and dtype (float32 and
bfloat16, causal or not), permutation equivariance for the members marked in
``PERMUTATION_EQUIVARIANT`` (and its failure for the others, so that the marks are needed),
causality (the output at ``i`` has exactly zero derivative w.r.t. ``q, k, v`` at ``j > i``) and
finite gradients (both from the same gradients), and eager = jit = vmap. One shape bucket, so
each member compiles a few times. A new member registered in ``kexue_jax.attention.registry`` gets
every check; mark it in ``PERMUTATION_EQUIVARIANT`` when it has no notion of position.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kexue_jax._src.testing import assert_eager_jit_vmap
from kexue_jax.attention import (
    ATTENTIONS,
    PARAMETRIC_ATTENTIONS,
    PERMUTATION_EQUIVARIANT,
    bind,
)
from tests.attention.arrays import key, normals

NAMES = sorted(ATTENTIONS) + sorted(PARAMETRIC_ATTENTIONS)
B, T, H, D = 2, 6, 2, 4
MAX_LENGTH = 8


@functools.cache
def _fn(name):
    return bind(name, num_heads=H, head_dim=D, max_length=MAX_LENGTH, key=key(7))


@functools.cache
def _jitted(name, is_causal):
    fn = _fn(name)
    return jax.jit(lambda q, k, v: fn(q, k, v, is_causal=is_causal))


def _qkv(seed, batch=B):
    return normals(seed, *[(batch, T, H, D)] * 3)


def test_registry_is_disjoint_and_marks_exist():
    assert not set(ATTENTIONS) & set(PARAMETRIC_ATTENTIONS)
    assert PERMUTATION_EQUIVARIANT <= set(ATTENTIONS) | set(PARAMETRIC_ATTENTIONS)


@pytest.mark.parametrize("name", NAMES)
def test_output_shape_and_dtype(name):
    fn = _fn(name)
    for dtype in (jnp.float32, jnp.bfloat16):
        q, k, v = (jax.ShapeDtypeStruct((B, T, H, D), dtype),) * 3
        for is_causal in (False, True):
            out = jax.eval_shape(lambda q, k, v, c=is_causal: fn(q, k, v, is_causal=c), q, k, v)
            assert (out.shape, out.dtype) == ((B, T, H, D), dtype), (dtype, is_causal)


@pytest.mark.parametrize("name", sorted(PERMUTATION_EQUIVARIANT))
@given(seed=st.integers(0, 2**31 - 1), perm_seed=st.integers(0, 2**31 - 1))
def test_permutation_equivariant_without_positions(name, seed, perm_seed):
    fn = _jitted(name, False)
    q, k, v = _qkv(seed)
    perm = np.random.default_rng(perm_seed).permutation(T)
    out = fn(q, k, v)
    out_perm = fn(q[:, perm], k[:, perm], v[:, perm])
    np.testing.assert_allclose(np.asarray(out_perm), np.asarray(out)[:, perm], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(set(NAMES) - PERMUTATION_EQUIVARIANT))
def test_unmarked_members_are_not_permutation_equivariant(name):
    # The marks are not decoration: a position-aware member must fail the property.
    fn = _jitted(name, False)
    q, k, v = _qkv(3)
    perm = np.roll(np.arange(T), 1)
    out = np.asarray(fn(q, k, v))[:, perm]
    out_perm = np.asarray(fn(q[:, perm], k[:, perm], v[:, perm]))
    assert not np.allclose(out_perm, out, rtol=1e-3, atol=1e-3)


def _both_modes(fn):
    """Non-causal and causal outputs in one call, so that one compile covers both code paths."""
    return lambda q, k, v: (fn(q, k, v, is_causal=False), fn(q, k, v, is_causal=True))


@functools.cache
def _position_grads(name):
    """Gradients w.r.t. (q, k, v) of <w, out> for both modes, ``w`` a cotangent chosen per call.

    With ``w`` zero except at one query position ``i``, the causal gradient is the derivative of
    output ``i`` alone; one compile serves every ``i``.
    """
    both = _both_modes(_fn(name))

    def grads(q, k, v, w):
        return [jax.grad(lambda qkv, m=m: jnp.sum(both(*qkv)[m] * w))((q, k, v)) for m in (0, 1)]

    return jax.jit(grads)


@pytest.mark.parametrize("name", NAMES)
@given(seed=st.integers(0, 2**31 - 1), position=st.integers(0, T - 1))
def test_causal_zero_gradient_from_future_and_finite_grads(name, seed, position):
    q, k, v, w = normals(seed, *[(B, T, H, D)] * 4)
    w = w * (np.arange(T) == position)[None, :, None, None]
    non_causal, causal = _position_grads(name)(q, k, v, w)
    for mode, grads in (("non-causal", non_causal), ("causal", causal)):
        for arg, g in zip("qkv", grads, strict=True):
            assert np.isfinite(np.asarray(g)).all(), f"{mode}: non-finite gradient w.r.t. {arg}"
    per_position = sum(np.abs(np.asarray(g, np.float64)).sum(axis=(0, 2, 3)) for g in causal)  # [T]
    future = per_position[position + 1 :]
    assert np.all(future == 0.0), f"output {position} depends on future tokens: {future}"
    assert per_position[: position + 1].sum() > 0  # and it does depend on the past (not vacuous)


@pytest.mark.parametrize("name", NAMES)
def test_eager_jit_vmap(name):
    # Causal mode: the path with the most operations (masks, scans, chunk states). Eager evaluation
    # compiles every primitive separately, so running both modes here would double the suite's time;
    # the non-causal path is compiled and differentiated by the tests above.
    fn = _fn(name)
    q, k, v = _qkv(5)
    assert_eager_jit_vmap(fn, q, k, v, batch_size=2, rtol=1e-5, atol=1e-5, is_causal=True)
