"""Linear attention: chunked = cumsum = scan = masked quadratic form; no feature map = (QKᵀ)V."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kexue_jax.attention import FEATURE_MAPS, efficient_attention, linear_attention, taylor_features
from kexue_jax._src.testing import dot_operand_dtypes
from tests.attention.arrays import BF16_TOLERANCE, bf16_and_rounded_f32, normals

B, T, H, HK, D, DV = 2, 7, 2, 1, 4, 3
seeds = st.integers(0, 2**31 - 1)


def _qkv(seed):
    return normals(seed, (B, T, H, D), (B, T, HK, D), (B, T, HK, DV))


@functools.cache
def _all_methods(feature_map, chunk_size):
    normalize = feature_map != "identity"  # identity has no sign: use the raw (φ(Q)φ(K)ᵀ)V form

    def run(q, k, v):
        return {
            m: linear_attention(
                q,
                k,
                v,
                feature_map=feature_map,
                is_causal=True,
                method=m,
                chunk_size=chunk_size,
                normalize=normalize,
            )
            for m in ("quadratic", "cumsum", "scan", "chunked")
        }

    return jax.jit(run)


# One chunk size per map keeps the compiles few: 3 and 2 leave a zero-padded last chunk (T = 7),
# 7 is a single chunk, 4 two unequal ones.
MAP_CHUNKS = [("elu+1", 3), ("relu", 7), ("taylor", 2), ("identity", 4)]


def test_every_feature_map_is_covered():
    assert {name for name, _ in MAP_CHUNKS} == set(FEATURE_MAPS)


@pytest.mark.parametrize(("feature_map", "chunk_size"), MAP_CHUNKS)
@given(seed=seeds)
def test_causal_methods_agree_with_masked_quadratic_form(feature_map, chunk_size, seed):
    outs = _all_methods(feature_map, chunk_size)(*_qkv(seed))
    ref = np.asarray(outs.pop("quadratic"))
    for method, out in outs.items():
        np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-4, atol=1e-5, err_msg=method)


@jax.jit
def _identity_forms(q, k, v):
    kw = {"feature_map": "identity", "normalize": False}
    return (
        linear_attention(q, k, v, **kw),
        linear_attention(q, k, v, is_causal=True, **kw),
        linear_attention(q, k, v, feature_map="elu+1"),
        linear_attention(q, k, v, feature_map="elu+1", method="quadratic"),
    )


@given(seed=seeds)
def test_without_feature_map_equals_qkt_v_and_associativity(seed):
    q, k, v = _qkv(seed)
    full, causal, assoc, quad = _identity_forms(q, k, v)
    q64, k64, v64 = (
        np.repeat(np.asarray(x, np.float64), H // x.shape[2], axis=2) for x in (q, k, v)
    )
    scores = np.einsum("bqhd,bkhd->bhqk", q64, k64)
    np.testing.assert_allclose(
        np.asarray(full), np.einsum("bhqk,bkhe->bqhe", scores, v64), rtol=1e-4, atol=1e-4
    )
    masked = scores * np.tril(np.ones((T, T)))
    np.testing.assert_allclose(
        np.asarray(causal), np.einsum("bhqk,bkhe->bqhe", masked, v64), rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(np.asarray(assoc), np.asarray(quad), rtol=1e-5, atol=1e-5)


@given(seed=seeds)
def test_taylor_kernel_is_one_plus_cosine(seed):
    q, k, _ = _qkv(seed)
    sim = np.einsum(
        "bqhd,bkhd->bhqk",
        np.asarray(jax.jit(taylor_features)(q)),
        np.repeat(np.asarray(jax.jit(taylor_features)(k)), H, axis=2),
    )
    qn, kn = (np.asarray(x, np.float64) / np.linalg.norm(x, axis=-1, keepdims=True) for x in (q, k))
    cos = np.einsum("bqhd,bkhd->bhqk", qn, np.repeat(kn, H, axis=2))
    np.testing.assert_allclose(sim, 1 + cos, rtol=1e-5, atol=1e-5)
    assert sim.min() >= -1e-6 and sim.max() <= 2 + 1e-6


@jax.jit
def _efficient_both(q, k, v):
    return efficient_attention(q, k, v), efficient_attention(q, k, v, is_causal=True)


@given(seed=seeds)
def test_efficient_attention_matches_explicit_softmaxes(seed):
    q, k, v = _qkv(seed)
    full, causal = _efficient_both(q, k, v)
    q64, k64, v64 = (
        np.repeat(np.asarray(x, np.float64), H // x.shape[2], axis=2) for x in (q, k, v)
    )
    pq = np.exp(q64) / np.exp(q64).sum(-1, keepdims=True)  # softmax over features
    for i in range(T):
        ek = np.exp(k64[:, : i + 1])
        pk = ek / ek.sum(1, keepdims=True)  # softmax over the prefix positions
        want = np.einsum("bhd,bthd,bthe->bhe", pq[:, i], pk, v64[:, : i + 1])
        np.testing.assert_allclose(np.asarray(causal[:, i]), want, rtol=1e-4, atol=1e-5)
    ek = np.exp(k64)
    want = np.einsum("bqhd,bthd,bthe->bqhe", pq, ek / ek.sum(1, keepdims=True), v64)
    np.testing.assert_allclose(np.asarray(full), want, rtol=1e-4, atol=1e-5)
    # rows of softmax_d(Q) softmax_t(K)ᵀ sum to one: constant values pass through unchanged
    ones = _efficient_both(q, k, jnp.ones_like(v))
    for out in ones:
        np.testing.assert_allclose(np.asarray(out), 1.0, rtol=1e-5)


def test_efficient_causal_is_stable_for_large_keys():
    q, k, v = _qkv(0)
    full, causal = _efficient_both(q, 200.0 * k, v)  # exp(200) overflows float32 without the max
    assert np.isfinite(np.asarray(causal)).all() and np.isfinite(np.asarray(full)).all()


@pytest.mark.parametrize("is_causal", [True, False])
def test_fast_forms_multiply_in_bf16_within_bf16_error(is_causal):
    # T = 37 with chunks of 8 pads the last chunk and carries the state across four boundaries.
    low, high = bf16_and_rounded_f32(*normals(1, (B, 37, H, 16), (B, 37, HK, 16), (B, 37, HK, 8)))
    fast = functools.partial(linear_attention, is_causal=is_causal, method="chunked", chunk_size=8)
    assert dot_operand_dtypes(fast, *low) == {"bfloat16"}  # every matrix product, not only some
    assert dot_operand_dtypes(fast, *high) == {"float32"}
    out = jax.jit(fast)(*low)
    assert out.dtype == jnp.bfloat16
    ref = linear_attention(*high, is_causal=is_causal, method="quadratic")
    err = float(jnp.max(jnp.abs(out.astype(jnp.float32) - ref)))
    assert 0 < err <= BF16_TOLERANCE * float(jnp.max(jnp.abs(ref)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"feature_map": "cosine"}, "feature_map"),
        ({"method": "fft"}, "method"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"k": jnp.zeros((B, T + 1, HK, D)), "v": jnp.zeros((B, T + 1, HK, DV))}, "tq == tk"),
        ({"v": jnp.zeros((B, T, HK))}, "v: expected shape"),
    ],
)
def test_invalid_arguments_raise_value_error(kwargs, match):
    args = {
        "q": jnp.zeros((B, T, H, D)),
        "k": jnp.zeros((B, T, HK, D)),
        "v": jnp.zeros((B, T, HK, DV)),
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        linear_attention(args.pop("q"), args.pop("k"), args.pop("v"), **args)
