"""ALiBi: a per-head linear penalty $-\\lambda_h |m - n|$ added to the attention logits.

For $H$ a power of two the slopes are $\\lambda_h = 2^{-8h/H}$, $h = 1..H$ (for 8 heads
$2^{-1}, \\dots, 2^{-8}$); otherwise the slopes of the nearest lower power of two $P$, then every
other slope of $2P$ (Press et al.'s rule).

References:
    Su Jianlin, https://kexue.fm/archives/9431 (ALiBi as a smooth local attention);
    O. Press, N. Smith, M. Lewis, "Train Short, Test Long: Attention with Linear Biases Enables
    Input Length Extrapolation", ICLR 2022.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from kexue_jax._src.typing import Array, ArrayLike, Float
from kexue_jax.position._positions import as_bias, as_positions, relative_matrix


def _power_of_two_slopes(n: int) -> list[float]:
    return [2.0 ** (-8.0 * h / n) for h in range(1, n + 1)]


def alibi_slopes(num_heads: int) -> Float[Array, " h"]:
    """The float32 ``[num_heads]`` slopes $\\lambda_h$.

    Example:
        >>> from kexue_jax.position import alibi_slopes
        >>> [float(s) for s in alibi_slopes(4)]
        [0.25, 0.0625, 0.015625, 0.00390625]
    """
    if num_heads != int(num_heads) or num_heads < 1:
        raise ValueError(f"num_heads: expected a positive integer, got {num_heads!r}")
    p = 2 ** math.floor(math.log2(num_heads))
    slopes = _power_of_two_slopes(p)
    if p < num_heads:
        slopes += _power_of_two_slopes(2 * p)[0::2][: num_heads - p]
    return jnp.asarray(slopes, jnp.float32)


def alibi_bias(
    num_heads: int,
    q_len: int,
    k_len: int,
    *,
    q_positions: ArrayLike | None = None,
    k_positions: ArrayLike | None = None,
) -> Float[Array, "1 h tq tk"]:
    """The additive bias $-\\lambda_h |m - n|$, float32 ``[1 or b, h, tq, tk]``.

    On the causal part ($n \\le m$) this is ALiBi's $-\\lambda_h (m - n)$; for bidirectional use the
    absolute value makes it symmetric.

    Args:
        num_heads: $H$.
        q_len: $t_q$.
        k_len: $t_k$.
        q_positions: ``[tq]`` or ``[b, tq]``; default ``arange(tq)``.
        k_positions: ``[tk]`` or ``[b, tk]``; default ``arange(tk)``.

    Returns:
        float32 ``[1 or b, h, tq, tk]``.

    References:
        Press et al. 2022, ALiBi; https://kexue.fm/archives/9431.
    """
    qp = as_positions("q_positions", q_positions, q_len)
    kp = as_positions("k_positions", k_positions, k_len)
    dist = jnp.abs(relative_matrix(qp, kp)).astype(jnp.float32)
    return -alibi_slopes(num_heads)[:, None, None] * as_bias(dist)


__all__ = ["alibi_bias", "alibi_slopes"]
