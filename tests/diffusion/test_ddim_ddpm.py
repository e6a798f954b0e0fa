"""DDIM determinism and inversion; DDPM / DDIM argument checks."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kexue_jax.diffusion import (
    ddim_decode,
    ddim_encode,
    ddim_sample,
    ddpm_sample,
    gaussian_eps_fn,
    linear_schedule,
)
from tests.diffusion.gaussian_case import COV, MEAN, gaussian_data

SCHEDULE = linear_schedule(1000)
EPS_FN = gaussian_eps_fn(SCHEDULE, MEAN, COV)


def test_ddim_eta0_is_deterministic_and_invertible():
    x0 = gaussian_data(64)
    wrong_fn = gaussian_eps_fn(SCHEDULE, MEAN, 1.3 * COV)

    @functools.partial(jax.jit, static_argnums=1)
    def round_trip(x0, num_steps, key):
        z = ddim_encode(EPS_FN, SCHEDULE, x0, num_steps=num_steps)
        back = ddim_decode(EPS_FN, SCHEDULE, z, num_steps=num_steps, key=key)  # eta = 0: key unused
        return back, ddim_decode(wrong_fn, SCHEDULE, z, num_steps=num_steps)

    # Both directions are first-order (Euler) steps: the round-trip error is O(1/S). Measured:
    # 0.083 at S = 100, 0.0084 at S = 1000.
    back_100, _ = round_trip(x0, 100, jax.random.key(0))
    back, back_wrong = round_trip(x0, 1000, jax.random.key(1))
    err, err_100 = float(jnp.max(jnp.abs(back - x0))), float(jnp.max(jnp.abs(back_100 - x0)))
    assert err < 1e-2, err
    assert 0.8 <= np.log10(err_100 / err) <= 1.2, (err_100, err)
    # With eta = 0 the key does not matter: another key, the same output.
    np.testing.assert_array_equal(np.asarray(round_trip(x0, 1000, jax.random.key(2))[0]), np.asarray(back))
    # A wrong model (another data covariance) does not invert: the same check fails.
    assert float(jnp.max(jnp.abs(back_wrong - x0))) > 10 * err


def test_ddim_eta1_is_ddpm_with_the_small_variance():
    """Song et al. §4.1: eta = 1 makes the DDIM update the DDPM one with sigma^2 = tilde beta."""
    @jax.jit
    def both(key):
        return (ddim_sample(EPS_FN, SCHEDULE, (256, 2), num_steps=50, eta=1.0, key=key),
                ddpm_sample(EPS_FN, SCHEDULE, (256, 2), num_steps=50, sigma="small", key=key),
                ddpm_sample(EPS_FN, SCHEDULE, (256, 2), num_steps=50, sigma="large", key=key))

    ddim, small, large = map(np.asarray, both(jax.random.key(0)))
    np.testing.assert_allclose(ddim, small, rtol=1e-4, atol=1e-4)
    assert np.max(np.abs(ddim - large)) > 1e-2  # the other variance choice differs


def test_sampler_errors():
    with pytest.raises(ValueError, match="eta"):
        ddim_sample(EPS_FN, SCHEDULE, (2, 2), eta=-1.0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="key"):
        ddim_decode(EPS_FN, SCHEDULE, jnp.zeros((2, 2)), eta=0.5)
    with pytest.raises(ValueError, match="shape"):
        ddpm_sample(EPS_FN, SCHEDULE, (2,), key=jax.random.key(0))
    with pytest.raises(ValueError, match="sigma"):
        ddpm_sample(EPS_FN, SCHEDULE, (2, 2), sigma="medium", key=jax.random.key(0))
    with pytest.raises(ValueError, match="num_steps"):
        ddpm_sample(EPS_FN, SCHEDULE, (2, 2), num_steps=1001, key=jax.random.key(0))
