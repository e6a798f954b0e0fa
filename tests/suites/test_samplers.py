"""Shared invariants of every sampler in ``kexue_jax.diffusion.SAMPLERS``.

Each registered sampler is run with the exact score / noise predictor of a correlated Gaussian
data distribution (``kexue_jax.diffusion.gaussian``) and checked for: the sample mean and
covariance within 5 standard errors of the truth (and a deliberately wrong model failing the
same check), eager = jit = vmap over keys, float32 output, and a 1000-step sampler compiling
about as fast as a 10-step one (the loop is a ``lax.scan``, not unrolled).
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from kexue_jax._src.testing import assert_tree_allclose
from kexue_jax.diffusion import (
    SAMPLERS,
    VPSDE,
    ModelFns,
    gaussian_eps_fn,
    gaussian_score_fn,
    linear_schedule,
)
from tests.diffusion.gaussian_case import COV, MEAN, moment_z

NAMES = sorted(SAMPLERS)
SCHEDULE = linear_schedule(1000)
SDE = VPSDE()
N = 4000  # samples for the moment checks: 5 SE = 0.08 on the covariance, 0.07 on the mean
# Discretisation bias of the covariance, measured with 2e5 samples: <= 0.014 at 1000 steps and
# <= 0.04 at 200 (DDPM / DDIM eta = 1 with the "small" variance), so 250 steps stay within 2.5 SE.
STEPS = 250


def _model(cov) -> ModelFns:
    return ModelFns(SCHEDULE, gaussian_eps_fn(SCHEDULE, MEAN, cov), SDE, gaussian_score_fn(SDE, MEAN, cov))


# A linear model (the exact score of N(0, I) data under VP) for the structural checks: no eigh to
# compile, so those tests measure the sampler, not the oracle.
LINEAR = ModelFns(SCHEDULE, lambda x, t: jnp.sqrt(SCHEDULE.one_minus_alphas_cumprod[t])[:, None] * x,
                  SDE, lambda x, t: -x)


@functools.cache
def _moments_fn(name):
    """``(key, cov) -> samples``: one compile per sampler, for the right and the wrong model."""
    sampler = SAMPLERS[name]
    return jax.jit(lambda key, cov: sampler(_model(cov), (N, 2), num_steps=STEPS, key=key))


@pytest.mark.parametrize("name", NAMES)
def test_gaussian_mean_and_covariance(name):
    sample = _moments_fn(name)
    x = sample(jax.random.key(20260), jnp.asarray(COV, jnp.float32))
    assert x.shape == (N, 2) and x.dtype == jnp.float32
    mean_z, cov_z = moment_z(x)
    assert mean_z < 5.0 and cov_z < 5.0, (name, mean_z, cov_z)
    # The same check must reject a model of the wrong covariance (1.3x: 0.3 / 0.017 ~ 17 SE).
    x_wrong = sample(jax.random.key(20260), jnp.asarray(1.3 * COV, jnp.float32))
    assert max(moment_z(x_wrong)) > 5.0, name


@pytest.mark.parametrize("name", NAMES)
def test_eager_equals_jit_equals_vmap(name):
    sampler = SAMPLERS[name]
    keys = jax.random.split(jax.random.key(7), 2)

    def run(key):
        return sampler(LINEAR, (3, 2), num_steps=4, key=key)

    jitted = jax.jit(run)
    first = jitted(keys[0])
    assert first.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(first)))
    if sampler.fixed_steps:
        # (An adaptive sampler is one diffrax solve, which is jitted by diffrax itself: its eager
        # call is a jit call, so only jit and vmap are compared, to save two compiles.)
        assert_tree_allclose(run(keys[0]), first, rtol=1e-4, atol=1e-5)
    mapped = jax.vmap(run)(keys)
    assert_tree_allclose(mapped[0], first, rtol=1e-4, atol=1e-5)
    assert_tree_allclose(mapped[1], jitted(keys[1]), rtol=1e-4, atol=1e-5)
    # Different keys give different samples (the prior draw differs).
    assert not np.allclose(np.asarray(mapped[0]), np.asarray(mapped[1]))


def _lowered(name, num_steps):
    sampler = SAMPLERS[name]
    fn = jax.jit(lambda key: sampler(LINEAR, (4, 2), num_steps=num_steps, key=key))
    # An RBG key: its HLO is smaller than threefry's, so the compiles being timed are cheaper.
    return fn.lower(jax.random.key(0, impl="unsafe_rbg"))


def _compile_seconds(name, num_steps):
    # A fresh lowering each time: ``Lowered.compile()`` caches, a second call would time nothing.
    lowered = _lowered(name, num_steps)
    start = time.perf_counter()
    lowered.compile()
    return time.perf_counter() - start


@pytest.mark.parametrize("name", [n for n in NAMES if SAMPLERS[n].fixed_steps])
def test_scan_not_unrolled(name):
    few, many = _lowered(name, 10), _lowered(name, 1000)
    # Structure (deterministic): the program has the same number of lines; only the per-step
    # tables grow (a constant is printed on one line).
    lines_few, lines_many = len(few.as_text().splitlines()), len(many.as_text().splitlines())
    assert lines_many <= 1.05 * lines_few, (lines_few, lines_many)
    # Compile time: median of 3 interleaved compiles each. The machine may be shared, so a
    # round that exceeds 1.2 is measured once more (an unrolled loop is ~100x, not 1.3x, and
    # fails every round).
    ratios = []
    for _ in range(2):
        times_few, times_many = [], []
        for _ in range(3):
            times_few.append(_compile_seconds(name, 10))
            times_many.append(_compile_seconds(name, 1000))
        ratios.append(float(np.median(times_many) / np.median(times_few)))
        if ratios[-1] <= 1.2:
            break
    assert min(ratios) <= 1.2, ratios
