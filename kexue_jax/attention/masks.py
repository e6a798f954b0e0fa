"""Boolean attention masks: causal, padding (from lengths), local window, and their combination.

Every mask is a boolean array broadcastable to ``[b, h, tq, tk]`` (``True`` = the query may attend
to the key), the convention of :func:`jax.nn.dot_product_attention`. Masks built from shapes alone
are ``[1, 1, tq, tk]`` NumPy constants (static under ``jit``: no device work, no compile); padding
masks depend on run-time lengths and are ``[b, 1, 1 or tq, tk]`` JAX arrays.

References:
    Vaswani et al. 2017, "Attention Is All You Need", arXiv:1706.03762 (causal masking).
    https://kexue.fm/archives/9431 (local attention as the baseline for length extrapolation).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from kexue_jax._src.checks import check_integer, check_rank
from kexue_jax._src.typing import Array, Bool, Int


def _positions(tq: int, tk: int | None) -> tuple[np.ndarray, np.ndarray]:
    tk = tq if tk is None else tk
    for name, value in (("tq", tq), ("tk", tk)):
        if not (isinstance(value, int) and value > 0):
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return np.arange(tq)[:, None], np.arange(tk)[None, :]


def causal_mask(tq: int, tk: int | None = None) -> Bool[Array, "1 1 tq tk"]:
    """Causal mask: query ``i`` sees keys ``j <= i`` (top-left aligned, as ``jax.nn``).

    Args:
        tq: number of queries.
        tk: number of keys (default ``tq``).

    Returns:
        ``[1, 1, tq, tk]`` boolean mask.

    Example:
        >>> causal_mask(3)[0, 0].astype(int).tolist()
        [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    """
    i, j = _positions(tq, tk)
    return (j <= i)[None, None]


def local_window_mask(
    tq: int, tk: int | None = None, *, left: int | None = None, right: int | None = None
) -> Bool[Array, "1 1 tq tk"]:
    """Local-window mask: query ``i`` sees keys ``i - left <= j <= i + right``.

    ``None`` leaves that side unbounded, so ``left=w, right=0`` is a causal sliding window
    (a token sees itself and ``w`` predecessors), the same convention as ``local_window_size=(left,
    right)`` of :func:`jax.nn.dot_product_attention`.

    Args:
        tq: number of queries.
        tk: number of keys (default ``tq``).
        left: keys allowed to the left of the query (``None``: all).
        right: keys allowed to the right of the query (``None``: all).

    Returns:
        ``[1, 1, tq, tk]`` boolean mask.

    References:
        https://kexue.fm/archives/9431 (windowed attention as a length-extrapolation baseline).

    Example:
        >>> local_window_mask(4, left=1, right=0)[0, 0].astype(int).tolist()
        [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]
    """
    for name, value in (("left", left), ("right", right)):
        if value is not None and not (isinstance(value, int) and value >= 0):
            raise ValueError(f"{name}: expected a non-negative int or None, got {value!r}")
    i, j = _positions(tq, tk)
    mask = np.ones((i.shape[0], j.shape[1]), bool)
    if left is not None:
        mask &= j >= i - left
    if right is not None:
        mask &= j <= i + right
    return mask[None, None]


def padding_mask(
    lengths: Int[Array, " b"],
    tk: int,
    *,
    query_lengths: Int[Array, " b"] | None = None,
    tq: int | None = None,
) -> Bool[Array, "b 1 tq_or_1 tk"]:
    """Padding mask from sequence lengths: key ``j`` is valid when ``j < lengths[b]``.

    With ``query_lengths`` (and ``tq``) the query axis is masked as well, giving ``[b, 1, tq, tk]``;
    otherwise the mask is ``[b, 1, 1, tk]``. A fully masked query row gets the mean of all values in
    :func:`~kexue_jax.attention.dot_product_attention` (the ``jax.nn`` convention); discard it.

    Args:
        lengths: ``[b]`` integer valid key lengths.
        tk: padded key length.
        query_lengths: optional ``[b]`` integer valid query lengths.
        tq: padded query length (required with ``query_lengths``).

    Returns:
        Boolean mask ``[b, 1, 1, tk]`` or ``[b, 1, tq, tk]``.

    Example:
        >>> padding_mask(jnp.array([2, 3]), 4)[:, 0, 0].astype(int).tolist()
        [[1, 1, 0, 0], [1, 1, 1, 0]]
    """
    check_rank("lengths", lengths, 1)
    check_integer("lengths", lengths)
    mask = (jnp.arange(tk)[None, :] < jnp.asarray(lengths)[:, None])[:, None, None, :]
    if query_lengths is None:
        return mask
    check_rank("query_lengths", query_lengths, 1)
    check_integer("query_lengths", query_lengths)
    if tq is None:
        raise ValueError("tq: required with query_lengths")
    if jnp.shape(query_lengths) != jnp.shape(lengths):
        raise ValueError(
            f"query_lengths: expected shape {jnp.shape(lengths)} like lengths, "
            f"got {jnp.shape(query_lengths)}"
        )
    q_mask = (jnp.arange(tq)[None, :] < jnp.asarray(query_lengths)[:, None])[:, None, :, None]
    return mask & q_mask


def block_diagonal_mask(t: int, *, block_size: int) -> Bool[Array, "1 1 t t"]:
    """Mask of non-overlapping blocks: ``i`` sees ``j`` iff ``i // block_size == j // block_size``.

    Example:
        >>> block_diagonal_mask(4, block_size=2)[0, 0].astype(int).tolist()
        [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    """
    if not (isinstance(block_size, int) and block_size > 0):
        raise ValueError(f"block_size: expected a positive int, got {block_size!r}")
    i, j = _positions(t, t)
    return (i // block_size == j // block_size)[None, None]


def combine_masks(*masks: Array | None) -> Array | None:
    """Logical AND of the given masks (``None`` entries are skipped); ``None`` when all are.

    Masks are brought to rank 4 by adding leading axes and broadcast together; the result is a
    NumPy constant when every input is one.

    Example:
        >>> m = combine_masks(causal_mask(3), None, local_window_mask(3, left=1))
        >>> m[0, 0].astype(int).tolist()
        [[1, 0, 0], [1, 1, 0], [0, 1, 1]]
    """
    present = [m for m in masks if m is not None]
    if not present:
        return None
    xp = np if all(isinstance(m, np.ndarray) for m in present) else jnp
    out = None
    for idx, m in enumerate(present):
        check_rank(f"masks[{idx}]", m, (2, 3, 4))
        if m.dtype != np.bool_:
            raise ValueError(
                f"masks[{idx}]: expected a boolean mask, got {m.dtype} with shape {m.shape}"
            )
        m = xp.reshape(m, (1,) * (4 - m.ndim) + tuple(m.shape))
        out = m if out is None else xp.logical_and(out, m)
    return out
