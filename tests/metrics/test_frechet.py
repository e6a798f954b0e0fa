"""Fréchet distance: zero on identical statistics, the closed form for commuting (diagonal)
covariances, symmetry, invariance under a common rotation, agreement with an independent
formula, shape errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kexue_jax.metrics import feature_statistics, frechet_distance


def _random_stats(rng: np.random.Generator, d: int) -> tuple[np.ndarray, np.ndarray]:
    a = rng.normal(size=(d, d))
    return rng.normal(size=d), a @ a.T / d + 0.1 * np.eye(d)


def _rotation(rng: np.random.Generator, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


@given(st.integers(0, 2**31 - 1), st.sampled_from([1, 3, 16]))
def test_identical_statistics_give_zero(seed, d):
    mu, cov = _random_stats(np.random.default_rng(seed), d)
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-9 * np.trace(cov))


@given(st.integers(0, 2**31 - 1), st.sampled_from([1, 4, 32]))
def test_diagonal_covariances_match_the_closed_form(seed, d):
    rng = np.random.default_rng(seed)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    a, b = rng.uniform(0.0, 3.0, size=d), rng.uniform(0.0, 3.0, size=d)
    a[0] = 0.0  # a singular covariance is allowed
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


@given(st.integers(0, 2**31 - 1))
def test_symmetric_and_invariant_under_a_common_rotation(seed):
    rng = np.random.default_rng(seed)
    d = 6
    (mu1, c1), (mu2, c2) = _random_stats(rng, d), _random_stats(rng, d)
    value = frechet_distance(mu1, c1, mu2, c2)
    assert value > 0
    np.testing.assert_allclose(frechet_distance(mu2, c2, mu1, c1), value, rtol=1e-9)
    q = _rotation(rng, d)
    rotated = frechet_distance(q @ mu1, q @ c1 @ q.T, q @ mu2, q @ c2 @ q.T)
    np.testing.assert_allclose(rotated, value, rtol=1e-9)


def test_agrees_with_the_sqrtm_of_the_product_formula():
    # tr (C1 C2)^{1/2} through the eigenvalues of the (non-symmetric) product, which are real and
    # >= 0: an independent route to the same trace term (pytorch-fid's sqrtm(C1 C2)).
    rng = np.random.default_rng(0)
    (mu1, c1), (mu2, c2) = _random_stats(rng, 10), _random_stats(rng, 10)
    tr_sqrt = np.sum(np.sqrt(np.linalg.eigvals(c1 @ c2).real))
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(c1) + np.trace(c2) - 2 * tr_sqrt
    np.testing.assert_allclose(frechet_distance(mu1, c1, mu2, c2), expected, rtol=1e-9)


def test_feature_statistics_are_mean_and_unbiased_covariance_and_converge():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(50, 3))
    mu, cov = feature_statistics(f)
    np.testing.assert_allclose(mu, f.mean(0), rtol=1e-12)
    np.testing.assert_allclose(cov, np.cov(f, rowvar=False), rtol=1e-12)
    assert mu.dtype == cov.dtype == np.float64
    # two large samples of one Gaussian: the distance goes to 0 (O(d^2/n)); shifted by s: -> s^2
    x, y = rng.normal(size=(20000, 4)), rng.normal(size=(20000, 4))
    same = frechet_distance(*feature_statistics(x), *feature_statistics(y))
    shifted = frechet_distance(*feature_statistics(x), *feature_statistics(y + 2.0))
    assert same < 5e-3
    np.testing.assert_allclose(shifted, 16.0, rtol=0.01)


def test_mismatched_or_malformed_shapes_raise_value_errors():
    mu, cov = np.zeros(3), np.eye(3)
    with pytest.raises(ValueError, match="mu2"):
        frechet_distance(mu, cov, np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="cov2"):
        frechet_distance(mu, cov, mu, np.eye(4))
    with pytest.raises(ValueError, match="cov1"):
        frechet_distance(mu, np.eye(2), mu, cov)
    with pytest.raises(ValueError, match="mu1"):
        frechet_distance(np.zeros((3, 1)), cov, mu, cov)
    with pytest.raises(ValueError, match="cov1"):
        frechet_distance(mu, np.full((3, 3), np.nan), mu, cov)
    with pytest.raises(ValueError, match="features"):
        feature_statistics(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="features"):
        feature_statistics(np.zeros(5))
