"""NICE, RealNVP and Glow assembled from the pure layers (the NNX models wrap these).

Each builder returns one :class:`~kexue_jax.flows.bijector.Bijector` from data space to latent
space; the prior is separate (:mod:`kexue_jax.flows.prior`).

* :func:`nice` — Dinh et al. 2015 / kexue.fm 5776: ``num_couplings`` additive couplings on the
  flattened input with the interleaved (odd/even) split, roles swapped between couplings, MLP
  coupling functions (``depth`` hidden layers of ``hidden`` units; MNIST: 4 couplings, 5 × 1000),
  and the final diagonal scaling layer.
* :func:`realnvp` — Dinh et al. 2017 §4.1 / kexue.fm 5807: per scale, 3 checkerboard affine
  couplings, squeeze, 3 channel affine couplings, factor out half; the final scale has 4
  checkerboard couplings; ResNet coupling networks.
* :func:`glow` — Kingma & Dhariwal 2018 / kexue.fm 5807: ``levels`` × (squeeze, ``depth`` ×
  (actnorm → invertible 1×1 conv → coupling)), factor out half after every level but the last;
  Glow's coupling net (3×3 → 1×1 → zero 3×3, ``hidden`` channels).
* :func:`coupling_flow_2d` — the 2-D density flows: ``depth`` steps of (optional actnorm, optional
  LU 1×1 "conv" i.e. an invertible 2×2 matrix, affine coupling) with MLP conditioners.

References:
    Su Jianlin, https://kexue.fm/archives/5776 (NICE) and https://kexue.fm/archives/5807 (RealNVP,
    Glow); L. Dinh, D. Krueger, Y. Bengio, "NICE", ICLR 2015 workshop; L. Dinh, J. Sohl-Dickstein,
    S. Bengio, "Density estimation using Real NVP", ICLR 2017; D. P. Kingma, P. Dhariwal, "Glow:
    Generative Flow with Invertible 1×1 Convolutions", NeurIPS 2018.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from kexue_jax._src.checks import check_in
from kexue_jax.flows.actnorm import actnorm
from kexue_jax.flows.additive_coupling import additive_coupling
from kexue_jax.flows.affine_coupling import affine_coupling
from kexue_jax.flows.bijector import Bijector, chain
from kexue_jax.flows.conditioner import conv_conditioner, mlp_conditioner, resnet_conditioner
from kexue_jax.flows.conv1x1 import conv1x1, conv1x1_lu
from kexue_jax.flows.multiscale import multiscale
from kexue_jax.flows.permutation import reverse, shuffle
from kexue_jax.flows.repeat import repeat
from kexue_jax.flows.reshape import reshape
from kexue_jax.flows.scale import scale
from kexue_jax.flows.squeeze import squeeze

PERMUTATIONS = {
    "reverse": reverse,
    "shuffle": shuffle,
    "conv1x1": conv1x1,
    "conv1x1_lu": conv1x1_lu,
    # Glow's LU mixing started at RealNVP's reverse permutation instead of a random rotation.
    "conv1x1_lu_reverse": lambda: conv1x1_lu(init="reverse"),
}
COUPLINGS = ("additive", "affine")


def _positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {value!r}")


def nice(
    event_shape: Sequence[int],
    *,
    num_couplings: int = 4,
    hidden: int = 1000,
    depth: int = 5,
    scale_data_init: bool = False,
) -> Bijector:
    """NICE: flatten, ``num_couplings`` additive couplings (alternating odd/even halves), scale.

    Args:
        event_shape: shape of one example, e.g. ``(28, 28, 1)``.
        num_couplings: additive coupling layers (NICE MNIST: 4).
        hidden: units of each hidden layer of the coupling MLP (1000).
        depth: hidden layers of the coupling MLP (5).
        scale_data_init: start the scaling layer from the init batch's per-dimension spread
            (:func:`~kexue_jax.flows.scale.scale`'s ``data_init``). Off by default: on MNIST a pixel
            that is black throughout the init batch gets $s \\approx 7$, and the first test digit
            with ink there costs thousands of nats (measured: loss 16 nats/dim after 700 steps).
    """
    _positive("num_couplings", num_couplings)
    dim = math.prod(event_shape)
    net = mlp_conditioner(hidden=hidden, depth=depth)
    layers = [reshape(tuple(event_shape), (dim,))] if len(event_shape) != 1 else []
    layers += [additive_coupling(mask="alternate", parity=bool(i % 2), conditioner=net)
               for i in range(num_couplings)]
    return chain(*layers, scale(data_init=scale_data_init))


def _coupling(kind: str, mask: str, parity: bool, net, scale_kind: str) -> Bijector:
    check_in("coupling", kind, COUPLINGS)
    if kind == "additive":
        return additive_coupling(mask=mask, parity=parity, conditioner=net)
    return affine_coupling(mask=mask, parity=parity, scale=scale_kind, conditioner=net)


def realnvp(
    *,
    levels: int = 3,
    hidden: int = 64,
    blocks: int = 8,
    coupling: str = "affine",
    scale: str = "exp",
    dtype: str | None = None,
) -> Bijector:
    """RealNVP's multi-scale image flow (CIFAR-10 architecture at the defaults).

    Args:
        levels: scales; every scale but the last halves the channels it passes on.
        hidden: feature maps of the ResNet coupling networks (64).
        blocks: residual blocks per coupling network (8).
        coupling: ``"affine"`` (RealNVP) or ``"additive"``.
        scale: the affine scale, ``"exp"`` or ``"sigmoid"``.
        dtype: compute dtype of the coupling networks.
    """
    _positive("levels", levels)
    net = resnet_conditioner(hidden=hidden, blocks=blocks, dtype=dtype)

    def couplings(mask: str, n: int) -> list[Bijector]:
        return [_coupling(coupling, mask, bool(i % 2), net, scale) for i in range(n)]

    stages = [chain(*couplings("checkerboard", 3), squeeze(), *couplings("channel", 3))
              for _ in range(levels - 1)]
    stages.append(chain(*couplings("checkerboard", 4)))
    return multiscale(stages)


def glow(
    *,
    levels: int = 3,
    depth: int = 32,
    hidden: int = 512,
    coupling: str = "affine",
    scale: str = "sigmoid",
    permutation: str = "conv1x1_lu",
    learn_split_prior: bool = True,
    dtype: str | None = None,
    remat: bool = False,
    unroll: bool = False,
) -> Bijector:
    """Glow: ``levels`` × (squeeze, ``depth`` × (actnorm, permutation, coupling)), multi-scale.

    Args:
        levels: $L$ (CIFAR-10: 3).
        depth: $K$ steps per level (32), run by ``lax.scan`` (:func:`repeat`).
        hidden: channels of the coupling network (512).
        coupling: ``"affine"`` or ``"additive"`` (the paper reports both).
        scale: the affine scale, ``"sigmoid"`` (Glow's code, $\\mathrm{sigmoid}(h + 2)$) or ``"exp"``.
        permutation: ``"conv1x1_lu"``, ``"conv1x1"``, ``"shuffle"`` or ``"reverse"`` (the paper's
            ablation).
        learn_split_prior: learned conditional prior of the factored-out halves.
        dtype: compute dtype of the coupling networks (``"bfloat16"`` on GPU).
        remat: rematerialise each step in the backward pass (memory for compute).
        unroll: unroll the scan over the ``depth`` steps (faster backward on CPU, see :func:`repeat`).
    """
    _positive("levels", levels)
    _positive("depth", depth)
    check_in("permutation", permutation, tuple(PERMUTATIONS))
    net = conv_conditioner(hidden=hidden, dtype=dtype)
    step = chain(actnorm(), PERMUTATIONS[permutation](), _coupling(coupling, "channel", False, net, scale))
    stages = [chain(squeeze(), repeat(step, depth, remat=remat, unroll=True if unroll else 1)) for _ in range(levels)]
    return multiscale(stages, learn_split_prior=learn_split_prior)


def coupling_flow_2d(
    *,
    depth: int = 8,
    hidden: int = 128,
    mlp_depth: int = 2,
    coupling: str = "affine",
    scale: str = "exp",
    use_actnorm: bool = False,
    permutation: str = "reverse",
    unroll: bool = False,
) -> Bijector:
    """A coupling flow on ``[b, d]`` vectors: ``depth`` × (actnorm?, permutation, coupling).

    The ``depth`` steps are one step repeated with stacked params (:func:`repeat`, a ``lax.scan``),
    so compile time stays flat in depth (unrolled, XLA:CPU took over 15 minutes to compile the
    training step of a 32-step Glow-style flow, against about a minute for 16 steps).

    ``use_actnorm=False, permutation="reverse"`` is RealNVP on vectors; ``use_actnorm=True,
    permutation="conv1x1_lu"`` is a Glow-style flow (a learned invertible $d\\times d$ mixing).

    Args:
        depth: number of steps.
        hidden: width of the MLP conditioner.
        mlp_depth: hidden layers of the MLP conditioner.
        coupling: ``"affine"`` or ``"additive"``.
        scale: the affine scale, ``"exp"`` or ``"sigmoid"``.
        use_actnorm: start each step with actnorm.
        permutation: ``"reverse"``, ``"shuffle"``, ``"conv1x1"``, ``"conv1x1_lu"`` or
            ``"conv1x1_lu_reverse"`` (LU mixing initialised at the reversal).
        unroll: compile the ``depth`` steps separately instead of scanning one.
    """
    _positive("depth", depth)
    check_in("permutation", permutation, tuple(PERMUTATIONS))
    net = mlp_conditioner(hidden=hidden, depth=mlp_depth)
    layers = [actnorm()] if use_actnorm else []
    step = chain(*layers, PERMUTATIONS[permutation](), _coupling(coupling, "half", False, net, scale))
    return repeat(step, depth, unroll=True if unroll else 1)


__all__ = ["COUPLINGS", "PERMUTATIONS", "coupling_flow_2d", "glow", "nice", "realnvp"]
