"""Base distributions of a flow: the standard normal over all latents, and Glow's learned top prior.

$\\log p(x) = \\log p_Z(f(x)) + \\log|\\det J_f(x)|$. The factored-out latents of
:func:`~kexue_jax.flows.multiscale.multiscale` are already standardised, so only the top latent
may carry a learned prior $\\mathcal N(\\mu, \\sigma^2)$ with per-position parameters (Glow's
``learntop``) and, optionally, a class-conditional shift $\\mu_y, \\log\\sigma_y$ per channel
(Glow's ``ycond``). All parameters start at zero, i.e. at $\\mathcal N(0, I)$.

References:
    Su Jianlin, https://kexue.fm/archives/5807 (conditional priors in the multi-scale structure);
    D. P. Kingma, P. Dhariwal, "Glow", NeurIPS 2018 (§5.2 class-conditional prior; official code's
    ``learntop`` and ``ycond``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from kexue_jax._src.checks import check_integer, check_rank, check_shape
from kexue_jax._src.numerics import sum_except_batch, to_f32
from kexue_jax._src.typing import Array, Float, Int, PRNGKey

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _leaves(z: Any) -> list[Array]:
    return list(z) if isinstance(z, (tuple, list)) else [z]


def standard_normal_log_prob(z: Array | Sequence[Array]) -> Float[Array, " b"]:
    """$\\sum_i \\log\\mathcal N(z_i; 0, 1)$ per example over an array or a tuple of latents (float32)."""
    total = None
    for leaf in _leaves(z):
        leaf = to_f32(leaf)
        lp = sum_except_batch(-0.5 * jnp.square(leaf) - _HALF_LOG_2PI)
        total = lp if total is None else total + lp
    return total


def init_top_prior(top_shape: Sequence[int], *, num_classes: int = 0) -> dict[str, Array]:
    """Zero parameters of the learned top prior for latents of shape ``top_shape`` (one example).

    ``{"mean", "log_scale"}`` of shape ``top_shape``; with ``num_classes > 0`` also
    ``{"class_mean", "class_log_scale"}`` of shape ``[num_classes, top_shape[-1]]``.
    """
    shape = tuple(int(s) for s in top_shape)
    params = {"mean": jnp.zeros(shape, jnp.float32), "log_scale": jnp.zeros(shape, jnp.float32)}
    if num_classes:
        params["class_mean"] = jnp.zeros((num_classes, shape[-1]), jnp.float32)
        params["class_log_scale"] = jnp.zeros((num_classes, shape[-1]), jnp.float32)
    return params


def top_prior_moments(
    params: dict[str, Array], batch: int, labels: Int[Array, " b"] | None = None
) -> tuple[Array, Array]:
    """$(\\mu, \\log\\sigma)$ of the top prior, broadcast to ``[batch, *top_shape]``.

    Raises:
        ValueError: when the prior is class-conditional and ``labels`` is missing, or when labels
            are given to an unconditional prior, or have the wrong shape/dtype.
    """
    mean, log_scale = params["mean"], params["log_scale"]
    shape = (batch, *mean.shape)
    conditional = "class_mean" in params
    if conditional != (labels is not None):
        raise ValueError(
            "labels: a class-conditional prior needs labels [b], an unconditional one takes none; got "
            f"{'none' if labels is None else tuple(jnp.shape(labels))} for a "
            f"{'conditional' if conditional else 'unconditional'} prior"
        )
    mean, log_scale = jnp.broadcast_to(mean, shape), jnp.broadcast_to(log_scale, shape)
    if conditional:
        check_integer("labels", labels)
        check_shape("labels", labels, (batch,))
        extra = (1,) * (len(shape) - 2)
        mean = mean + params["class_mean"][labels].reshape(batch, *extra, -1)
        log_scale = log_scale + params["class_log_scale"][labels].reshape(batch, *extra, -1)
    return mean, log_scale


def top_prior_log_prob(
    params: dict[str, Array], z_top: Array, labels: Int[Array, " b"] | None = None
) -> Float[Array, " b"]:
    """$\\log\\mathcal N(z_{top}; \\mu, \\sigma^2)$ per example (float32)."""
    check_rank("z_top", z_top, params["mean"].ndim + 1)
    check_shape("z_top", z_top, (None, *params["mean"].shape))
    mean, log_scale = top_prior_moments(params, z_top.shape[0], labels)
    eps = (to_f32(z_top) - mean) * jnp.exp(-log_scale)
    return sum_except_batch(-0.5 * jnp.square(eps) - log_scale - _HALF_LOG_2PI)


def top_prior_sample(
    params: dict[str, Array],
    num: int,
    labels: Int[Array, " b"] | None = None,
    *,
    temperature: float = 1.0,
    key: PRNGKey,
) -> Array:
    """$z_{top} = \\mu + T\\sigma\\epsilon$, $\\epsilon \\sim \\mathcal N(0, I)$, shape ``[num, *top_shape]``."""
    mean, log_scale = top_prior_moments(params, num, labels)
    eps = jax.random.normal(key, mean.shape, jnp.float32)
    return mean + temperature * jnp.exp(log_scale) * eps


__all__ = [
    "init_top_prior",
    "standard_normal_log_prob",
    "top_prior_log_prob",
    "top_prior_moments",
    "top_prior_sample",
]
