"""GAU and FLASH: chunked mixed attention = its quadratic formula; Su's normalisation; causality."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kexue_jax.attention import (
    flash,
    gau,
    init_flash,
    init_gau,
    linear_attention,
    mixed_chunk_attention,
    mixed_chunk_attention_reference,
    relu2_attention,
)
from kexue_jax._src.testing import dot_operand_dtypes
from tests.attention.arrays import BF16_TOLERANCE, bf16_and_rounded_f32, key, normals

B, T, H, S, E = 2, 10, 1, 4, 3
DM = 6  # layer width d
seeds = st.integers(0, 2**31 - 1)


def _heads(seed):
    return normals(seed, *[(B, T, H, S)] * 4, (B, T, H, E))


@functools.cache
def _mixed_pair(chunk_size, is_causal):
    kw = {"chunk_size": chunk_size, "is_causal": is_causal}
    return jax.jit(
        lambda *a: (mixed_chunk_attention(*a, **kw), mixed_chunk_attention_reference(*a, **kw))
    )


# chunk 4 pads the last chunk (T = 10), 5 divides T, 10 is a single chunk (no linear part when causal)
@pytest.mark.parametrize(
    ("chunk_size", "is_causal"), [(4, True), (5, False), (5, True), (10, True)]
)
@given(seed=seeds)
def test_chunked_flash_equals_its_quadratic_formula(chunk_size, is_causal, seed):
    chunked, quadratic = _mixed_pair(chunk_size, is_causal)(*_heads(seed))
    np.testing.assert_allclose(np.asarray(chunked), np.asarray(quadratic), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("is_causal", [True, False])
def test_flash_multiplies_in_bf16_within_bf16_error(is_causal):
    low, high = bf16_and_rounded_f32(*normals(2, *[(B, 37, H, 16)] * 4, (B, 37, H, 8)))
    fast = functools.partial(mixed_chunk_attention, is_causal=is_causal, chunk_size=8)
    assert dot_operand_dtypes(fast, *low) == {"bfloat16"}
    out = jax.jit(fast)(*low)
    assert out.dtype == jnp.bfloat16
    ref = mixed_chunk_attention_reference(*high, is_causal=is_causal, chunk_size=8)
    err = float(jnp.max(jnp.abs(out.astype(jnp.float32) - ref)))
    assert 0 < err <= BF16_TOLERANCE * float(jnp.max(jnp.abs(ref)))


@jax.jit
def _global_only(q_lin, k_lin, v):
    zeros = jnp.zeros_like(q_lin)  # relu²(0) = 0: no local part
    return (
        mixed_chunk_attention(zeros, zeros, q_lin, k_lin, v, chunk_size=4),
        linear_attention(
            q_lin, k_lin, v, feature_map="identity", normalize=False, method="quadratic"
        ),
    )


@given(seed=seeds)
def test_non_causal_global_part_is_full_linear_attention_over_n(seed):
    _, _, q_lin, k_lin, v = _heads(seed)
    chunked, full = _global_only(q_lin, k_lin, v)
    np.testing.assert_allclose(np.asarray(chunked), np.asarray(full) / T, rtol=1e-4, atol=1e-5)


@jax.jit
def _relu2_forms(q, k, v):
    return relu2_attention(q, k, v), relu2_attention(q, k, v, is_causal=True)


@given(seed=seeds)
def test_gau_attention_is_relu2_over_n_s(seed):
    q, k, _, _, v = _heads(seed)
    full, causal = _relu2_forms(q, k, v)
    # A = relu²(QKᵀ/√s)/n = relu²(QKᵀ)/(ns): Su's normalisation in 8934
    a = (
        np.maximum(
            np.einsum("bqhs,bkhs->bhqk", np.asarray(q, np.float64), np.asarray(k, np.float64)), 0
        )
        ** 2
    )
    a /= T * S
    np.testing.assert_allclose(
        np.asarray(full), np.einsum("bhqk,bkhe->bqhe", a, v), rtol=1e-4, atol=1e-5
    )
    a_causal = a * np.tril(np.ones((T, T)))  # the causal mask keeps n, as in bert4keras
    np.testing.assert_allclose(
        np.asarray(causal), np.einsum("bhqk,bkhe->bqhe", a_causal, v), rtol=1e-4, atol=1e-5
    )


@functools.cache
def _layers():
    """GAU and FLASH parameters with every entry random (shapes from the init helpers).

    FLASH's local heads and the rest of its parameters are GAU's, and its global heads are zero.
    """
    shapes = jax.eval_shape(lambda: init_gau(d_model=DM, key_size=S, key=key(0)))
    assert jax.tree.map(
        lambda a: a.shape, jax.eval_shape(lambda: init_flash(d_model=DM, key_size=S, key=key(0)))
    ) == {**jax.tree.map(lambda a: a.shape, shapes), "gamma": (4, S), "beta": (4, S)}
    names = sorted(shapes)
    p_gau = dict(zip(names, normals(5, *[shapes[n].shape for n in names]), strict=True))
    zeros = jnp.zeros((2, S))
    p_flash = dict(
        p_gau,
        gamma=jnp.concatenate([p_gau["gamma"], zeros]),
        beta=jnp.concatenate([p_gau["beta"], zeros]),
    )
    return p_gau, p_flash


POSITION = 5  # inside the second chunk of 4: both intra-chunk and later-chunk leaks would show


@jax.jit
def _layer_checks(p_gau, p_flash, x, w):
    """Outputs on ``x``, and gradients of <w, causal output> w.r.t. ``x`` (one compile)."""
    outputs = (
        gau(p_gau, x),
        flash(p_flash, x, chunk_size=T),
        gau(p_gau, x, normalization="softmax"),
        gau(p_gau, x, normalization="softmax_plus", train_length=T),
    )
    p_global = dict(p_flash, gamma=p_flash["gamma"] + 1.0)  # non-zero global heads
    causal = (
        lambda x: flash(p_global, x, chunk_size=4, is_causal=True),
        lambda x: gau(p_gau, x, is_causal=True),
    )
    grads = [jax.grad(lambda x, f=f: jnp.sum(f(x) * w))(x) for f in causal]
    return outputs, grads


def test_flash_and_gau_layers():
    x, w = normals(3, (B, T, DM), (B, T, DM))
    w = w * (np.arange(T) == POSITION)[None, :, None]  # a cotangent on one output position
    (g, f, soft, plus), grads = _layer_checks(*_layers(), x, w)
    assert g.shape == f.shape == (B, T, DM)
    # one chunk spanning the sequence and zero global heads: FLASH's 1/(cs) is GAU's 1/(ns)
    np.testing.assert_allclose(np.asarray(f), np.asarray(g), rtol=1e-4, atol=1e-5)
    # log_T(T) = 1: softmax_plus at the training length is softmax
    np.testing.assert_allclose(np.asarray(plus), np.asarray(soft), rtol=1e-5, atol=1e-6)
    for grad in grads:  # causal layers: output POSITION has zero gradient from later tokens
        per_position = np.abs(np.asarray(grad)).sum(axis=(0, 2))
        assert np.all(per_position[POSITION + 1 :] == 0.0)
        assert per_position[: POSITION + 1].sum() > 0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda h: mixed_chunk_attention(*h, chunk_size=0), "chunk_size"),
        (lambda h: mixed_chunk_attention(h[0], h[1][:, :5], *h[2:]), "k_quad"),
        (lambda h: mixed_chunk_attention(h[0], h[1], h[2][..., :2], *h[3:]), "k_lin"),
        (
            lambda h: relu2_attention(h[0], h[1], h[4], mask=jnp.ones((T, T))),
            "mask: expected a boolean",
        ),
        (lambda h: gau(_layers()[0], h[0][..., 0, :]), "params\\['w_u'\\]"),
        (lambda h: gau(_layers()[0], jnp.zeros((B, T, DM)), normalization="l2"), "normalization"),
        (lambda h: flash(_layers()[0], jnp.zeros((B, T, DM))), "params\\['gamma'\\]"),
    ],
)
def test_invalid_arguments_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call(_heads(0))
