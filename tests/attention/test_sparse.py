"""Sparse attention: the patterns of Child et al. by their set definitions; gathered = dense masked."""

from __future__ import annotations

import functools

import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kexue_jax.attention import reference_attention, sparse_attention, sparse_mask
from tests.attention.arrays import normals

B, T, H, HK, D = 2, 9, 2, 1, 4


def _qkv(seed):
    return normals(seed, (B, T, H, D), (B, T, HK, D), (B, T, HK, D))


def _paper_pattern(t, pattern, l, c, causal):
    """Child et al. 2019 §4.2, written as sets: A(i) = A1(i) ∪ A2(i)."""
    out = np.zeros((t, t), bool)
    for i in range(t):
        for j in range(t):
            if pattern == "strided":
                seen = abs(i - j) < l or (i - j) % l == 0
            else:
                seen = j // l == i // l or j % l in range(l - c, l)
            out[i, j] = seen and (j <= i or not causal)
    return out


@given(
    t=st.integers(1, 12),
    l=st.integers(1, 5),
    c=st.integers(1, 5),
    pattern=st.sampled_from(["strided", "fixed"]),
    causal=st.booleans(),
)
def test_masks_match_the_set_definitions(t, l, c, pattern, causal):
    c = min(c, l)
    got = sparse_mask(t, pattern=pattern, block_size=l, num_summary=c, is_causal=causal)[0, 0]
    np.testing.assert_array_equal(got, _paper_pattern(t, pattern, l, c, causal))


CASES = [
    ("strided", 3, 1, True),
    ("strided", 2, 1, False),
    ("fixed", 3, 1, True),
    ("fixed", 4, 2, False),
]


@functools.cache
def _pair(pattern, l, c, causal):
    mask = sparse_mask(T, pattern=pattern, block_size=l, num_summary=c, is_causal=causal)
    return jax.jit(
        lambda q, k, v: (
            sparse_attention(
                q, k, v, pattern=pattern, block_size=l, num_summary=c, is_causal=causal
            ),
            reference_attention(q, k, v, mask=mask),
        )
    )


@pytest.mark.parametrize(("pattern", "l", "c", "causal"), CASES)
@given(seed=st.integers(0, 2**31 - 1))
def test_sparse_equals_dense_attention_with_the_pattern_mask(pattern, l, c, causal, seed):
    sparse, dense = _pair(pattern, l, c, causal)(*_qkv(seed))
    np.testing.assert_allclose(np.asarray(sparse), np.asarray(dense), rtol=1e-5, atol=1e-5)


def test_strided_rows_are_sub_quadratic():
    # With l = √t each row sees at most 2l + t/l keys: O(t√t) work in total, not O(t²).
    t, l = 64, 8
    mask = sparse_mask(t, pattern="strided", block_size=l, is_causal=False)[0, 0]
    assert mask.sum(axis=1).max() <= 2 * l + t // l
    assert mask.sum() < t * t // 2


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"pattern": "bigbird", "block_size": 2}, "pattern"),
        ({"block_size": 0}, "block_size"),
        ({"pattern": "fixed", "block_size": 2, "num_summary": 3}, "num_summary"),
    ],
)
def test_invalid_arguments_raise_value_error(kwargs, match):
    q, k, v = _qkv(0)
    with pytest.raises(ValueError, match=match):
        sparse_attention(q, k, v, **kwargs)


def test_cross_attention_lengths_raise_value_error():
    q, k, v = _qkv(0)
    with pytest.raises(ValueError, match="tq == tk"):
        sparse_attention(q[:, :4], k, v, block_size=2)
