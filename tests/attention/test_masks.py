"""Masks against their set definitions (numpy loops), and combination rules."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kexue_jax.attention import (
    block_diagonal_mask,
    causal_mask,
    combine_masks,
    local_window_mask,
    padding_mask,
)

sizes = st.integers(1, 7)
windows = st.one_of(st.none(), st.integers(0, 7))


def _brute(tq, tk, pred):
    return np.array([[pred(i, j) for j in range(tk)] for i in range(tq)], bool)[None, None]


@given(tq=sizes, tk=sizes, left=windows, right=windows)
def test_causal_and_local_window_match_definitions(tq, tk, left, right):
    np.testing.assert_array_equal(causal_mask(tq, tk), _brute(tq, tk, lambda i, j: j <= i))
    want = _brute(
        tq, tk, lambda i, j: (left is None or j >= i - left) and (right is None or j <= i + right)
    )
    np.testing.assert_array_equal(local_window_mask(tq, tk, left=left, right=right), want)


@given(lengths=st.lists(st.integers(0, 6), min_size=3, max_size=3), q_extra=st.integers(0, 2))
def test_padding_mask_matches_lengths(lengths, q_extra):
    lengths_arr = jnp.asarray(lengths, jnp.int32)
    m = np.asarray(padding_mask(lengths_arr, 6))
    assert m.shape == (len(lengths), 1, 1, 6)
    for b, n in enumerate(lengths):
        assert m[b, 0, 0].tolist() == [j < n for j in range(6)]
    q_lengths = jnp.minimum(lengths_arr + q_extra, 5)
    mq = np.asarray(padding_mask(lengths_arr, 6, query_lengths=q_lengths, tq=5))
    assert mq.shape == (len(lengths), 1, 5, 6)
    q_lengths = np.asarray(q_lengths)
    for b, n in enumerate(lengths):
        want = _brute(5, 6, lambda i, j, b=b, n=n: i < q_lengths[b] and j < n)[0, 0]
        np.testing.assert_array_equal(mq[b, 0], want)


@given(t=sizes, block=st.integers(1, 4))
def test_block_diagonal_and_combine(t, block):
    bd = block_diagonal_mask(t, block_size=block)
    np.testing.assert_array_equal(bd, _brute(t, t, lambda i, j: i // block == j // block))
    both = combine_masks(bd, None, causal_mask(t)[0])  # ranks 4 and 3 broadcast together
    np.testing.assert_array_equal(both, np.asarray(bd) & np.asarray(causal_mask(t)))
    assert combine_masks(None, None) is None


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: causal_mask(0), "tq"),
        (lambda: local_window_mask(3, left=-1), "left"),
        (lambda: padding_mask(jnp.array([1.0]), 3), "lengths: expected an integer dtype"),
        (lambda: padding_mask(jnp.array([[1]]), 3), "lengths: expected rank 1"),
        (lambda: padding_mask(jnp.array([1]), 3, query_lengths=jnp.array([1])), "tq"),
        (lambda: block_diagonal_mask(4, block_size=0), "block_size"),
        (lambda: combine_masks(jnp.ones((2, 2))), "masks\\[0\\]: expected a boolean mask"),
    ],
)
def test_invalid_arguments_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
