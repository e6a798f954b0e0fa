"""Continuous samplers on the VE and sub-VP SDEs (the shared suite runs everything on VP)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from kexue_jax.diffusion import (
    VESDE,
    SubVPSDE,
    euler_maruyama_sample,
    gaussian_score_fn,
    langevin_step,
    ode_sample,
    pc_sample,
)
from tests.diffusion.gaussian_case import COV, MEAN, moment_z

N, STEPS = 4000, 250

CASES = {
    # score_sde's CIFAR-10 VE setting: PC with snr = 0.16 (Langevin bias on the covariance,
    # measured with 1e5 samples: 0.016, i.e. 1 SE here).
    "ve_pc": (VESDE(), lambda sde, score, key: pc_sample(sde, score, (N, 2), num_steps=STEPS, snr=0.16, key=key)),
    "ve_ode": (VESDE(), lambda sde, score, key: ode_sample(sde, score, (N, 2), num_steps=STEPS, key=key)),
    "subvp_em": (SubVPSDE(), lambda sde, score, key: euler_maruyama_sample(sde, score, (N, 2), num_steps=STEPS,
                                                                           key=key)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_gaussian_moments(case):
    sde, sample = CASES[case]
    x = np.asarray(jax.jit(lambda key: sample(sde, gaussian_score_fn(sde, MEAN, COV), key))(jax.random.key(3)),
                   np.float64)
    mean_z, cov_z = moment_z(x)
    assert mean_z < 5 and cov_z < 5, (mean_z, cov_z)


def test_langevin_keeps_the_target():
    """Many corrector steps at fixed t, started at the target N(0, 1), stay there (up to ULA bias)."""
    score = lambda x, t: -x
    x = jax.random.normal(jax.random.key(0), (4000, 2))

    @jax.jit
    def run(x):
        def body(x, i):
            return langevin_step(score, x, t=None, snr=0.16, key=jax.random.fold_in(jax.random.key(1), i)), None
        return jax.lax.scan(body, x, np.arange(50))[0]

    out = np.asarray(run(x), np.float64)
    # Step ~ 2 * 0.16^2 = 0.05: ULA's stationary variance is 1/(1 - eps/2) ~ 1.013.
    assert np.all(np.abs(out.var(0) - 1.0) < 0.013 + 5 * np.sqrt(2 / 4000))
    # A wrong score (target variance 4) moves the variance away within 50 steps.
    wrong = jax.jit(lambda x: jax.lax.scan(
        lambda x, i: (langevin_step(lambda u, t: -u / 4, x, t=None, snr=0.16,
                                    key=jax.random.fold_in(jax.random.key(1), i)), None), x, np.arange(50))[0])
    assert np.all(np.asarray(wrong(x)).var(0) > 1.3)
