"""Pixel transforms shared by the image models (pure jax)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Integer

from kexue_jax._src.checks import check_integer, check_rank


def to_unit_interval(image: Integer[Array, "*shape"], num_bins: int) -> Float[Array, "*shape"]:
    """Integer levels ``0..num_bins-1`` mapped to ``[0, 1]``: $x / (\\mathrm{num\\_bins} - 1)$.

    So ``0 -> 0`` and ``num_bins - 1 -> 1`` (for 8-bit images ``x / 255``; for scikit-learn's
    digits, ``num_bins=17``, ``x / 16``). Dequantization noise, when a model wants it, is added by
    the model (the ``num_bins`` offset of bits/dim lives in one place, :mod:`kexue_jax.metrics`).

    Args:
        image: integer array of any shape (e.g. ``uint8 [b, h, w, c]``).
        num_bins: number of levels, ``DatasetInfo.num_bins``; an int >= 2.

    Returns:
        ``float32`` array of the same shape, values in ``[0, 1]``.

    Raises:
        ValueError: naming ``image`` when it is not an integer array, or ``num_bins`` when < 2.
    """
    check_integer("image", image)
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 2:
        raise ValueError(f"num_bins: expected an int >= 2, got {num_bins!r}")
    return jnp.asarray(image).astype(jnp.float32) / jnp.float32(num_bins - 1)


def random_horizontal_flip(image: Array, *, key: Array) -> Array:
    """Mirror each image of a batch left to right with probability 1/2, independently (jit-able).

    The augmentation of DDPM's CIFAR-10 training (Ho et al. 2020, App. B: "random horizontal flips
    during training"): $x'_i = x_i[:, ::-1]$ if $b_i = 1$ else $x_i$, $b_i \\sim$ Bernoulli(1/2).
    Applied on device inside the loss, so it needs no host pipeline and a resumed run replays it
    from the step's key.

    Args:
        image: ``[b, h, w, c]`` images (any dtype).
        key: PRNG key of the ``b`` coin flips.

    Returns:
        ``image``'s shape and dtype, each image either unchanged or mirrored along ``w``.

    Raises:
        ValueError: naming ``image`` when it is not rank 4.
    """
    check_rank("image", image, 4)
    flip = jax.random.bernoulli(key, 0.5, (image.shape[0], 1, 1, 1))
    return jnp.where(flip, image[:, :, ::-1, :], image)
