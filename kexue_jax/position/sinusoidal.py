"""Sinusoidal absolute positions: $p_{k,2i} = \\sin(k\\theta_i)$, $p_{k,2i+1} = \\cos(k\\theta_i)$.

$\\theta_i = \\text{theta}^{-2i/d}$. Each $(p_{k,2i}, p_{k,2i+1})$ is a point on the unit circle, so
$\\|p_k\\|^2 = d/2$, $p_m\\cdot p_n = \\sum_i \\cos((m-n)\\theta_i)$ depends only on $m-n$ and
decays (on average) with $|m-n|$, and $p_{k+s}$ is a block rotation of $p_k$.

References:
    Su Jianlin, https://kexue.fm/archives/8130 (survey) and https://kexue.fm/archives/8231
    (derivation); A. Vaswani et al., "Attention Is All You Need", NeurIPS 2017.
"""

from __future__ import annotations

import jax.numpy as jnp

from kexue_jax._src.typing import Array, ArrayLike, Float
from kexue_jax.position.frequencies import rope_inv_freq
from kexue_jax.position.rope import merge_pairs, rope_angles


def sinusoidal_embedding(
    positions: ArrayLike, dim: int, *, theta: float = 10000.0
) -> Float[Array, "*p dim"]:
    """The sinusoidal table at ``positions`` (any shape, real-valued, negative allowed).

    Sin and cos are interleaved ($2i$, $2i+1$) as in 8130/8231 (the Transformer paper
    concatenates them instead; the two differ by a fixed permutation of channels).

    Args:
        positions: positions $k$, any shape.
        dim: $d$, even.
        theta: the base (10000).

    Returns:
        float32 ``positions.shape + (d,)``.

    Example:
        >>> from kexue_jax.position import sinusoidal_embedding
        >>> [round(float(v), 4) for v in sinusoidal_embedding(1, 4, theta=100.0)]
        [0.8415, 0.5403, 0.0998, 0.995]

    References:
        https://kexue.fm/archives/8231; Vaswani et al. 2017.
    """
    if not isinstance(dim, int) or dim < 2 or dim % 2:
        raise ValueError(f"dim: expected an even integer >= 2, got {dim!r}")
    angles = rope_angles(positions, rope_inv_freq(dim, theta=theta))
    return merge_pairs(jnp.sin(angles), jnp.cos(angles), "interleaved")


__all__ = ["sinusoidal_embedding"]
