"""Clipped relative indices shared by the table-based relative encodings (Shaw, DeBERTa)."""

from __future__ import annotations

import jax.numpy as jnp

from kexue_jax._src.typing import Array


def gather_relative(scores: Array, index: Array) -> Array:
    """``out[b, h, i, j] = scores[b, h, i, index[b', i, j]]`` for ``scores`` ``[b, h, tq, r]``.

    Computing ``scores`` over the ``r`` distinct relative positions and then gathering costs
    $O(t_q\\, r\\, d)$ instead of materialising a ``[tq, tk, d]`` embedding per pair.
    """
    index = jnp.broadcast_to(index[:, None], (scores.shape[0], scores.shape[1], *index.shape[1:]))
    return jnp.take_along_axis(scores, index, axis=-1)
