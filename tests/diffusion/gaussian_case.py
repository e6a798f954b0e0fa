"""The Gaussian data distribution of the diffusion tests and its moment check.

$x_0 \\sim \\mathcal N(\\mu, \\Sigma)$ with correlated $\\Sigma$, for which every score is known in
closed form (``kexue_jax.diffusion.gaussian``). :func:`moment_z` reports the sample mean and
covariance errors in standard errors, so a test asserts ``< 5`` (and that a wrong model gives
``> 5``).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

MEAN = np.array([0.5, -0.3])
COV = np.array([[1.0, 0.6], [0.6, 0.8]])


def gaussian_data(n: int, seed: int = 0) -> jnp.ndarray:
    """``n`` float32 draws of N(MEAN, COV) from numpy (independent of the samplers' keys)."""
    rng = np.random.default_rng(seed)
    return jnp.asarray(MEAN + rng.normal(size=(n, 2)) @ np.linalg.cholesky(COV).T, jnp.float32)


def moment_z(x) -> tuple[float, float]:
    """Max |error| / standard error over the mean and over the covariance entries of samples ``x``."""
    x = np.asarray(x, np.float64)
    n = x.shape[0]
    mean_se = np.sqrt(np.diag(COV) / n)
    # Var of the sample covariance entry (i, j) of a Gaussian: (S_ii S_jj + S_ij^2) / n.
    cov_se = np.sqrt((np.outer(np.diag(COV), np.diag(COV)) + COV**2) / n)
    return float((np.abs(x.mean(0) - MEAN) / mean_se).max()), float((np.abs(np.cov(x.T) - COV) / cov_se).max())
