"""Frequency tables: values derived by hand from the articles' formulas, and their relations."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kexue_jax.position import (
    dynamic_ntk_inv_freq,
    linear_inv_freq,
    ntk_aware_inv_freq,
    ntk_fixed_inv_freq,
    ntk_mixed_inv_freq,
    ntk_old_inv_freq,
    rope_inv_freq,
    yarn_attention_factor,
    yarn_inv_freq,
)

dims = st.sampled_from([8, 16, 64, 128])
scales = st.sampled_from([2.0, 8.0, 16.0, 12.0])


def _np(x):
    return np.asarray(x, np.float64)


def test_plain_table_by_hand():
    np.testing.assert_allclose(_np(rope_inv_freq(8)), [1.0, 0.1, 0.01, 0.001], rtol=1e-6)
    np.testing.assert_allclose(
        _np(rope_inv_freq(4, theta=500000.0)), [1.0, 500000.0**-0.5], rtol=1e-6
    )


@given(d=dims, k=scales)
def test_ntk_old_and_aware_are_base_changes(d, k):
    plain = _np(rope_inv_freq(d))
    np.testing.assert_allclose(
        _np(ntk_old_inv_freq(d, scale=k)), _np(rope_inv_freq(d, theta=1e4 * k)), rtol=1e-6
    )
    aware = _np(ntk_aware_inv_freq(d, scale=k))
    np.testing.assert_allclose(
        aware, _np(rope_inv_freq(d, theta=1e4 * k ** (d / (d - 2)))), rtol=1e-6
    )
    # bloc97: the highest frequency extrapolates, the lowest interpolates exactly k-fold
    assert aware[0] == plain[0] == 1.0
    np.testing.assert_allclose(aware[-1], plain[-1] / k, rtol=1e-5)


@given(d=dims, k=scales)
def test_fixed_divides_digit_i_by_k_to_the_2_i_plus_1_over_d(d, k):
    ratio = _np(ntk_fixed_inv_freq(d, scale=k)) / _np(rope_inv_freq(d))
    i = np.arange(d // 2)
    np.testing.assert_allclose(ratio, k ** (-2.0 * (i + 1) / d), rtol=1e-5)
    np.testing.assert_allclose(ratio[-1], 1 / k, rtol=1e-5)  # lowest frequency: exactly PI


@given(d=dims, k=scales)
def test_mixed_with_b_one_is_fixed_and_b_zero_is_pi(d, k):
    np.testing.assert_allclose(
        _np(ntk_mixed_inv_freq(d, scale=k, b=1.0)), _np(ntk_fixed_inv_freq(d, scale=k)), rtol=1e-6
    )
    np.testing.assert_allclose(
        _np(ntk_mixed_inv_freq(d, scale=k, b=0.0)), _np(linear_inv_freq(d, scale=k)), rtol=1e-6
    )


@given(d=dims, k=scales, b=st.sampled_from([0.25, 0.625, 0.75]))
def test_mixed_radix_constraints(d, k, b):
    """prod(lambda) = k, lambda_1 = exp(a) >= ... >= lambda_{d/2} >= 1 (9706)."""
    cumulative = _np(rope_inv_freq(d)) / _np(
        ntk_mixed_inv_freq(d, scale=k, b=b)
    )  # lambda_1...lambda_m
    np.testing.assert_allclose(cumulative[-1], k, rtol=1e-5)
    a = math.log(k) / (d / 2) ** b
    np.testing.assert_allclose(cumulative[0], math.exp(a), rtol=1e-5)
    lam = cumulative[1:] / cumulative[:-1]
    assert np.all(lam >= 1 - 1e-6) and np.all(np.diff(lam) <= 1e-6)


def test_mixed_by_hand_d4():
    """d = 4, k = 4, b = 0.5: a = ln 4 / sqrt 2; theta_i' = 1e4^(-i/2) exp(-a (i+1)^0.5)."""
    a = math.log(4) / math.sqrt(2)
    want = [math.exp(-a), 0.01 * math.exp(-a * math.sqrt(2))]
    np.testing.assert_allclose(_np(ntk_mixed_inv_freq(4, scale=4.0, b=0.5)), want, rtol=1e-6)
    assert abs(want[1] - 0.01 / 4) < 1e-12


