"""Rotary position embedding (RoPE): rotate each pair of channels by the angle $m\\theta_i$.

$R_m x$ rotates pair $i$ of ``x`` by $m\\theta_i$, so
$\\langle R_m q, R_n k\\rangle = q^\\top R_{n-m} k$ depends on the positions only through $m - n$,
and norms are kept. The frequency table $\\theta_i$ (``inv_freq``) is *data*: every RoPE extension
(NTK-aware, dynamic NTK, β-base fixed and mixed, PI, YaRN) is only another table (see
:mod:`kexue_jax.position.frequencies`), so they all compose with any attention function, fused
kernels included.

References:
    Su Jianlin, https://kexue.fm/archives/8265 (RoPE) and https://kexue.fm/archives/8130 (survey,
    "融合式"); J. Su et al., "RoFormer: Enhanced Transformer with Rotary Position Embedding",
    arXiv:2104.09864 (2021).
"""

from __future__ import annotations

import jax.numpy as jnp

from kexue_jax._src.checks import check_floating, check_in, check_rank, check_shape
from kexue_jax._src.typing import Array, ArrayLike, Float
from kexue_jax.position._positions import as_positions

PAIRINGS = ("half", "interleaved")


def split_pairs(x: Array, pairing: str) -> tuple[Array, Array]:
    """The two members $(x^{(1)}_i, x^{(2)}_i)$ of every rotated pair, each ``[..., d/2]``.

    ``"half"`` pairs channel $i$ with $i + d/2$ (GPT-NeoX / LLaMA "rotate-half");
    ``"interleaved"`` pairs $2i$ with $2i+1$ (RoFormer, bert4keras).
    """
    check_in("pairing", pairing, PAIRINGS)
    if pairing == "half":
        half = x.shape[-1] // 2
        return x[..., :half], x[..., half:]
    return x[..., 0::2], x[..., 1::2]


def merge_pairs(a: Array, b: Array, pairing: str) -> Array:
    """Inverse of :func:`split_pairs`."""
    if pairing == "half":
        return jnp.concatenate([a, b], axis=-1)
    return jnp.stack([a, b], axis=-1).reshape(*a.shape[:-1], 2 * a.shape[-1])


def check_head_dim(name: str, x: Array, inv_freq: Array) -> int:
    """Raise ``ValueError`` unless ``x``'s last dim is even and equal to ``2 * len(inv_freq)``."""
    d = x.shape[-1]
    if d % 2:
        raise ValueError(f"{name}: head_dim must be even for RoPE, got shape {x.shape}")
    check_rank("inv_freq", inv_freq, 1)
    check_shape("inv_freq", inv_freq, [d // 2])
    return d


def rope_angles(positions: ArrayLike, inv_freq: ArrayLike) -> Float[Array, "*p half"]:
    """Angles $m\\theta_i$ in float32, shape ``positions.shape + (d/2,)``."""
    positions = jnp.asarray(positions, jnp.float32)
    return positions[..., None] * jnp.asarray(inv_freq, jnp.float32)


def apply_rope(
    x: Float[Array, "b t h d"],
    positions: ArrayLike | None,
    inv_freq: Float[Array, " half"],
    *,
    pairing: str = "half",
    attention_factor: float | ArrayLike = 1.0,
) -> Float[Array, "b t h d"]:
    """Rotate ``x`` by its positions: each pair $(x^{(1)}, x^{(2)})$ by the angle $m\\theta_i$.

    $(x^{(1)}, x^{(2)}) \\mapsto (x^{(1)}\\cos m\\theta - x^{(2)}\\sin m\\theta,\\;
    x^{(1)}\\sin m\\theta + x^{(2)}\\cos m\\theta)$.

    Angles, cos and sin are computed in float32 whatever ``x``'s dtype; the result is cast back.

    Args:
        x: queries or keys, ``[b, t, h, d]`` with ``d`` even.
        positions: ``[t]`` or ``[b, t]`` positions $m$ (integers, or floats for interpolated
            positions); ``None`` means ``arange(t)``.
        inv_freq: ``[d/2]`` frequency table $\\theta_i$ (:func:`~kexue_jax.position.rope_inv_freq`,
            or any table of :mod:`kexue_jax.position.frequencies`).
        pairing: ``"half"`` (default; channel $i$ with $i+d/2$, as in GPT-NeoX, LLaMA and Hugging
            Face checkpoints) or ``"interleaved"`` ($2i$ with $2i+1$, as in RoFormer). Both have
            every RoPE property; they differ only by a fixed permutation of channels.
        attention_factor: multiplies the result (YaRN's $\\sqrt{1/t}$; 1 for plain RoPE).

    Returns:
        ``[b, t, h, d]`` rotated ``x``, in ``x``'s dtype.

    Raises:
        ValueError: ``x`` not rank 4, not floating, with odd ``d``, or ``inv_freq`` /
            ``positions`` of the wrong shape (the message names the argument).

    Example:
        >>> import jax.numpy as jnp
        >>> from kexue_jax.position import apply_rope, rope_inv_freq
        >>> x = jnp.ones((1, 3, 1, 4))
        >>> y = apply_rope(x, jnp.arange(3), rope_inv_freq(4))
        >>> [round(float(v), 4) for v in jnp.linalg.norm(y, axis=-1).ravel()]
        [2.0, 2.0, 2.0]

    References:
        https://kexue.fm/archives/8265; Su et al. 2021, RoFormer, arXiv:2104.09864.
    """
    check_rank("x", x, 4)
    check_floating("x", x)
    check_head_dim("x", x, jnp.asarray(inv_freq))
    check_in("pairing", pairing, PAIRINGS)
    b, t = x.shape[:2]
    pos = as_positions("positions", positions, t, batch=b)
    angles = rope_angles(pos, inv_freq)[:, :, None, :]  # [b', t, 1, d/2]
    cos, sin = jnp.cos(angles), jnp.sin(angles)
    x1, x2 = split_pairs(x.astype(jnp.float32), pairing)
    y = merge_pairs(x1 * cos - x2 * sin, x1 * sin + x2 * cos, pairing)
    y = y * jnp.asarray(attention_factor, jnp.float32)  # may be traced
    return y.astype(x.dtype)


__all__ = ["PAIRINGS", "apply_rope", "merge_pairs", "rope_angles", "split_pairs"]
