"""A row-wise function over a large host array in fixed-size batches, for the feature extractors of sample metrics.

FID-style metrics push tens of thousands of images through a network (Inception-v3 for FID, a
classifier for :mod:`kexue_jax.diffusion.sample_quality`); one call would not fit in memory, and a
call per batch whose last batch is shorter would compile the network twice. Every batch is padded
to ``batch_size`` rows with copies of its first row and the padding is dropped from the output, so
one compiled program serves every batch (Heusel et al.'s FID code, and pytorch-fid, batch the same
way, dropping instead of padding the remainder).

References:
    M. Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
    Equilibrium", NeurIPS 2017 (FID, computed over batches of Inception features); Su Jianlin,
    "生成扩散模型漫谈（九）：条件控制生成结果", https://kexue.fm/archives/9257 (sample quality of
    guided diffusion models).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from kexue_jax._src.checks import check_positive
from kexue_jax._src.typing import Array

__all__ = ["apply_in_batches"]


def apply_in_batches(
    fn: Callable[[Array], Array], x: Any, *, batch_size: int = 500, jit: bool = True
) -> np.ndarray:
    """``fn`` over the rows of ``x`` in batches of ``batch_size``, concatenated on the host.

    Every batch, the last and a set shorter than ``batch_size`` included, is padded with copies of
    its first row to ``batch_size`` rows and the padding dropped from the output, so one compiled
    program serves every call with the same ``fn`` and ``batch_size``.

    Args:
        fn: ``[n, ...] -> [n, ...]``, row by row (no interaction between rows).
        x: the inputs ``[N, ...]``, $N \\ge 1$: a NumPy or JAX array (sliced where it lives, one
            batch at a time) or anything ``np.asarray`` takes.
        batch_size: rows per call.
        jit: compile ``fn`` here (once per call of this function); ``False`` for an ``fn`` that is
            already compiled, e.g. a module-level ``jax.jit`` that takes large parameters as
            arguments rather than closing over them as constants.

    Returns:
        NumPy ``[N, ...]``.

    Raises:
        ValueError: on a non-positive ``batch_size`` or an ``x`` without rows.

    Example:
        >>> apply_in_batches(lambda v: 2 * v, np.arange(5.0), batch_size=2).tolist()
        [0.0, 2.0, 4.0, 6.0, 8.0]
    """
    check_positive("batch_size", batch_size)
    if not hasattr(x, "shape"):
        x = np.asarray(x)
    if len(x.shape) < 1 or x.shape[0] == 0:
        raise ValueError(f"x: expected at least one row, got shape {tuple(x.shape)}")
    call = jax.jit(fn) if jit else fn
    size = int(batch_size)
    out = []
    for start in range(0, x.shape[0], size):
        chunk = jnp.asarray(x[start:start + size])
        n = chunk.shape[0]
        if n < size:
            chunk = jnp.concatenate([chunk, jnp.broadcast_to(chunk[:1], (size - n, *chunk.shape[1:]))])
        out.append(np.asarray(call(chunk))[:n])
    return np.concatenate(out)