@given(d=dims, n=st.integers(1, 4096))
def test_dynamic_ntk_is_plain_below_and_aware_above_training_length(d, n):
    got = _np(dynamic_ntk_inv_freq(d, n, training_length=1024))
    want = rope_inv_freq(d) if n <= 1024 else ntk_aware_inv_freq(d, scale=n / 1024)
    np.testing.assert_allclose(got, _np(want), rtol=2e-5)


def test_dynamic_ntk_hugging_face_factor_and_traced_length():
    # factor 2 at n = 4L: k = 2 * 4 - 1 = 7
    np.testing.assert_allclose(
        _np(dynamic_ntk_inv_freq(16, 4096, training_length=1024, scale=2.0)),
        _np(ntk_aware_inv_freq(16, scale=7.0)),
        rtol=2e-5,
    )
    table = jax.jit(lambda n: dynamic_ntk_inv_freq(16, n, training_length=1024))
    np.testing.assert_allclose(_np(table(3072)), _np(ntk_aware_inv_freq(16, scale=3.0)), rtol=2e-5)
    np.testing.assert_allclose(_np(table(100)), _np(rope_inv_freq(16)), rtol=1e-6)


def test_yarn_by_parts():
    d, s, length = 64, 8.0, 2048
    plain = _np(rope_inv_freq(d))
    got = _np(yarn_inv_freq(d, scale=s, original_max_position=length))
    turns = length * plain / (2 * math.pi)
    fast, slow = turns > 32, turns < 1
    assert fast.any() and slow.any() and (~fast & ~slow).any()
    np.testing.assert_allclose(got[fast], plain[fast], rtol=1e-6)  # extrapolated
    np.testing.assert_allclose(got[slow], plain[slow] / s, rtol=1e-6)  # interpolated
    i = int(np.flatnonzero(~fast & ~slow)[0])  # one ramp dimension, by hand
    gamma = (turns[i] - 1) / 31
    np.testing.assert_allclose(got[i], (1 - gamma) * plain[i] / s + gamma * plain[i], rtol=1e-6)
    np.testing.assert_allclose(
        _np(yarn_inv_freq(d, scale=1.0, original_max_position=length)), plain, rtol=1e-6
    )


def test_yarn_attention_factor_values():
    assert yarn_attention_factor(1.0) == 1.0
    assert yarn_attention_factor(0.5) == 1.0
    assert math.isclose(yarn_attention_factor(math.e), 1.1)
    assert math.isclose(yarn_attention_factor(16.0), 1.0 + 0.1 * math.log(16.0))


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="head_dim"):
        rope_inv_freq(7)
    with pytest.raises(ValueError, match="head_dim"):
        ntk_aware_inv_freq(2, scale=2.0)  # d/(d-2) undefined
    with pytest.raises(ValueError, match="scale"):
        ntk_fixed_inv_freq(8, scale=0.0)
    with pytest.raises(ValueError, match="theta"):
        rope_inv_freq(8, theta=-1.0)
    with pytest.raises(ValueError, match="b:"):
        ntk_mixed_inv_freq(8, scale=2.0, b=-0.5)
    with pytest.raises(ValueError, match="training_length"):
        dynamic_ntk_inv_freq(8, 10, training_length=0)
    with pytest.raises(ValueError, match="seq_len"):
        dynamic_ntk_inv_freq(8, np.arange(3), training_length=8)
    with pytest.raises(ValueError, match="alpha, beta"):
        yarn_inv_freq(8, scale=2.0, original_max_position=64, alpha=4.0, beta=2.0)
