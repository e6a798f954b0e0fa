"""Normalising flows as pure bijectors: NICE, RealNVP and Glow layers.

The pure functions are imported eagerly; the Flax NNX models (``NICE``, ``RealNVP``, ``Glow``,
``Flow``, ``FlowConfig``, ``make_flow_task``) are imported on first access from
:mod:`.flow_model`, so that the pure layers never import Flax.

Every layer is a :class:`Bijector` of pure functions ``init(key, example_x)``,
``forward(params, x) -> (y, log_det)`` and ``inverse(params, y) -> (x, log_det)``, with float32
per-example log-determinants, composed by :func:`chain` and listed in :data:`BIJECTORS`.

References:
    Su Jianlin, https://kexue.fm/archives/5776 (NICE) and https://kexue.fm/archives/5807
    (RealNVP & Glow); Dinh et al. 2015 (NICE), Dinh et al. 2017 (RealNVP), Kingma & Dhariwal 2018
    (Glow).
"""

import importlib
from typing import Any

from kexue_jax.flows.actnorm import actnorm
from kexue_jax.flows.additive_coupling import additive_coupling
from kexue_jax.flows.affine_coupling import affine_coupling
from kexue_jax.flows.architectures import coupling_flow_2d, glow, nice, realnvp
from kexue_jax.flows.bijector import Bijector, chain
from kexue_jax.flows.conditioner import (
    Conditioner,
    conv_conditioner,
    default_conditioner,
    mlp_conditioner,
    resnet_conditioner,
)
from kexue_jax.flows.conv1x1 import conv1x1, conv1x1_lu, lu_weight, random_orthogonal
from kexue_jax.flows.dequantize import quantize, uniform_dequantize
from kexue_jax.flows.logit import logit
from kexue_jax.flows.mask import make_mask
from kexue_jax.flows.multiscale import multiscale, split_prior
from kexue_jax.flows.permutation import reverse, shuffle
from kexue_jax.flows.prior import (
    init_top_prior,
    standard_normal_log_prob,
    top_prior_log_prob,
    top_prior_sample,
)
from kexue_jax.flows.registry import BIJECTORS
from kexue_jax.flows.repeat import repeat
from kexue_jax.flows.reshape import reshape
from kexue_jax.flows.scale import scale
from kexue_jax.flows.squeeze import squeeze, squeeze_nhwc, unsqueeze, unsqueeze_nhwc

_LAZY = ("NICE", "RealNVP", "Glow", "Flow", "FlowConfig", "build_bijector", "make_flow_task")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module("kexue_jax.flows.flow_model"), name)
    raise AttributeError(f"module 'kexue_jax.flows' has no attribute {name!r}")


__all__ = [  # noqa: RUF022
    "NICE",
    "RealNVP",
    "Glow",
    "Flow",
    "FlowConfig",
    "build_bijector",
    "make_flow_task",
    "BIJECTORS",
    "Bijector",
    "Conditioner",
    "actnorm",
    "additive_coupling",
    "affine_coupling",
    "chain",
    "conv1x1",
    "conv1x1_lu",
    "conv_conditioner",
    "default_conditioner",
    "logit",
    "lu_weight",
    "make_mask",
    "mlp_conditioner",
    "random_orthogonal",
    "reverse",
    "scale",
    "shuffle",
    "squeeze",
    "squeeze_nhwc",
    "unsqueeze",
    "unsqueeze_nhwc",
    "coupling_flow_2d",
    "glow",
    "nice",
    "realnvp",
    "resnet_conditioner",
    "quantize",
    "uniform_dequantize",
    "multiscale",
    "split_prior",
    "init_top_prior",
    "standard_normal_log_prob",
    "top_prior_log_prob",
    "top_prior_sample",
    "repeat",
    "reshape",
]
