"""Synthesizer: the invariants of kexue.fm 7430 (input-independence, row-locality, rank, mixtures)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kexue_jax.attention import (
    dense_synthesizer_logits,
    factorized_dense_synthesizer_logits,
    factorized_random_synthesizer_logits,
    init_dense_synthesizer,
    init_factorized_dense_synthesizer,
    init_factorized_random_synthesizer,
    init_random_synthesizer,
    mixture_logits,
    random_synthesizer_logits,
    synthesizer_attention,
)
from tests.attention.arrays import key, normals

B, T, M, H, N = 2, 6, 5, 2, 8
seeds = st.integers(0, 2**31 - 1)


# Parameter shapes; test_init_helpers_make_these_shapes ties them to the init_* helpers.
SHAPES = {
    "dense": {"w1": (H, M, 4), "b1": (H, 4), "w2": (H, 4, N), "b2": (H, N)},
    "random": {"r": (H, N, N)},
    "fr": {"r1": (H, N, 2), "r2": (H, N, 2)},
    "fd": {
        "w1": (H, M, 4),
        "b1": (H, 4),
        "w_a": (H, 4, 2),
        "b_a": (H, 2),
        "w_b": (H, 4, 4),
        "b_b": (H, 4),
    },
}
INITS = {
    "dense": lambda key: init_dense_synthesizer(
        d_model=M, num_heads=H, hidden=4, max_length=N, key=key
    ),
    "random": lambda key: init_random_synthesizer(num_heads=H, max_length=N, key=key),
    "fr": lambda key: init_factorized_random_synthesizer(
        num_heads=H, max_length=N, rank=2, key=key
    ),
    "fd": lambda key: init_factorized_dense_synthesizer(
        d_model=M, num_heads=H, hidden=4, a=2, c=4, key=key
    ),
}


def test_init_helpers_make_these_shapes():
    for name, init in INITS.items():
        params = jax.eval_shape(init, key(0))
        assert {k: (p.shape, p.dtype) for k, p in params.items()} == {
            k: (s, jnp.float32) for k, s in SHAPES[name].items()
        }


def _setup(seed):
    """x, v and random (not zero-bias) parameters in one draw."""
    names = [(group, k) for group in SHAPES for k in SHAPES[group]]
    arrays = normals(seed, (B, T, M), (B, T, H, 3), *[SHAPES[g][k] for g, k in names])
    out = {"x": arrays[0], "v": arrays[1]}
    for (group, k), a in zip(names, arrays[2:], strict=True):
        out.setdefault(group, {})[k] = a
    return out


@jax.jit
def _logits(s, x):
    return {
        "dense": dense_synthesizer_logits(x, **s["dense"]),
        "random": random_synthesizer_logits(s["random"]["r"], T),
        "fr": factorized_random_synthesizer_logits(s["fr"]["r1"], s["fr"]["r2"], T),
        "fd": factorized_dense_synthesizer_logits(x, **s["fd"]),
    }


@given(seed=seeds, row=st.integers(0, T - 1))
def test_dense_row_depends_only_on_its_own_token(seed, row):
    s = _setup(seed)
    x2 = s["x"] + (np.arange(T)[None, :, None] != row)  # change every other token
    a, b = _logits(s, s["x"]), _logits(s, x2)
    for name in ("dense", "fd"):
        np.testing.assert_allclose(
            np.asarray(a[name][:, :, row]), np.asarray(b[name][:, :, row]), rtol=1e-6
        )
        assert not np.allclose(np.asarray(a[name]), np.asarray(b[name]))  # ...and the rest moved
    for name in ("random", "fr"):  # input independent
        np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]))


@given(seed=seeds)
def test_factorized_ranks_and_softmax_rows(seed):
    s = _setup(seed)
    logits = _logits(s, s["x"])
    assert logits["fr"].shape == (1, H, T, T)
    for h in range(H):
        assert np.linalg.matrix_rank(np.asarray(logits["fr"][0, h], np.float64), tol=1e-4) <= 2
    # factorized dense: row i over the Kronecker layout j = p*c + r is B1[i, p] * B2[i, r]: rank one
    full = jax.jit(factorized_dense_synthesizer_logits)(
        jnp.pad(s["x"], ((0, 0), (0, 8 - T), (0, 0))), **s["fd"]
    )  # t = a*c = 8, all columns
    rows = np.asarray(full, np.float64).reshape(B, H, 8, 2, 4)
    assert max(np.linalg.svd(r, compute_uv=False)[1] for r in rows.reshape(-1, 2, 4)) < 1e-5
    out = jax.jit(synthesizer_attention)(logits["dense"], jnp.ones_like(s["v"]))
    np.testing.assert_allclose(np.asarray(out), 1.0, rtol=1e-6)  # rows of softmax(B) sum to one


def test_mixture_weights_are_softmax_normalised():
    a, b = jnp.zeros((1, 1, 2, 2)), jnp.ones((1, 1, 2, 2))
    np.testing.assert_allclose(np.asarray(mixture_logits([a, b], jnp.array([0.0, 0.0]))), 0.5)
    w = jnp.array([0.0, jnp.log(3.0)])  # α = (1/4, 3/4)
    np.testing.assert_allclose(np.asarray(mixture_logits([a, b], w)), 0.75, rtol=1e-6)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s: dense_synthesizer_logits(jnp.zeros((B, N + 1, M)), **s["dense"]), "max_length"),
        (lambda s: dense_synthesizer_logits(jnp.zeros((B, T, M + 1)), **s["dense"]), "w1"),
        (lambda s: random_synthesizer_logits(s["random"]["r"][:, :, :3], T), "r: expected shape"),
        (
            lambda s: factorized_random_synthesizer_logits(
                s["fr"]["r1"], s["fr"]["r2"][..., :1], T
            ),
            "r2",
        ),
        (lambda s: mixture_logits([jnp.zeros((1, 1, 2, 2))], jnp.zeros(2)), "weights"),
        (lambda s: random_synthesizer_logits(s["random"]["r"], N + 1), "max_length"),
    ],
)
def test_invalid_arguments_raise_value_error(call, match):
    s = _setup(0)
    with pytest.raises(ValueError, match=match):
        call(s)
