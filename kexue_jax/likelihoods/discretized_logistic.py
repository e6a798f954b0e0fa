"""Discretized logistic likelihood (and its mixture) for ``num_bins``-level data.

Data take the ``num_bins`` levels $v_k = low + k\\,\\Delta$, $\\Delta = (high-low)/(num\\_bins-1)$
(for 8-bit images on ``[-1, 1]``: $v_k = 2k/255 - 1$; on ``[0, 1]``: $v_k = k/255$). The mass of level
$v_k$ is the logistic probability of its bin $[v_k - \\Delta/2,\\ v_k + \\Delta/2]$, with the lowest
bin extended to $-\\infty$ and the highest to $+\\infty$ so that the masses sum to one exactly:

$P(v_k) = \\sigma\\big(\\tfrac{v_k + \\Delta/2 - \\mu}{s}\\big) - \\sigma\\big(\\tfrac{v_k - \\Delta/2 - \\mu}{s}\\big)$.

References:
    T. Salimans, A. Karpathy, X. Chen, D. P. Kingma, "PixelCNN++", ICLR 2017, section 2.1;
    D. P. Kingma et al., "Improved Variational Inference with Inverse Autoregressive Flow",
    NeurIPS 2016 (the discretized logistic decoder of a VAE on 8-bit images).
    Su Jianlin, https://kexue.fm/archives/5253 (the decoder likelihood $p(x\\mid z)$ of a VAE).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from kexue_jax._src.checks import check_floating, check_rank, check_same_shape
from kexue_jax._src.numerics import to_f32
from kexue_jax._src.typing import Array, Float, PRNGKey
from kexue_jax.likelihoods._bins import check_bins, edge_masks, half_width

# The smallest representable gap keeps log(-expm1(.)) finite when the scale is so large that the
# standardised bin width underflows; the mass is then ~1e-30, i.e. -69 nats, not -inf.
_TINY = 1e-30


def discretized_logistic_log_prob(
    x: Float[Array, "*shape"],
    loc: Float[Array, "*shape"],
    log_scale: Float[Array, "*shape"],
    *,
    num_bins: int,
    low: float = -1.0,
    high: float = 1.0,
) -> Float[Array, "*shape"]:
    """Per-element log-mass of ``num_bins``-level data under a discretized logistic (float32 nats).

    With $a = (x - \\mu + \\Delta/2)/s$ and $b = (x - \\mu - \\Delta/2)/s$:

    * interior bins: $\\log(\\sigma(a) - \\sigma(b)) = \\log(-\\mathrm{expm1}(b - a))
      - \\mathrm{softplus}(-a) - \\mathrm{softplus}(b)$,
    * lowest bin: $\\log\\sigma(a) = -\\mathrm{softplus}(-a)$,
    * highest bin: $\\log(1 - \\sigma(b)) = -\\mathrm{softplus}(b)$.

    Args:
        x: data on the levels $v_k$ (float, any shape).
        loc: logistic location $\\mu$, same shape.
        log_scale: $\\log s$, same shape.
        num_bins: number of levels (256 for 8-bit data).
        low: the lowest level (``-1.0`` or ``0.0``).
        high: the highest level (``1.0``).

    Returns:
        float32 log-masses of the shape of ``x``; $\\sum_k \\exp(\\cdot)$ over all levels is 1.

    Raises:
        ValueError: for mismatched shapes, non-float inputs, ``num_bins < 2`` or ``low >= high``.

    Note:
        PixelCNN++ computes ``log(cdf_plus - cdf_min)`` and, where that difference underflows,
        falls back to the density at the bin centre times the width (a ``where`` on a 1e-5
        threshold). The identity used here,
        $\\sigma(a) - \\sigma(b) = (1 - e^{b-a})\\,\\sigma(a)\\,\\sigma(-b)$, is exact and stable in
        float32 everywhere, so no threshold or fallback is needed.
    """
    check_bins(num_bins, low, high)
    for name, a in (("x", x), ("loc", loc), ("log_scale", log_scale)):
        check_floating(name, a)
    check_same_shape("x", x, "loc", loc)
    check_same_shape("loc", loc, "log_scale", log_scale)
    x, loc, log_scale = to_f32(x), to_f32(loc), to_f32(log_scale)
    hw = half_width(num_bins, low, high)
    inv_s = jnp.exp(-log_scale)
    centered = x - loc
    a = (centered + hw) * inv_s
    b = (centered - hw) * inv_s
    log_cdf_a = -jax.nn.softplus(-a)
    log_sf_b = -jax.nn.softplus(b)
    gap = jnp.minimum(-2.0 * hw * inv_s, -_TINY)  # b - a, computed without cancellation
    interior = jnp.log(-jnp.expm1(gap)) + log_cdf_a + log_sf_b
    is_low, is_high = edge_masks(x, num_bins, low, high)
    return jnp.where(is_low, log_cdf_a, jnp.where(is_high, log_sf_b, interior))


def discretized_logistic_mixture_log_prob(
    x: Float[Array, "*shape"],
    logit_probs: Float[Array, "*shape k"],
    loc: Float[Array, "*shape k"],
    log_scale: Float[Array, "*shape k"],
    *,
    num_bins: int,
    low: float = -1.0,
    high: float = 1.0,
) -> Float[Array, "*shape"]:
    """Per-element log-mass under a mixture of ``k`` discretized logistics (float32 nats).

    $\\log P(x) = \\mathrm{logsumexp}_j\\big(\\log\\pi_j + \\log P_j(x)\\big)$ with
    $\\pi = \\mathrm{softmax}(\\text{logit\\_probs})$ and $P_j$ as in
    :func:`discretized_logistic_log_prob`. Each scalar has its own mixture (PixelCNN++'s
    channel-coupled RGB variant is not included).

    Args:
        x: data on the levels, shape ``[*shape]``.
        logit_probs: unnormalised mixture weights, shape ``[*shape, k]``.
        loc: component locations, shape ``[*shape, k]``.
        log_scale: component log-scales, shape ``[*shape, k]``.
        num_bins, low, high: as in :func:`discretized_logistic_log_prob`.

    Returns:
        float32 log-masses of shape ``[*shape]``.

    Raises:
        ValueError: when the mixture arguments do not have shape ``x.shape + (k,)``.
    """
    check_floating("logit_probs", logit_probs)
    check_rank("logit_probs", logit_probs, jnp.ndim(x) + 1)
    if tuple(jnp.shape(logit_probs)[:-1]) != tuple(jnp.shape(x)):
        raise ValueError(
            f"logit_probs: expected shape {tuple(jnp.shape(x)) + ('k',)} (x's shape plus a mixture "
            f"axis), got {tuple(jnp.shape(logit_probs))}"
        )
    check_same_shape("logit_probs", logit_probs, "loc", loc)
    check_same_shape("logit_probs", logit_probs, "log_scale", log_scale)
    xk = jnp.broadcast_to(to_f32(x)[..., None], jnp.shape(loc))
    component = discretized_logistic_log_prob(xk, loc, log_scale, num_bins=num_bins, low=low, high=high)
    log_weights = jax.nn.log_softmax(to_f32(logit_probs), axis=-1)
    return jax.nn.logsumexp(log_weights + component, axis=-1)


def discretized_logistic_mean(
    loc: Float[Array, "*shape"],
    log_scale: Float[Array, "*shape"],
    *,
    low: float = -1.0,
    high: float = 1.0,
) -> Float[Array, "*shape"]:
    """Mean of the logistic clipped to the data range, $\\mathbb E[\\mathrm{clip}(Y, low, high)]$ (float32).

    For $Y\\sim\\mathrm{Logistic}(\\mu, s)$,
    $\\mathbb E[\\mathrm{clip}(Y, l, h)] = l + \\int_l^h (1 - F(t))\\,dt
    = l + s\\,\\big(\\mathrm{softplus}(\\tfrac{\\mu - l}{s}) - \\mathrm{softplus}(\\tfrac{\\mu - h}{s})\\big)$.
    The discretized variable is $\\mathrm{clip}(Y)$ rounded to the nearest level (the edge bins
    take the tails), so its mean differs from this by at most half a level spacing. Unlike the
    location $\\mu$ (the median), the mean of a wide, uncertain pixel is a grey level, which is
    what a picture of the decoder's output should show.

    Args:
        loc: $\\mu$.
        log_scale: $\\log s$, same shape.
        low, high: the data range.

    Returns:
        float32 means in ``[low, high]``, shape of ``loc``.
    """
    if not float(low) < float(high):
        raise ValueError(f"low, high: expected low < high, got low={low!r}, high={high!r}")
    check_same_shape("loc", loc, "log_scale", log_scale)
    loc, log_scale = to_f32(loc), to_f32(log_scale)
    s = jnp.exp(log_scale)
    inv_s = jnp.exp(-log_scale)
    mean = low + s * (jax.nn.softplus((loc - low) * inv_s) - jax.nn.softplus((loc - high) * inv_s))
    return jnp.clip(mean, low, high)


def discretized_logistic_sample(
    loc: Float[Array, "*shape"],
    log_scale: Float[Array, "*shape"],
    *,
    num_bins: int,
    low: float = -1.0,
    high: float = 1.0,
    key: PRNGKey,
) -> Float[Array, "*shape"]:
    """Draw levels from the discretized logistic: $\\mu + s\\,\\mathrm{logit}(u)$ snapped to a level.

    Args:
        loc: $\\mu$.
        log_scale: $\\log s$, same shape.
        num_bins, low, high: as in :func:`discretized_logistic_log_prob`.
        key: PRNG key.

    Returns:
        float32 samples on the levels $v_k$, shape of ``loc``.
    """
    check_bins(num_bins, low, high)
    check_same_shape("loc", loc, "log_scale", log_scale)
    loc, log_scale = to_f32(loc), to_f32(log_scale)
    u = jax.random.uniform(key, jnp.shape(loc), jnp.float32, minval=1e-6, maxval=1.0 - 1e-6)
    y = loc + jnp.exp(log_scale) * (jnp.log(u) - jnp.log1p(-u))
    step = 2.0 * half_width(num_bins, low, high)
    k = jnp.clip(jnp.round((y - low) / step), 0, num_bins - 1)
    return low + k * step
