"""Normalising flows as pure bijectors: NICE, RealNVP and Glow layers.

Every layer is a :class:`Bijector` of pure functions ``init(key, example_x)``,
``forward(params, x) -> (y, log_det)`` and ``inverse(params, y) -> (x, log_det)``, with float32
per-example log-determinants, composed by :func:`chain` and listed in :data:`BIJECTORS`.

References:
    Su Jianlin, https://kexue.fm/archives/5776 (NICE) and https://kexue.fm/archives/5807
    (RealNVP & Glow); Dinh et al. 2015 (NICE), Dinh et al. 2017 (RealNVP), Kingma & Dhariwal 2018
    (Glow).
"""

from kexue_jax.flows.actnorm import actnorm
from kexue_jax.flows.additive_coupling import additive_coupling
from kexue_jax.flows.affine_coupling import affine_coupling
from kexue_jax.flows.bijector import Bijector, chain
from kexue_jax.flows.conditioner import (
    Conditioner,
    conv_conditioner,
    default_conditioner,
    mlp_conditioner,
)
from kexue_jax.flows.conv1x1 import conv1x1, conv1x1_lu, lu_weight, random_orthogonal
from kexue_jax.flows.logit import logit
from kexue_jax.flows.mask import make_mask
from kexue_jax.flows.permutation import reverse, shuffle
from kexue_jax.flows.registry import BIJECTORS
from kexue_jax.flows.scale import scale
from kexue_jax.flows.squeeze import squeeze, squeeze_nhwc, unsqueeze, unsqueeze_nhwc

__all__ = [
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
]
