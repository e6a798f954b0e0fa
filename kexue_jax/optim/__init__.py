"""Optimizers: a registry over optax (Lion, AdamW, Adam, SGD) and schedules with warm-up.

Optimizers that optax lacks (Tiger, ...) are added here as optax ``GradientTransformation``s and
registered, so that the shared optimizer test suite covers them.
"""

from kexue_jax.optim.registry import OPTIMIZERS, make_optimizer, make_schedule, register_optimizer

__all__ = ["OPTIMIZERS", "make_optimizer", "make_schedule", "register_optimizer"]
