"""Bernoulli log-probability from logits, stable for any logit."""

from __future__ import annotations

import jax

from kexue_jax._src.checks import check_floating, check_same_shape
from kexue_jax._src.numerics import to_f32
from kexue_jax._src.typing import Array, Float


def bernoulli_log_prob(x: Float[Array, "*shape"], logits: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
    """Per-element Bernoulli log-probability with $p = \\sigma(\\ell)$, in float32 nats.

    $\\log p(x\\mid\\ell) = x\\log\\sigma(\\ell) + (1-x)\\log\\sigma(-\\ell) = x\\ell - \\mathrm{softplus}(\\ell)$,
    which never evaluates $\\log 0$ however large $|\\ell|$ is (the negative of the usual "binary
    cross-entropy with logits").

    Args:
        x: targets in $\\{0, 1\\}$ (any value in $[0, 1]$ gives the cross-entropy, which is a
            normalised log-probability only for binary ``x``).
        logits: $\\ell$, same shape as ``x``.

    Returns:
        float32 array of the shape of ``x``.

    Raises:
        ValueError: when the shapes differ or ``logits`` is not floating point.

    References:
        Su Jianlin, https://kexue.fm/archives/5253 (Bernoulli decoder for binary data);
        Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014, Appendix C.1.
    """
    check_floating("logits", logits)
    check_same_shape("x", x, "logits", logits)
    x, logits = to_f32(x), to_f32(logits)
    return x * logits - jax.nn.softplus(logits)


def bernoulli_mean(logits: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
    """The mean $\\sigma(\\ell)$ of the Bernoulli with logits $\\ell$ (float32)."""
    check_floating("logits", logits)
    return jax.nn.sigmoid(to_f32(logits))
