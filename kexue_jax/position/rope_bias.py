"""RoPE + q/k bias: rotate $q + a$ and $k + b$ instead of $q$ and $k$.

$(q_m + a)^\\top R_{n-m} (k_n + b) = q^\\top R k + a^\\top R k + q^\\top R b + a^\\top R_{n-m} b$.
The last term depends only on $m - n$ and decays with it, adding a learned locality prior. Without
RoPE ($R = I$) the key bias adds $q_m^\\top b$, constant over $n$, so softmax removes it; with RoPE
it does not.

References:
    Su Jianlin, https://kexue.fm/archives/9577 (Bias项的神奇作用：RoPE + Bias = 更好的长度外推性);
    Su et al. 2021, RoFormer, arXiv:2104.09864.
"""

from __future__ import annotations

import jax.numpy as jnp

from kexue_jax._src.checks import check_floating, check_positive, check_rank, check_shape
from kexue_jax._src.typing import Array, ArrayLike, Float
from kexue_jax.position.rope import apply_rope


def init_rope_bias(num_heads: int, head_dim: int) -> Float[Array, "h d"]:
    """A zero float32 ``[num_heads, head_dim]`` bias, so that training starts from plain RoPE."""
    check_positive("num_heads", num_heads)
    check_positive("head_dim", head_dim)
    return jnp.zeros((num_heads, head_dim), jnp.float32)


def apply_rope_with_bias(
    x: Float[Array, "b t h d"],
    positions: ArrayLike | None,
    inv_freq: Float[Array, " half"],
    *,
    bias: Float[Array, "h d"],
    pairing: str = "half",
) -> Float[Array, "b t h d"]:
    """$R_m (x_m + \\text{bias})$: add the learned bias (per head) and then rotate.

    Call it once for queries (bias $a$) and once for keys (bias $b$).

    Args:
        x: ``[b, t, h, d]`` queries or keys.
        positions: ``[t]`` or ``[b, t]``; ``None`` means ``arange(t)``.
        inv_freq: ``[d/2]`` RoPE frequency table.
        bias: ``[h, d]`` or ``[d]`` (shared by the heads).
        pairing: ``"half"`` or ``"interleaved"``.

    Returns:
        ``[b, t, h, d]`` in ``x``'s dtype.

    References:
        https://kexue.fm/archives/9577.
    """
    check_rank("x", x, 4)
    check_floating("x", x)
    bias = jnp.asarray(bias)
    check_rank("bias", bias, (1, 2))
    check_shape("bias", bias, list(x.shape[-bias.ndim :]))
    shifted = (x.astype(jnp.float32) + bias.astype(jnp.float32)).astype(x.dtype)
    return apply_rope(shifted, positions, inv_freq, pairing=pairing)


__all__ = ["apply_rope_with_bias", "init_rope_bias"]
