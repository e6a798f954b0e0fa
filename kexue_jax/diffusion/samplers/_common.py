"""Argument checks and time grids shared by the samplers (private)."""

from __future__ import annotations

import jax.numpy as jnp

from kexue_jax._src.typing import Array


def check_sample_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Raise ``ValueError`` unless ``shape`` is ``(b, ...)`` of positive ints with rank >= 2."""
    shape = tuple(shape)
    if len(shape) < 2 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f"shape: expected (batch, *event) of positive ints, rank >= 2, got {shape}")
    return shape


def check_num_steps(num_steps: int) -> None:
    """Raise ``ValueError`` unless ``num_steps`` is a positive int."""
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps: expected a positive int, got {num_steps!r}")


def check_time_grid(ts: Array) -> None:
    """Raise ``ValueError`` unless ``ts`` is a float vector of at least two times."""
    if jnp.ndim(ts) != 1 or jnp.shape(ts)[0] < 2:
        raise ValueError(f"ts: expected shape (n + 1,) with n >= 1, got {jnp.shape(ts)}")
    if not jnp.issubdtype(jnp.result_type(ts), jnp.floating):
        raise ValueError(f"ts: expected a floating dtype, got {jnp.result_type(ts)}")


def reverse_time_grid(T: float, eps: float, num_steps: int) -> Array:
    """``num_steps + 1`` float32 times evenly from ``T`` down to ``eps``."""
    if not 0.0 <= eps < T:
        raise ValueError(f"eps: expected 0 <= eps < T = {T}, got {eps!r}")
    return jnp.linspace(T, eps, num_steps + 1, dtype=jnp.float32)
