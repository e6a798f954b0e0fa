"""What the diffusion and classifier tasks read from a dataset: the shape of a feature, and class labels.

A dataset's :class:`~kexue_jax.data.DatasetInfo` describes each feature as a ``(shape, dtype)`` pair
(:func:`feature_shape` also takes anything with ``.shape``, or a bare shape). Class labels come from
the data (``labels="data"``: ``batch["label"]``) or, for the 2-D densities, which carry none, from
the angle of the point (``labels="angular_sector"``, :func:`angular_sector_labels`): for
``eight_gaussians`` with $K = 8$ that is the nearest mixture component, the Bayes classifier of the
component. Both the noisy classifier of classifier guidance and the class-conditional diffusion
model of classifier-free guidance label their data this way (kexue.fm 9257).

References:
    Su Jianlin, "生成扩散模型漫谈（九）：条件控制生成结果", https://kexue.fm/archives/9257.
    J. Ho, T. Salimans, "Classifier-Free Diffusion Guidance", 2022, arXiv:2207.12598.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp

from kexue_jax._src.checks import check_in, check_positive, check_shape
from kexue_jax._src.typing import Array, Batch, Float, Int

__all__ = ["LABEL_SOURCES", "angular_sector_labels", "batch_labels", "check_label_feature", "feature_shape"]

LABEL_SOURCES = ("data", "angular_sector")


def feature_shape(feature: Any) -> tuple[int, ...]:
    """The shape of one example of a feature of ``DatasetInfo.features``, without the batch axis.

    Args:
        feature: a ``(shape, dtype)`` pair (what :class:`~kexue_jax.data.DatasetInfo` holds), anything
            with a ``.shape``, or the shape itself.

    Returns:
        The shape as a tuple of ints.

    Example:
        >>> feature_shape(((28, 28, 1), "uint8")), feature_shape((2,))
        ((28, 28, 1), (2,))
    """
    shape = feature[0] if isinstance(feature, (tuple, list)) and isinstance(feature[0], (tuple, list)) \
        else getattr(feature, "shape", feature)
    return tuple(int(s) for s in shape)


def angular_sector_labels(x: Float[Array, "b 2"], num_classes: int) -> Int[Array, " b"]:
    """$k = \\mathrm{round}(K\\,\\mathrm{atan2}(x_2, x_1)/2\\pi) \\bmod K$: the sector of angle width $2\\pi/K$ centred on $2\\pi k/K$.

    For ``eight_gaussians`` (centres at angles $k\\pi/4$ on one circle, equal isotropic
    covariances) and $K = 8$ this is the component whose centre is nearest, i.e. the most probable
    component $\\arg\\max_k p(k \\mid x)$; it differs from the component that drew $x$ for about 0.2%
    of the points (the centres are $6.1\\sigma$ apart).

    Args:
        x: points ``[b, 2]``.
        num_classes: $K$.

    Returns:
        int32 ``[b]`` in ``0..K-1``.
    """
    check_shape("x", x, (None, 2))
    check_positive("num_classes", num_classes)
    angle = jnp.arctan2(x[:, 1], x[:, 0])
    return jnp.mod(jnp.round(angle * (num_classes / (2 * math.pi))), num_classes).astype(jnp.int32)


def batch_labels(batch: Batch, x: Array, *, source: str, num_classes: int) -> Int[Array, " b"]:
    """The class labels of a batch: ``batch["label"]`` (``source="data"``) or the angular sectors of ``x``.

    Args:
        batch: the batch (a mapping of arrays).
        x: the batch's points ``[b, 2]`` (used by ``"angular_sector"`` only).
        source: one of :data:`LABEL_SOURCES`.
        num_classes: $K$ of the angular sectors.

    Returns:
        int32 ``[b]``.

    Raises:
        ValueError: on an unknown ``source`` or a batch without a ``"label"`` entry for ``"data"``.
    """
    check_in("labels", source, LABEL_SOURCES)
    if source == "angular_sector":
        return angular_sector_labels(x, num_classes)
    if "label" not in batch:
        raise ValueError(f"batch: labels='data' needs a 'label' entry, got keys {sorted(batch)}")
    return jnp.asarray(batch["label"], jnp.int32)


def check_label_feature(info: Any, features: Mapping[str, Any], *, source: str, num_classes: int) -> None:
    """Check that a dataset can label ``num_classes`` classes from ``source`` (nothing to check for sectors).

    Args:
        info: the dataset's info (its ``num_classes``, if any, is compared).
        features: ``info.features``.
        source: one of :data:`LABEL_SOURCES`.
        num_classes: the model's number of classes.

    Raises:
        ValueError: ``labels='data'`` without a ``'label'`` feature, or a dataset with more classes
            than ``num_classes``.
    """
    if source != "data":
        return
    if "label" not in features:
        raise ValueError(f"info: labels='data' needs a 'label' feature, got features {sorted(features)}; "
                         f"2-D densities take labels='angular_sector'")
    data_classes = getattr(info, "num_classes", None)
    if data_classes is not None and int(data_classes) > int(num_classes):
        raise ValueError(f"num_classes: the dataset has {data_classes} classes, more than the model's "
                         f"num_classes={num_classes}")
