"""Discretized Gaussian likelihood for ``num_bins``-level data (the decoder $L_0$ of DDPM).

Same binning as :mod:`kexue_jax.likelihoods.discretized_logistic`: levels
$v_k = low + k\\,\\Delta$, bins of width $\\Delta$ around them, the two edge bins taking the tails.

References:
    J. Ho, A. Jain, P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020, eq. (13).
    Su Jianlin, "生成扩散模型漫谈（一）：DDPM = 拆楼 + 建楼", https://kexue.fm/archives/9119.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax.scipy.special import log_ndtr

from kexue_jax._src.checks import check_floating, check_same_shape
from kexue_jax._src.numerics import to_f32
from kexue_jax._src.typing import Array, Float
from kexue_jax.likelihoods._bins import check_bins, edge_masks, half_width

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_TINY = 1e-30
# Below this standardised bin width the difference of two log-CDFs loses relative accuracy
# (~1e-7 / width); the midpoint rule with its w^2 correction is then accurate to O(w^4).
_SMALL_WIDTH = 1e-2


def discretized_gaussian_log_prob(
    x: Float[Array, "*shape"],
    mean: Float[Array, "*shape"],
    log_scale: Float[Array, "*shape"],
    *,
    num_bins: int,
    low: float = -1.0,
    high: float = 1.0,
) -> Float[Array, "*shape"]:
    """Per-element log-mass of ``num_bins``-level data under a discretized Gaussian (float32 nats).

    With $a = (x - \\mu + \\Delta/2)/\\sigma$, $b = (x - \\mu - \\Delta/2)/\\sigma$:
    interior bins $\\log(\\Phi(a) - \\Phi(b))$, lowest bin $\\log\\Phi(a)$, highest bin
    $\\log\\Phi(-b)$, all through ``log_ndtr`` (exact in the far tails, where DDPM's ``tanh``
    approximation of $\\Phi$ and a clipped ``log`` are not).

    The interior difference is evaluated on the side of the mean where it does not cancel:
    if $a + b > 0$ the bin is reflected, $(a, b) \\to (-b, -a)$, and then
    $\\log(\\Phi(a) - \\Phi(b)) = \\log\\Phi(a) + \\log(-\\mathrm{expm1}(\\log\\Phi(b) - \\log\\Phi(a)))$.
    For standardised widths $w = a - b < 10^{-2}$ (with $w|m| < 1$) it uses the midpoint rule
    $\\log w + \\log\\varphi(m) + \\log(1 + w^2 (m^2 - 1)/24)$, $m = (a + b)/2$.

    Args:
        x: data on the levels (float, any shape).
        mean: $\\mu$, same shape.
        log_scale: $\\log\\sigma$ (log standard deviation), same shape.
        num_bins: number of levels (256 for 8-bit data).
        low: the lowest level.
        high: the highest level.

    Returns:
        float32 log-masses of the shape of ``x``, summing (in probability) to one over the levels.

    Raises:
        ValueError: for mismatched shapes, non-float inputs, ``num_bins < 2`` or ``low >= high``.
    """
    check_bins(num_bins, low, high)
    for name, arr in (("x", x), ("mean", mean), ("log_scale", log_scale)):
        check_floating(name, arr)
    check_same_shape("x", x, "mean", mean)
    check_same_shape("mean", mean, "log_scale", log_scale)
    x, mean, log_scale = to_f32(x), to_f32(mean), to_f32(log_scale)
    hw = half_width(num_bins, low, high)
    inv_s = jnp.exp(-log_scale)
    a = (x - mean + hw) * inv_s
    b = (x - mean - hw) * inv_s

    flip = (a + b) > 0
    hi = jnp.where(flip, -b, a)
    lo = jnp.where(flip, -a, b)
    log_hi, log_lo = log_ndtr(hi), log_ndtr(lo)
    by_cdf = log_hi + jnp.log(-jnp.expm1(jnp.minimum(log_lo - log_hi, -_TINY)))

    width = jnp.maximum(2.0 * hw * inv_s, _TINY)
    mid = 0.5 * (a + b)
    by_midpoint = (
        jnp.log(width) - _HALF_LOG_2PI - 0.5 * jnp.square(mid)
        + jnp.log1p(jnp.square(width) * (jnp.square(mid) - 1.0) / 24.0)
    )
    # The series is used only where its w^4 m^4 remainder is negligible; elsewhere the log-CDF
    # difference is well conditioned.
    use_midpoint = (width < _SMALL_WIDTH) & (width * jnp.abs(mid) < 1.0)
    interior = jnp.where(use_midpoint, by_midpoint, by_cdf)

    is_low, is_high = edge_masks(x, num_bins, low, high)
    return jnp.where(is_low, log_ndtr(a), jnp.where(is_high, log_ndtr(-b), interior))
