"""Evaluation metrics shared by every model family."""

from kexue_jax.metrics.bits_per_dim import bits_per_dim
from kexue_jax.metrics.frechet import feature_statistics, frechet_distance
from kexue_jax.metrics.sample_distance import mmd, sliced_wasserstein

__all__ = ["bits_per_dim", "feature_statistics", "frechet_distance", "mmd", "sliced_wasserstein"]
