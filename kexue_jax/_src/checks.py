"""Static shape and dtype validation that raises ``ValueError`` naming the argument.

Every public function validates its inputs at trace time with these helpers so that a wrong
shape is reported as ``ValueError: x: expected shape (b, 28, 28, 1), got (4, 28, 28)`` instead of an
XLA trace or a silent broadcast. Shapes are static under ``jit``, so the checks cost nothing at run
time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(np.shape(x))


def _fmt(expected: Sequence[int | str | None]) -> str:
    parts = ["*" if e is None else str(e) for e in expected]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def check_rank(name: str, x: Any, rank: int | Sequence[int]) -> None:
    """Raise ``ValueError`` unless ``x.ndim`` is ``rank`` (or one of ``rank``)."""
    ranks = (rank,) if isinstance(rank, int) else tuple(rank)
    shape = _shape(x)
    if len(shape) not in ranks:
        want = " or ".join(str(r) for r in ranks)
        raise ValueError(f"{name}: expected rank {want}, got rank {len(shape)} with shape {shape}")


def check_shape(name: str, x: Any, expected: Sequence[int | str | None]) -> dict[str, int]:
    """Raise ``ValueError`` unless ``x``'s shape matches ``expected``.

    ``expected`` holds ints (must match), ``None`` (anything) and strings (named dimensions: every
    occurrence of the same name must have the same size). Returns the sizes bound to the names, so
    that several arguments can be checked against each other with :func:`check_dims`.
    """
    shape = _shape(x)
    if len(shape) != len(expected):
        raise ValueError(f"{name}: expected shape {_fmt(expected)}, got {shape}")
    bound: dict[str, int] = {}
    for got, want in zip(shape, expected, strict=True):
        if want is None:
            continue
        if isinstance(want, str):
            if bound.setdefault(want, got) != got:
                raise ValueError(
                    f"{name}: expected shape {_fmt(expected)} with equal '{want}' sizes, got {shape}"
                )
        elif got != want:
            raise ValueError(f"{name}: expected shape {_fmt(expected)}, got {shape}")
    return bound


def check_dims(bindings: Sequence[tuple[str, dict[str, int]]]) -> dict[str, int]:
    """Check that named dimensions agree across several :func:`check_shape` results."""
    merged: dict[str, tuple[str, int]] = {}
    for arg, bound in bindings:
        for dim, size in bound.items():
            if dim in merged and merged[dim][1] != size:
                other, other_size = merged[dim]
                raise ValueError(
                    f"{arg}: dimension '{dim}' is {size} but {other} has '{dim}' = {other_size}"
                )
            merged.setdefault(dim, (arg, size))
    return {dim: size for dim, (_, size) in merged.items()}


def check_same_shape(name_a: str, a: Any, name_b: str, b: Any) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` have the same shape."""
    if _shape(a) != _shape(b):
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got {_shape(a)} and {_shape(b)}"
        )


def check_floating(name: str, x: Any) -> None:
    """Raise ``ValueError`` unless ``x`` has a floating dtype."""
    dtype = jnp.result_type(x)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"{name}: expected a floating dtype, got {dtype} with shape {_shape(x)}")


def check_integer(name: str, x: Any) -> None:
    """Raise ``ValueError`` unless ``x`` has an integer dtype."""
    dtype = jnp.result_type(x)
    if not jnp.issubdtype(dtype, jnp.integer):
        raise ValueError(f"{name}: expected an integer dtype, got {dtype} with shape {_shape(x)}")


def check_positive(name: str, value: float | int) -> None:
    """Raise ``ValueError`` unless the Python scalar ``value`` is > 0."""
    if not value > 0:
        raise ValueError(f"{name}: expected a positive value, got {value!r}")


def check_in(name: str, value: Any, allowed: Sequence[Any]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {list(allowed)}, got {value!r}")
