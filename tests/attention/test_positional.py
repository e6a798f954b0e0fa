"""Attention under a position scheme: cached decoding equals the full pass for every scheme;
causality and windows; the schemes that must reduce to plain RoPE do; validation."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kexue_jax.attention import dot_product_attention
from kexue_jax.attention.positional import (
    LayerCache,
    PositionScheme,
    cached_attention,
    hfwa_schemes,
    init_layer_cache,
    positional_attention,
)
from kexue_jax.position import apply_rope, rope_inv_freq
from tests.attention.arrays import normals

B, T, H, HK, D = 2, 9, 4, 2, 8
L = 4  # training length of the length-dependent schemes: T > L exercises log-n and dynamic NTK

SCHEMES = {
    "rope": PositionScheme(),
    "nope": PositionScheme(rope=None),
    "pi": PositionScheme(rope="linear", rope_scale=3.0),
    "ntk_mixed_logn": PositionScheme(rope="ntk_mixed", rope_scale=3.0, logn=True, training_length=L),
    "yarn": PositionScheme(rope="yarn", rope_scale=3.0),
    "dynamic_ntk": PositionScheme(rope="dynamic_ntk", training_length=L),
    "local": PositionScheme(local_window=3),
    "rerope_logn": PositionScheme(rerope_window=3, logn=True, training_length=L),
    "leaky_rerope": PositionScheme(rerope_window=3, leaky_scale=4.0),
    "alibi": PositionScheme(rope=None, bias="alibi"),
    "t5": PositionScheme(rope=None, bias="t5", t5_buckets=8),
    "rope_t5_local": PositionScheme(bias="t5", t5_buckets=8, local_window=4),
}


def _inputs(seed: int, scheme: PositionScheme, *, rope_bias: bool = False):
    q, k, v, t5, qb, kb = normals(seed, (B, T, H, D), (B, T, HK, D), (B, T, HK, D), (8, H), (H, D), (HK, D))
    extra = dict(t5_table=t5 if scheme.bias == "t5" else None)
    if rope_bias:
        extra.update(q_bias=qb, k_bias=kb)
    return q, k, v, extra


def _decode_all(q, k, v, scheme, extra, prefill: int):
    cache = init_layer_cache(B, T + 2, HK, D)
    out, cache = cached_attention(q[:, :prefill], k[:, :prefill], v[:, :prefill], cache,
                                  start=0, scheme=scheme, **extra)
    outs = [out]
    for m in range(prefill, T):
        o, cache = cached_attention(q[:, m:m + 1], k[:, m:m + 1], v[:, m:m + 1], cache,
                                    start=m, scheme=scheme, **extra)
        outs.append(o)
    return jnp.concatenate(outs, axis=1), cache


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_cached_decoding_equals_the_full_prefix(name):
    scheme = SCHEMES[name]
    q, k, v, extra = _inputs(0, scheme)
    decoded, cache = _decode_all(q, k, v, scheme, extra, prefill=3)
    full = positional_attention(q, k, v, scheme=scheme, **extra)
    if scheme.rope == "dynamic_ntk":
        # The table follows the current length: decoding token m equals the prefix 0..m in full,
        # and differs from the whole sequence's row m < T - 1 once T > L (so the check can fail).
        rows = [positional_attention(q[:, :m + 1], k[:, :m + 1], v[:, :m + 1], scheme=scheme)[:, m]
                for m in range(T)]
        np.testing.assert_allclose(decoded, jnp.stack(rows, 1), atol=2e-5, rtol=1e-5)
        assert float(jnp.abs(decoded[:, L] - full[:, L]).max()) > 1e-3
    else:
        np.testing.assert_allclose(decoded, full, atol=2e-5, rtol=1e-5)
    # Keys are cached rotated exactly when their rotation is final.
    raw = jnp.concatenate([k, jnp.zeros((B, 2, HK, D))], axis=1)
    assert bool(jnp.allclose(cache.k, raw, atol=1e-6)) == (not scheme.rotated_cache)


def test_rope_bias_decoding_equals_full():
    scheme = PositionScheme(rerope_window=3, leaky_scale=2.0)
    for s in (PositionScheme(), scheme):
        q, k, v, extra = _inputs(1, s, rope_bias=True)
        decoded, _ = _decode_all(q, k, v, s, extra, prefill=2)
        np.testing.assert_allclose(decoded, positional_attention(q, k, v, scheme=s, **extra), atol=2e-5)
        # The biases matter (a test that could fail): without them the output changes.
        plain = positional_attention(q, k, v, scheme=s)
        assert float(jnp.abs(plain - decoded).max()) > 1e-3


@pytest.mark.parametrize("name", ["rope", "rerope_logn", "local", "t5"])
def test_no_gradient_from_future_or_out_of_window_tokens(name):
    scheme = SCHEMES[name]
    q, k, v, extra = _inputs(2, scheme)
    m = 6

    def row(kv):
        return positional_attention(q, kv[0], kv[1], scheme=scheme, **extra)[:, m].sum()

    gk, gv = jax.grad(row)((k, v))
    seen = np.zeros(T, bool)
    lo = 0 if scheme.local_window is None else m - scheme.local_window + 1
    seen[lo:m + 1] = True
    for g in (gk, gv):
        norms = np.asarray(jnp.abs(g).sum(axis=(0, 2, 3)))
        assert np.all(norms[~seen] == 0.0), norms
        assert np.all(norms[seen] > 0.0), norms


def test_schemes_that_must_equal_plain_rope():
    q, k, v, _ = _inputs(3, PositionScheme())
    plain = positional_attention(q, k, v, scheme=PositionScheme())
    same = [
        PositionScheme(rerope_window=T),  # window >= length: ReRoPE is RoPE
        PositionScheme(rerope_window=2, leaky_scale=1.0),  # Leaky with k = 1 is RoPE
        PositionScheme(logn=True, training_length=T),  # log-n is 1 up to the training length
        PositionScheme(rope="ntk_mixed", rope_scale=1.0),
        PositionScheme(rope="dynamic_ntk", training_length=T),
        PositionScheme(local_window=T),
    ]
    for s in same:
        np.testing.assert_allclose(positional_attention(q, k, v, scheme=s), plain, atol=2e-5, err_msg=str(s))
    # and the oracle: rotate by hand, then causal softmax attention
    inv = rope_inv_freq(D)
    ref = dot_product_attention(apply_rope(q, None, inv), apply_rope(k, None, inv), v, is_causal=True)
    np.testing.assert_allclose(plain, ref, atol=2e-5)
    differ = [PositionScheme(rerope_window=2), PositionScheme(logn=True, training_length=2),
              PositionScheme(local_window=2), PositionScheme(rope="linear", rope_scale=2.0)]
    for s in differ:
        assert float(jnp.abs(positional_attention(q, k, v, scheme=s) - plain).max()) > 1e-3, s


def test_logn_scales_queries_beyond_the_training_length():
    q, k, v, _ = _inputs(4, PositionScheme())
    s = PositionScheme(rope=None, logn=True, training_length=4)
    m = jnp.arange(T)
    factor = jnp.maximum(1.0, jnp.log(m + 1.0) / jnp.log(4.0))
    expected = positional_attention(q * factor[None, :, None, None], k, v, scheme=PositionScheme(rope=None))
    np.testing.assert_allclose(positional_attention(q, k, v, scheme=s), expected, atol=2e-5)


def test_unclipped_logn_scales_early_queries_down():
    q, k, v, _ = _inputs(6, PositionScheme())
    s = PositionScheme(rope=None, logn=True, logn_clip=False, training_length=4)
    m = jnp.arange(T)
    factor = jnp.log(m + 1.0) / jnp.log(4.0)  # 0 at m = 0, below 1 until m = 3
    expected = positional_attention(q * factor[None, :, None, None], k, v, scheme=PositionScheme(rope=None))
    np.testing.assert_allclose(positional_attention(q, k, v, scheme=s), expected, atol=2e-5)
    clipped = positional_attention(q, k, v, scheme=dataclasses.replace(s, logn_clip=True))
    assert float(jnp.abs(clipped[:, 1:3] - expected[:, 1:3]).max()) > 1e-3


def test_hfwa_schemes():
    schemes = hfwa_schemes(4, window=16, training_length=512)
    assert len(schemes) == 4
    assert all(s.rope == "rope" and s.local_window == 16 and not s.logn for s in schemes[:3])
    assert schemes[3].rope is None and schemes[3].local_window is None and schemes[3].logn
    assert not schemes[3].logn_clip


def test_scheme_validation():
    bad = [
        (dict(rope="nope"), "rope"),
        (dict(rope_scale=0.0), "rope_scale"),
        (dict(rope=None, rerope_window=4), "rerope_window"),
        (dict(leaky_scale=4.0), "leaky_scale"),
        (dict(rerope_window=0), "rerope_window"),
        (dict(local_window=0), "local_window"),
        (dict(bias="shaw"), "bias"),
        (dict(training_length=1), "training_length"),
    ]
    for kw, name in bad:
        with pytest.raises(ValueError, match=name):
            PositionScheme(**kw)
    s = PositionScheme()
    assert hash(s) == hash(dataclasses.replace(s))


def test_bad_inputs_raise_value_errors_naming_the_argument():
    scheme = SCHEMES["t5"]
    q, k, v, _ = _inputs(5, scheme)
    with pytest.raises(ValueError, match="t5_table"):
        positional_attention(q, k, v, scheme=scheme)
    with pytest.raises(ValueError, match="t5_table"):
        positional_attention(q, k, v, scheme=scheme, t5_table=jnp.zeros((7, H)))
    with pytest.raises(ValueError, match="q_bias"):
        positional_attention(q, k, v, scheme=PositionScheme(), q_bias=jnp.zeros((H, D)))
    with pytest.raises(ValueError, match="k"):
        positional_attention(q, k[:, :5], v[:, :5], scheme=PositionScheme())
    cache = init_layer_cache(B, T, HK, D)
    with pytest.raises(ValueError, match="cache.k"):
        cached_attention(q[:, :1], k[:, :1], v[:, :1], LayerCache(cache.k[:, :, :1], cache.v),
                         start=0, scheme=PositionScheme())
    with pytest.raises(ValueError, match="cache"):
        cached_attention(q, k, v, init_layer_cache(B, 4, HK, D), start=0, scheme=PositionScheme())
    with pytest.raises(ValueError, match="batch"):
        init_layer_cache(0, 4, HK, D)
