"""Input validation shared by the flow layers (private)."""

from __future__ import annotations

from typing import Any

import numpy as np

from kexue_jax._src.checks import check_floating, check_rank


def check_input(name: str, x: Any, *, rank: int | tuple[int, ...] = (2, 4)) -> None:
    """Raise ``ValueError`` unless ``x`` is a floating batch of the given rank(s)."""
    check_rank(name, x, rank)
    check_floating(name, x)


def check_channels(name: str, x: Any, channels: int) -> None:
    """Raise ``ValueError`` unless the last axis of ``x`` has ``channels`` entries."""
    shape = tuple(np.shape(x))
    if shape[-1] != channels:
        want = "(" + ", ".join(["*"] * (len(shape) - 1) + [str(channels)]) + ")"
        raise ValueError(
            f"{name}: expected shape {want} (channels fixed by params), got {shape}"
        )


def spatial_size(x: Any) -> int:
    """$H W$ for an NHWC batch, 1 for a ``[b, d]`` batch: the count of positions per example."""
    n = 1
    for s in np.shape(x)[1:-1]:
        n *= int(s)
    return n
