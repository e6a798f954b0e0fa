"""Log-n scaling: queries times $\\max(1, \\log_L n)$ keep attention entropy as length grows.

With $n$ tokens visible, softmax entropy grows like $\\log n$; scaling the logits by
$\\log n / \\log L$ ($L$ the training length) keeps it at its trained value (entropy invariance,
8823). Multiplying the queries (not the logits) keeps any attention kernel usable. Clipping at 1
means lengths up to $L$ are untouched, so a model trained without log-n can take it at inference
("log n†" in 9706).

References:
    Su Jianlin, https://kexue.fm/archives/8823 (entropy invariance), https://kexue.fm/archives/9431
    (log n for extrapolation), https://kexue.fm/archives/9706 (log n† = max(1, log_maxlen n)) and
    https://kexue.fm/archives/9708 (``max(1, log(pos+1)/log(training_length))``).
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from kexue_jax._src.checks import check_floating, check_positive
from kexue_jax._src.typing import Array, ArrayLike, Float
from kexue_jax.position._positions import as_positions, check_heads


def logn_scale(n: ArrayLike, *, training_length: int) -> Float[Array, "*shape"]:
    """$\\max(1, \\log n / \\log L)$ in float32, elementwise over ``n``.

    Args:
        n: number of visible tokens (any shape; ``n >= 1``).
        training_length: $L > 1$.

    Returns:
        float32 array of ``n``'s shape.

    Example:
        >>> from kexue_jax.position import logn_scale
        >>> [round(float(v), 4) for v in logn_scale([1, 512, 4096], training_length=512)]
        [1.0, 1.0, 1.3333]
    """
    check_positive("training_length", training_length)
    if training_length <= 1:
        raise ValueError(f"training_length: expected a value > 1, got {training_length!r}")
    n = jnp.asarray(n, jnp.float32)
    return jnp.maximum(1.0, jnp.log(n) / math.log(training_length))


def apply_logn(
    q: Float[Array, "b t h d"], positions: ArrayLike | None, *, training_length: int
) -> Float[Array, "b t h d"]:
    """Scale query $m$ by $\\max(1, \\log(m+1)/\\log L)$ (causal: it sees $m+1$ tokens).

    Args:
        q: ``[b, t, h, d]`` queries.
        positions: ``[t]`` or ``[b, t]`` 0-based positions $m$; ``None`` means ``arange(t)``.
        training_length: $L$.

    Returns:
        ``[b, t, h, d]`` in ``q``'s dtype (the factor is computed in float32).
    """
    bound = check_heads("q", q)
    check_floating("q", q)
    pos = as_positions("positions", positions, bound["t"], batch=bound["b"])
    factor = logn_scale(pos + 1, training_length=training_length)[:, :, None, None]
    return (q.astype(jnp.float32) * factor).astype(q.dtype)


__all__ = ["apply_logn", "logn_scale"]
