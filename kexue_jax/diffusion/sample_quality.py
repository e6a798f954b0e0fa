"""Sample quality judged by a classifier: a Fréchet distance in its feature space, and its accuracy on conditional samples.

Two numbers for class-conditional image samples, both defined by a classifier trained on the same
data (task ``"classifier"`` with ``noise="none"``, :mod:`kexue_jax.diffusion.classifier_model`):

* :func:`classifier_frechet_distance`: the Fréchet distance
  $\\|\\mu_s - \\mu_r\\|^2 + \\mathrm{tr}(C_s + C_r - 2(C_s^{1/2} C_r C_s^{1/2})^{1/2})$ between Gaussians
  fitted to the classifier's penultimate features of the samples and of reference (test) images
  (:func:`~kexue_jax.metrics.frechet.frechet_distance`). It is the formula of FID, but **not FID**:
  FID is this distance in the pool features of the Inception-v3 network of Heusel et al., and
  distances in another feature space are not comparable with published FIDs. The name says so.
  Like FID it is biased upwards at small sample counts: compare models at equal counts, next to
  the distance between two sets of real images of the same size.
* :func:`conditional_accuracy`: the fraction of samples drawn for label $y$ that the classifier
  assigns to $y$ (argmax), the "classifier accuracy on samples" used to show the fidelity side of
  guidance (kexue.fm 9257; Ho & Salimans 2022, Fig. 4 use the Inception score's classifier).

These run on the host over batches (a few thousand images); the model functions are jitted once.

References:
    Su Jianlin, "生成扩散模型漫谈（九）：条件控制生成结果", https://kexue.fm/archives/9257.
    M. Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
    Equilibrium", NeurIPS 2017 (FID, the formula used here in another feature space).
    J. Ho, T. Salimans, "Classifier-Free Diffusion Guidance", 2022 (fidelity vs diversity as $w$ grows).
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from kexue_jax._src.typing import Array, Float
from kexue_jax.metrics.batched import apply_in_batches
from kexue_jax.metrics.frechet import feature_statistics, frechet_distance

__all__ = ["apply_in_batches", "classifier_frechet_distance", "conditional_accuracy", "quantize_pixels"]


def quantize_pixels(x: Float[Array, "b ..."], num_bins: int = 256) -> Float[Array, "b ..."]:
    """Images in $[-1, 1]$ rounded to the pixel levels $2k/(K - 1) - 1$, as the data are (NaN -> $-1$).

    A model's samples are continuous and may leave $[-1, 1]$; a classifier trained on the levels
    should judge them as the images they would be saved as.

    Args:
        x: images scaled to $[-1, 1]$.
        num_bins: $K$, the number of levels (256 for 8-bit).

    Returns:
        float32 images of ``x``'s shape on the $K$ levels.

    Example:
        >>> quantize_pixels(jnp.array([-3.0, 0.004, 0.9, jnp.nan]), 3).tolist()
        [-1.0, 0.0, 1.0, -1.0]
    """
    if isinstance(num_bins, bool) or int(num_bins) < 2:
        raise ValueError(f"num_bins: expected an int >= 2, got {num_bins!r}")
    half = (int(num_bins) - 1) / 2.0
    x = jnp.where(jnp.isfinite(x), jnp.asarray(x, jnp.float32), -1.0)
    return jnp.round((jnp.clip(x, -1.0, 1.0) + 1.0) * half) / half - 1.0


def classifier_frechet_distance(
    features_fn: Callable[[Array], Array],
    samples: ArrayLike,
    reference: ArrayLike,
    *,
    batch_size: int = 500,
) -> float:
    """Fréchet distance between ``samples`` and ``reference`` in a classifier's feature space (not FID).

    $d^2 = \\|\\mu_s - \\mu_r\\|^2 + \\mathrm{tr}(C_s + C_r - 2(C_s^{1/2} C_r C_s^{1/2})^{1/2})$ with
    $(\\mu, C)$ the mean and covariance of ``features_fn`` over each set (module docstring).

    Args:
        features_fn: ``images [b, ...] -> features [b, d]``, e.g. the penultimate layer of a clean
            classifier (:meth:`~kexue_jax.diffusion.classifier_model.ClassifierModel.features`),
            on inputs as that classifier was trained on them.
        samples: model samples ``[n, ...]``, $n \\ge 2$.
        reference: real images ``[m, ...]`` of the same event shape, $m \\ge 2$.
        batch_size: images per call of ``features_fn``.

    Returns:
        The squared distance, a float $\\ge 0$ (0 for two identical sets).

    Raises:
        ValueError: when the sets have different event shapes, fewer than 2 rows, or
            ``features_fn`` does not return ``[b, d]``.
    """
    samples, reference = np.asarray(samples), np.asarray(reference)
    if samples.shape[1:] != reference.shape[1:]:
        raise ValueError(f"samples, reference: expected the same event shape, got {samples.shape} and {reference.shape}")
    stats = []
    for name, x in (("samples", samples), ("reference", reference)):
        if x.ndim < 2 or x.shape[0] < 2:
            raise ValueError(f"{name}: expected shape [n, ...] with n >= 2, got {x.shape}")
        f = apply_in_batches(features_fn, x, batch_size=batch_size)
        if f.ndim != 2:
            raise ValueError(f"features_fn: expected features [b, d], got shape {f.shape} for {name}")
        stats.append(feature_statistics(f))
    (mu_s, cov_s), (mu_r, cov_r) = stats
    return frechet_distance(mu_s, cov_s, mu_r, cov_r)


def conditional_accuracy(
    logits_fn: Callable[[Array], Array],
    samples: ArrayLike,
    labels: ArrayLike,
    *,
    batch_size: int = 500,
) -> tuple[float, np.ndarray]:
    """The fraction of samples that the classifier assigns to the label they were drawn for.

    $\\frac1n\\sum_i [\\arg\\max_k \\ell_k(x_i) = y_i]$ with $\\ell$ = ``logits_fn``.

    Args:
        logits_fn: ``images [b, ...] -> logits [b, K]``.
        samples: ``[n, ...]`` samples, sample $i$ drawn for label ``labels[i]``.
        labels: int ``[n]``.
        batch_size: images per call of ``logits_fn``.

    Returns:
        ``(accuracy, per_class)``: the overall fraction, and the fraction for each label
        $0..K-1$ (NaN for a label with no sample).

    Raises:
        ValueError: when ``labels`` is not an integer ``[n]`` matching ``samples``, or
            ``logits_fn`` does not return ``[b, K]``.
    """
    samples, labels = np.asarray(samples), np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or samples.shape[:1] != labels.shape:
        raise ValueError(f"labels: expected integer labels [n] for samples [n, ...], got {labels.dtype} "
                         f"{labels.shape} for samples {samples.shape}")
    logits = apply_in_batches(logits_fn, samples, batch_size=batch_size)
    if logits.ndim != 2:
        raise ValueError(f"logits_fn: expected logits [b, K], got shape {logits.shape}")
    num_classes = logits.shape[1]
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(f"labels: expected values in 0..{num_classes - 1}, got {labels.min()}..{labels.max()}")
    correct = np.argmax(logits, axis=1) == labels
    per_class = np.array([correct[labels == k].mean() if np.any(labels == k) else np.nan for k in range(num_classes)])
    return float(correct.mean()), per_class
