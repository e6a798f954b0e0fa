"""The Fréchet distance between Gaussians fitted to features: FID's formula in any feature space.

$d^2 = \\|\\mu_1 - \\mu_2\\|^2 + \\mathrm{tr}\\bigl(C_1 + C_2 - 2\\,(C_1^{1/2} C_2 C_1^{1/2})^{1/2}\\bigr)$,
the squared 2-Wasserstein distance between $\\mathcal N(\\mu_1, C_1)$ and $\\mathcal N(\\mu_2, C_2)$.

It is a **Fréchet distance in the given feature space**, and it is "FID" only when the features are
the 2048-d pool features of the Inception-v3 network of Heusel et al. (the TF-Slim / pytorch-fid
weights) on the standard number of samples; computed on the features of another network (e.g. a
small classifier trained on mnist5k) it must be labelled as such, and its values are not comparable
with published FIDs.

Numerics: everything runs in float64 NumPy on the host (statistics of a few thousand feature
vectors; no jit needed). The matrix square roots come from symmetric eigendecompositions
(:func:`numpy.linalg.eigh`), with negative eigenvalues from round-off clipped to 0:
$\\mathrm{tr}(C_1^{1/2} C_2 C_1^{1/2})^{1/2} = \\sum_i \\sqrt{\\lambda_i}$ for the eigenvalues
$\\lambda_i \\ge 0$ of the symmetric PSD matrix $C_1^{1/2} C_2 C_1^{1/2}$. This avoids
``scipy.linalg.sqrtm`` of the non-symmetric product $C_1 C_2$ (pytorch-fid's route), whose result
can pick up an imaginary part and needs an ``eps`` offset for singular covariances.

References:
    M. Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
    Equilibrium", NeurIPS 2017 (FID). D. C. Dowson, B. V. Landau, "The Fréchet distance between
    multivariate normal distributions", J. Multivariate Anal. 1982.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["feature_statistics", "frechet_distance"]


def _as_f64(name: str, x: ArrayLike) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: expected finite values")
    return a


def _sqrt_psd(c: np.ndarray) -> np.ndarray:
    """$C^{1/2}$ of a symmetric positive semi-definite matrix (eigenvalues < 0 clipped to 0)."""
    w, v = np.linalg.eigh(0.5 * (c + c.T))
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(mu1: ArrayLike, cov1: ArrayLike, mu2: ArrayLike, cov2: ArrayLike) -> float:
    """Squared Fréchet (2-Wasserstein) distance between $\\mathcal N(\\mu_1, C_1)$ and $\\mathcal N(\\mu_2, C_2)$.

    $\\|\\mu_1 - \\mu_2\\|^2 + \\mathrm{tr}(C_1 + C_2 - 2(C_1^{1/2} C_2 C_1^{1/2})^{1/2})$, computed in
    float64 through symmetric eigendecompositions (module docstring). A Fréchet distance in the
    feature space the statistics come from; it is FID only for Inception-v3 pool features.

    Args:
        mu1: mean ``[d]`` of the first feature set.
        cov1: covariance ``[d, d]`` of the first feature set (symmetric PSD).
        mu2: mean ``[d]`` of the second feature set.
        cov2: covariance ``[d, d]`` of the second feature set.

    Returns:
        The distance as a Python float, $\\ge 0$ (tiny negative round-off is clipped to 0).

    Raises:
        ValueError: when the shapes are not ``[d]``, ``[d, d]`` with one ``d``, or values are not finite.

    Example:
        >>> import numpy as np
        >>> round(frechet_distance(np.zeros(2), np.diag([4.0, 1.0]), np.ones(2), np.eye(2)), 6)
        3.0
    """
    mu1, mu2 = _as_f64("mu1", mu1), _as_f64("mu2", mu2)
    cov1, cov2 = _as_f64("cov1", cov1), _as_f64("cov2", cov2)
    if mu1.ndim != 1:
        raise ValueError(f"mu1: expected a vector [d], got shape {mu1.shape}")
    d = mu1.shape[0]
    for name, a, shape in (("mu2", mu2, (d,)), ("cov1", cov1, (d, d)), ("cov2", cov2, (d, d))):
        if a.shape != shape:
            raise ValueError(f"{name}: expected shape {shape} (d = {d} from mu1), got {a.shape}")
    s1 = _sqrt_psd(cov1)
    middle = s1 @ cov2 @ s1
    eig = np.linalg.eigvalsh(0.5 * (middle + middle.T))
    tr_sqrt = float(np.sum(np.sqrt(np.clip(eig, 0.0, None))))
    diff = mu1 - mu2
    value = float(diff @ diff) + float(np.trace(cov1)) + float(np.trace(cov2)) - 2.0 * tr_sqrt
    return max(value, 0.0)


def feature_statistics(features: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance of feature vectors, the inputs of :func:`frechet_distance`.

    Args:
        features: ``[n, d]`` feature vectors, $n \\ge 2$ (e.g. a classifier's penultimate layer on
            $n$ images; Inception-v3 pool features for FID).

    Returns:
        ``(mu [d], cov [d, d])`` in float64; ``cov`` divides by $n - 1$ (``numpy.cov``, as
        pytorch-fid and TTUR do).

    Raises:
        ValueError: when ``features`` is not ``[n, d]`` with $n \\ge 2$ or holds non-finite values.
    """
    f = _as_f64("features", features)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features: expected shape [n, d] with n >= 2, got {f.shape}")
    mu = f.mean(axis=0)
    centred = f - mu
    cov = centred.T @ centred / (f.shape[0] - 1)
    return mu, cov
