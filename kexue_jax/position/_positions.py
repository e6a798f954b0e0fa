"""Shared validation of position arguments and the layout of relative-position matrices."""

from __future__ import annotations

import math

import jax.numpy as jnp

from kexue_jax._src.checks import check_dims, check_floating, check_rank, check_shape
from kexue_jax._src.typing import Array, ArrayLike


def as_positions(
    name: str, positions: ArrayLike | None, length: int, batch: int | None = None
) -> Array:
    """Positions as ``[b', t]`` with ``b'`` in ``{1, batch}``; ``None`` means ``arange(t)``.

    Accepts ``[t]`` (shared by the batch) or ``[b, t]``. Raises ``ValueError`` naming ``name``.
    """
    if positions is None:
        return jnp.arange(length, dtype=jnp.int32)[None]
    positions = jnp.asarray(positions)
    check_rank(name, positions, (1, 2))
    if positions.ndim == 1:
        check_shape(name, positions, [length])
        return positions[None]
    check_shape(name, positions, [None, length])
    if batch is not None and positions.shape[0] not in (1, batch):
        raise ValueError(f"{name}: expected shape (1 or {batch}, {length}), got {positions.shape}")
    return positions


def relative_matrix(q_positions: Array, k_positions: Array) -> Array:
    """$r_{ij} = m_i - n_j$ (query position minus key position), shape ``[b', tq, tk]``."""
    return q_positions[..., :, None] - k_positions[..., None, :]


def as_bias(rel_values: Array) -> Array:
    """``[b', tq, tk]`` (or ``[tq, tk]``) → ``[b', 1, tq, tk]`` so it broadcasts over heads."""
    if rel_values.ndim == 2:
        rel_values = rel_values[None]
    return rel_values[:, None]


def default_logit_scale(head_dim: int, logit_scale: float | None) -> float:
    """``logit_scale``, else $1/\\sqrt{d}$ (``jax.nn.dot_product_attention``'s default scale)."""
    return 1.0 / math.sqrt(head_dim) if logit_scale is None else float(logit_scale)


def check_qk(q: Array, k: Array, *, k_name: str = "k") -> dict[str, int]:
    """Check floating ``q`` ``[b, tq, h, d]``, ``k`` ``[b, tk, h, d]``; return b, h, d, tq, tk."""
    bq = check_heads("q", q)
    bk = check_heads(k_name, k)
    check_floating("q", q)
    check_floating(k_name, k)
    dims = check_dims([("q", {n: bq[n] for n in "bhd"}), (k_name, {n: bk[n] for n in "bhd"})])
    return {**dims, "tq": bq["t"], "tk": bk["t"]}


def check_heads(name: str, x: Array) -> dict[str, int]:
    """Check ``x`` is ``[b, t, h, d]`` and return the bound sizes."""
    check_rank(name, x, 4)
    return check_shape(name, x, ["b", "t", "h", "d"])
