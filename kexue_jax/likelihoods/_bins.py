"""Shared bookkeeping for discretized likelihoods of ``num_bins``-level data on ``[low, high]``."""

from __future__ import annotations

import jax.numpy as jnp

from kexue_jax._src.typing import Array


def check_bins(num_bins: int, low: float, high: float) -> None:
    """Validate the static discretisation arguments, raising ``ValueError`` naming them."""
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 2:
        raise ValueError(f"num_bins: expected an int >= 2, got {num_bins!r}")
    if not float(low) < float(high):
        raise ValueError(f"low, high: expected low < high, got low={low!r}, high={high!r}")


def half_width(num_bins: int, low: float, high: float) -> float:
    """Half the spacing of the levels $low + k\\,(high-low)/(num\\_bins-1)$."""
    return (float(high) - float(low)) / (2.0 * (num_bins - 1))


def edge_masks(x: Array, num_bins: int, low: float, high: float) -> tuple[Array, Array]:
    """Boolean masks of the lowest and highest bins (which take the tails to $\\mp\\infty$).

    The bin of ``x`` is the nearest level, so data that sit exactly on the levels (or carry a
    little rounding error) are classified correctly; values outside ``[low, high]`` fall into
    the edge bins.
    """
    k = jnp.round((x - low) / (2.0 * half_width(num_bins, low, high)))
    return k <= 0, k >= num_bins - 1
