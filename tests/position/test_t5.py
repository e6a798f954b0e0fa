"""T5 buckets equal the published table (derived by hand); the bias gathers the table by bucket."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kexue_jax.position import relative_position_bucket, t5_bias
from tests.position.arrays import normal

# Hand-derived from T5's rule (num_buckets=32, max_distance=128), keyed by the distance n >= 0 of a
# key *before* the query (relative_position = key - query = -n).
# Bidirectional: 16 buckets a side, max_exact = 8, bucket = 8 + floor(8 ln(n/8) / ln 16) <= 15;
# e.g. n = 12: 8 ln 1.5 / ln 16 = 1.17 -> 9; n = 23: 8 ln 2.875 / ln 16 = 3.05 -> 11;
# n = 45: 4.98 -> 12; n = 46: 5.05 -> 13; n = 90: 6.98 -> 14; n = 91: 7.02 -> 15.
BIDIRECTIONAL = {
    0: 0,
    1: 1,
    2: 2,
    3: 3,
    4: 4,
    5: 5,
    6: 6,
    7: 7,
    8: 8,
    11: 8,
    12: 9,
    15: 9,
    16: 10,
    22: 10,
    23: 11,
    31: 11,
    32: 12,
    45: 12,
    46: 13,
    63: 13,
    64: 14,
    90: 14,
    91: 15,
    127: 15,
    128: 15,
    1000: 15,
}
# Causal: 32 buckets, max_exact = 16, bucket = 16 + floor(16 ln(n/16) / ln 8), at most 31;
# e.g. n = 19: 16 ln(19/16) / ln 8 = 1.32 -> 17; n = 24: 3.12 -> 19; n = 31: 5.09 -> 21;
# n = 64: 10.67 -> 26; n = 100: 14.10 -> 30; n = 127: 15.94 -> 31.
CAUSAL = {
    0: 0,
    1: 1,
    7: 7,
    8: 8,
    15: 15,
    16: 16,
    18: 16,
    19: 17,
    20: 17,
    24: 19,
    31: 21,
    32: 21,
    63: 26,
    64: 26,
    100: 30,
    127: 31,
    128: 31,
    1000: 31,
}


def _buckets(distances, **kw):
    # one padded shape for every call, so the eager ops compile once
    distances = list(distances)
    padded = np.zeros(64, np.int32)
    padded[: len(distances)] = distances
    return np.asarray(relative_position_bucket(-jnp.asarray(padded), **kw))[
        : len(distances)
    ].tolist()


def test_bidirectional_table():
    n = list(BIDIRECTIONAL)
    assert _buckets(n) == list(BIDIRECTIONAL.values())
    # keys after the query use the other 16 buckets
    future = [d for d in n if d > 0]
    assert _buckets([-d for d in future]) == [16 + BIDIRECTIONAL[d] for d in future]


def test_causal_table():
    n = list(CAUSAL)
    assert _buckets(n, bidirectional=False) == list(CAUSAL.values())
    assert _buckets([-1, -5, -300], bidirectional=False) == [0, 0, 0]  # future keys: bucket 0


def test_article_8130_ranges():
    """0..7 -> 0..7; 8-11 -> 8; 12-15 -> 9; 16-22 -> 10; 23-30 -> 11 (Su's survey)."""
    got = _buckets(range(31))
    assert got == list(range(8)) + [8] * 4 + [9] * 4 + [10] * 7 + [11] * 8


_t5_bias = jax.jit(t5_bias, static_argnums=(1, 2), static_argnames="bidirectional")


def test_bias_gathers_table_by_bucket_and_decodes_by_offset():
    table = normal(0, (32, 3))
    bias = np.asarray(_t5_bias(table, 5, 7))
    assert bias.shape == (1, 3, 5, 7) and bias.dtype == np.float32
    for i in range(5):
        for j in range(7):  # j - i in [-4, 6]: all exact buckets, future ones offset by 16
            bucket = i - j if j <= i else 16 + j - i
            np.testing.assert_array_equal(bias[0, :, i, j], np.asarray(table[bucket]))
    causal = _t5_bias(table, 7, 7, bidirectional=False)
    step = _t5_bias(table, 1, 7, bidirectional=False, q_positions=jnp.array([6]))
    np.testing.assert_array_equal(np.asarray(step), np.asarray(causal[:, :, 6:]))


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="table"):
        t5_bias(jnp.zeros((16, 2)), 3, 3, num_buckets=32)
    with pytest.raises(ValueError, match="relative_position"):
        relative_position_bucket(jnp.array([1.5]))
    with pytest.raises(ValueError, match="max_distance"):
        relative_position_bucket(jnp.array([1]), max_distance=4)
    with pytest.raises(ValueError, match="q_positions"):
        t5_bias(jnp.zeros((32, 2)), 3, 3, q_positions=jnp.arange(4))
