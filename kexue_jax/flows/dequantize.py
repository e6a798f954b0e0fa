"""Uniform dequantization of ``num_bins``-level data, and the way back to pixels.

A flow is a density on $\\mathbb R^D$; discrete pixels $x \\in \\{0, \\dots, K-1\\}^D$ get the
continuous $y = (x + u)/K$, $u \\sim U[0, 1)^D$, on $[0, 1)^D$. Then
$\\mathbb E_u[\\log p(y)] + D\\log\\tfrac1K \\le \\log P(x)$ (Theis et al. 2016), and the shared
:func:`kexue_jax.metrics.bits_per_dim` with ``bin_width = 1/K`` turns $\\log p(y)$ into bits/dim
of the discrete data. Nothing here adds that offset: it is counted once, there.

References:
    Su Jianlin, "细水长flow之NICE", https://kexue.fm/archives/5776 (adding noise to pixels);
    L. Theis, A. van den Oord, M. Bethge, "A note on the evaluation of generative models", ICLR 2016;
    D. P. Kingma, P. Dhariwal, "Glow", NeurIPS 2018 (``x/256 + U[0, 1/256)`` preprocessing).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from kexue_jax._src.checks import check_integer
from kexue_jax._src.typing import Array, Float, Int, PRNGKey


def _check_bins(num_bins: int) -> None:
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 2:
        raise ValueError(f"num_bins: expected an int >= 2, got {num_bins!r}")


def uniform_dequantize(
    x: Int[Array, "*shape"], *, num_bins: int, key: PRNGKey | None
) -> Float[Array, "*shape"]:
    """$y = (x + u) / K$ with $u \\sim U[0, 1)$, or the bin centre $u = 1/2$ when ``key`` is None.

    Args:
        x: integer levels in ``0 .. num_bins - 1`` (e.g. uint8 pixels).
        num_bins: $K$.
        key: PRNG key of the noise; ``None`` uses bin centres (deterministic evaluation).

    Returns:
        float32 ``y`` in $[0, 1)$; its bin width is ``1 / num_bins``.

    Raises:
        ValueError: when ``x`` is not integer or ``num_bins`` is not an int >= 2.
    """
    check_integer("x", x)
    _check_bins(num_bins)
    x = x.astype(jnp.float32)
    u = 0.5 if key is None else jax.random.uniform(key, x.shape, jnp.float32)
    return (x + u) / num_bins


def quantize(y: Float[Array, "*shape"], *, num_bins: int) -> Float[Array, "*shape"]:
    """Map continuous $y$ back to its bin, as images in $[0, 1]$: $\\lfloor K y \\rfloor/(K-1)$, clipped.

    This inverts :func:`uniform_dequantize` on $[0, 1)$ (``quantize(dequantize(x)) == x / (K-1)``),
    and is how flow samples become pictures.
    """
    _check_bins(num_bins)
    level = jnp.clip(jnp.floor(y * num_bins), 0, num_bins - 1)
    return level / (num_bins - 1)


__all__ = ["quantize", "uniform_dequantize"]
