"""Evaluation metrics shared by every model family."""

from kexue_jax.metrics.bits_per_dim import bits_per_dim

__all__ = ["bits_per_dim"]
