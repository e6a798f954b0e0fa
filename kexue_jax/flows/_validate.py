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


def apply_to_kept_half(apply, cparams: Any, x: Any, x1: Any, x2: Any, per_channel: int, name: str) -> Any:
    """Run a coupling's conditioner on the kept half ``x1`` of ``x`` and check its output size.

    The conditioner checks its own input channels; its error is re-raised naming ``name`` and the
    full shape of ``x`` (the user passed ``x``, not its half). Its output must hold ``per_channel``
    values per channel of the transformed half ``x2``.
    """
    try:
        out = apply(cparams, x1)
    except ValueError as err:
        raise ValueError(
            f"{name}: the channel count of {name} {tuple(np.shape(x))} does not fit the coupling's "
            f"params (its conditioner: {err})"
        ) from err
    if np.shape(out)[-1] != per_channel * np.shape(x2)[-1]:
        want = np.shape(x1)[-1] + np.shape(out)[-1] // per_channel
        raise ValueError(f"{name}: expected {want} channels (fixed by params), got {tuple(np.shape(x))}")
    return out

