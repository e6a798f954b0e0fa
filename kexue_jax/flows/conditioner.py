"""Default coupling conditioners: pure networks with a zero-initialised last layer.

A coupling layer computes its shift $m(x_1)$ (NICE) or its scale and shift $(s, t)(x_1)$ (RealNVP)
with a :class:`Conditioner`: ``init(key, example_x, out_channels) -> cparams`` and
``apply(cparams, x) -> out`` with ``out.shape == x.shape[:-1] + (out_channels,)``. Any pure
function pair fits; the two here are small defaults. Their last layer is zero-initialised, so
$m = s = t = 0$ at init and an additive or exp-scaled affine coupling starts as the identity
(Glow's ``Conv2DZeros``).

References:
    Su Jianlin, https://kexue.fm/archives/5807 (Glow's coupling net: Conv3×3-ReLU-Conv1×1-ReLU-
    zero-init Conv3×3); D. P. Kingma, P. Dhariwal, "Glow: Generative Flow with Invertible 1×1
    Convolutions", NeurIPS 2018 (§3.3, zero initialisation); L. Dinh, D. Krueger, Y. Bengio, "NICE",
    ICLR 2015 workshop (MLP coupling functions).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from kexue_jax._src.checks import check_rank
from kexue_jax._src.typing import Array, Float, PRNGKey
from kexue_jax.flows._validate import check_channels


class Conditioner(NamedTuple):
    """A pure network ``apply(cparams, x) -> out`` and ``init(key, example_x, out_channels)``."""

    init: Callable[[PRNGKey, Array, int], Any]
    apply: Callable[[Any, Array], Array]


def _dense_init(key: PRNGKey, fan_in: int, fan_out: int) -> dict[str, Array]:
    w = jax.random.normal(key, (fan_in, fan_out), jnp.float32) * jnp.sqrt(2.0 / fan_in)
    return {"w": w, "b": jnp.zeros((fan_out,), jnp.float32)}


def mlp_conditioner(*, hidden: int = 64) -> Conditioner:
    """A 2-layer MLP on vectors: $\\mathrm{Dense}_0(\\mathrm{relu}(\\mathrm{Dense}(x)))$.

    The output layer ($\\mathrm{Dense}_0$) starts at zero. Inputs are ``[b, d]``.

    Args:
        hidden: width of the hidden layer.
    """
    if hidden <= 0:
        raise ValueError(f"hidden: expected a positive int, got {hidden!r}")

    def init(key: PRNGKey, example_x: Array, out_channels: int) -> dict[str, Any]:
        check_rank("x", example_x, 2)
        d = example_x.shape[-1]
        return {
            "hidden": _dense_init(key, d, hidden),
            "out": {"w": jnp.zeros((hidden, out_channels), jnp.float32),
                    "b": jnp.zeros((out_channels,), jnp.float32)},
        }

    def apply(cparams: dict[str, Any], x: Float[Array, "b d"]) -> Array:
        check_rank("x", x, 2)
        check_channels("x", x, cparams["hidden"]["w"].shape[0])
        h = jax.nn.relu(x @ cparams["hidden"]["w"] + cparams["hidden"]["b"])
        return h @ cparams["out"]["w"] + cparams["out"]["b"]

    return Conditioner(init=init, apply=apply)


def _conv(x: Array, w: Array, b: Array) -> Array:
    y = jax.lax.conv_general_dilated(
        x, w.astype(x.dtype), window_strides=(1, 1), padding="SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    return y + b


def conv_conditioner(*, hidden: int = 16) -> Conditioner:
    """Glow's coupling network on NHWC images: Conv3×3-relu-Conv1×1-relu-Conv3×3 (zero init).

    Written with :func:`jax.lax.conv_general_dilated` ("SAME" padding).

    Args:
        hidden: channels of the two hidden convolutions (Glow: 512).
    """
    if hidden <= 0:
        raise ValueError(f"hidden: expected a positive int, got {hidden!r}")

    def init(key: PRNGKey, example_x: Array, out_channels: int) -> dict[str, Any]:
        check_rank("x", example_x, 4)
        c = example_x.shape[-1]
        k1, k2 = jax.random.split(key)
        return {
            "conv1": {"w": jax.random.normal(k1, (3, 3, c, hidden), jnp.float32)
                      * jnp.sqrt(2.0 / (9 * c)), "b": jnp.zeros((hidden,), jnp.float32)},
            "conv2": {"w": jax.random.normal(k2, (1, 1, hidden, hidden), jnp.float32)
                      * jnp.sqrt(2.0 / hidden), "b": jnp.zeros((hidden,), jnp.float32)},
            "out": {"w": jnp.zeros((3, 3, hidden, out_channels), jnp.float32),
                    "b": jnp.zeros((out_channels,), jnp.float32)},
        }

    def apply(cparams: dict[str, Any], x: Float[Array, "b h w c"]) -> Array:
        check_rank("x", x, 4)
        check_channels("x", x, cparams["conv1"]["w"].shape[2])
        h = jax.nn.relu(_conv(x, cparams["conv1"]["w"], cparams["conv1"]["b"]))
        h = jax.nn.relu(_conv(h, cparams["conv2"]["w"], cparams["conv2"]["b"]))
        return _conv(h, cparams["out"]["w"], cparams["out"]["b"])

    return Conditioner(init=init, apply=apply)


def default_conditioner(*, hidden: int = 16) -> Conditioner:
    """:func:`mlp_conditioner` on ``[b, d]`` inputs and :func:`conv_conditioner` on NHWC images."""
    mlp, conv = mlp_conditioner(hidden=hidden), conv_conditioner(hidden=hidden)

    def init(key: PRNGKey, example_x: Array, out_channels: int) -> dict[str, Any]:
        check_rank("x", example_x, (2, 4))
        return (mlp if example_x.ndim == 2 else conv).init(key, example_x, out_channels)

    def apply(cparams: dict[str, Any], x: Array) -> Array:
        check_rank("x", x, (2, 4))
        return (mlp if x.ndim == 2 else conv).apply(cparams, x)

    return Conditioner(init=init, apply=apply)


__all__ = ["Conditioner", "conv_conditioner", "default_conditioner", "mlp_conditioner"]
