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


def mlp_conditioner(*, hidden: int = 64, depth: int = 1) -> Conditioner:
    """An MLP on vectors: ``depth`` hidden $\\mathrm{relu}(\\mathrm{Dense})$ layers, then $\\mathrm{Dense}_0$.

    The output layer ($\\mathrm{Dense}_0$) starts at zero. Inputs are ``[b, d]``. NICE's coupling
    function is ``depth=5, hidden=1000`` (Dinh et al. 2015, §5.1; Su's NICE code).

    Args:
        hidden: width of the hidden layers.
        depth: number of hidden layers (at least 1).
    """
    if hidden <= 0:
        raise ValueError(f"hidden: expected a positive int, got {hidden!r}")
    if depth <= 0:
        raise ValueError(f"depth: expected a positive int, got {depth!r}")

    def init(key: PRNGKey, example_x: Array, out_channels: int) -> dict[str, Any]:
        check_rank("x", example_x, 2)
        d = example_x.shape[-1]
        keys = jax.random.split(key, depth)
        layers = [_dense_init(keys[0], d, hidden)]
        layers += [_dense_init(k, hidden, hidden) for k in keys[1:]]
        return {
            "hidden": layers[0],
            "more": layers[1:],
            "out": {"w": jnp.zeros((hidden, out_channels), jnp.float32),
                    "b": jnp.zeros((out_channels,), jnp.float32)},
        }

    def apply(cparams: dict[str, Any], x: Float[Array, "b d"]) -> Array:
        check_rank("x", x, 2)
        check_channels("x", x, cparams["hidden"]["w"].shape[0])
        h = jax.nn.relu(x @ cparams["hidden"]["w"] + cparams["hidden"]["b"])
        for layer in cparams.get("more", ()):
            h = jax.nn.relu(h @ layer["w"] + layer["b"])
        return h @ cparams["out"]["w"] + cparams["out"]["b"]

    return Conditioner(init=init, apply=apply)


def _conv(x: Array, w: Array, b: Array) -> Array:
    y = jax.lax.conv_general_dilated(
        x, w.astype(x.dtype), window_strides=(1, 1), padding="SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    return y + b.astype(y.dtype)


def _conv_init(key: PRNGKey, k: int, c_in: int, c_out: int) -> dict[str, Array]:
    w = jax.random.normal(key, (k, k, c_in, c_out), jnp.float32) * jnp.sqrt(2.0 / (k * k * c_in))
    return {"w": w, "b": jnp.zeros((c_out,), jnp.float32)}


def _zero_conv(k: int, c_in: int, c_out: int) -> dict[str, Array]:
    return {"w": jnp.zeros((k, k, c_in, c_out), jnp.float32), "b": jnp.zeros((c_out,), jnp.float32)}


def _compute_dtype(dtype: str | None) -> Any:
    return None if dtype is None else jnp.dtype(dtype)


def conv_conditioner(*, hidden: int = 16, dtype: str | None = None) -> Conditioner:
    """Glow's coupling network on NHWC images: Conv3×3-relu-Conv1×1-relu-Conv3×3 (zero init).

    Written with :func:`jax.lax.conv_general_dilated` ("SAME" padding).

    Args:
        hidden: channels of the two hidden convolutions (Glow: 512).
        dtype: compute dtype of the convolutions (e.g. ``"bfloat16"`` on GPU), ``None`` for the
            input's dtype. Parameters stay float32 and the output is cast back to the input's
            dtype, so the coupling's log-determinant and inverse stay in float32.
    """
    if hidden <= 0:
        raise ValueError(f"hidden: expected a positive int, got {hidden!r}")
    compute = _compute_dtype(dtype)

    def init(key: PRNGKey, example_x: Array, out_channels: int) -> dict[str, Any]:
        check_rank("x", example_x, 4)
        c = example_x.shape[-1]
        k1, k2 = jax.random.split(key)
        return {
            "conv1": _conv_init(k1, 3, c, hidden),
            "conv2": _conv_init(k2, 1, hidden, hidden),
            "out": _zero_conv(3, hidden, out_channels),
        }

    def apply(cparams: dict[str, Any], x: Float[Array, "b h w c"]) -> Array:
        check_rank("x", x, 4)
        check_channels("x", x, cparams["conv1"]["w"].shape[2])
        h = x if compute is None else x.astype(compute)
        h = jax.nn.relu(_conv(h, cparams["conv1"]["w"], cparams["conv1"]["b"]))
        h = jax.nn.relu(_conv(h, cparams["conv2"]["w"], cparams["conv2"]["b"]))
        return _conv(h, cparams["out"]["w"], cparams["out"]["b"]).astype(x.dtype)

    return Conditioner(init=init, apply=apply)


def resnet_conditioner(*, hidden: int = 64, blocks: int = 8, dtype: str | None = None) -> Conditioner:
    """RealNVP's residual coupling network on NHWC images, zero-initialised output.

    $h_0 = \\mathrm{Conv}_{3\\times 3}(x)$; ``blocks`` residual blocks
    $h \\leftarrow h + \\mathrm{Conv}_{3\\times 3}(\\mathrm{relu}(\\mathrm{Conv}_{3\\times 3}(\\mathrm{relu}(h))))$;
    output $\\mathrm{Conv}^{0}_{3\\times 3}(\\mathrm{relu}(h))$ starting at zero.

    Args:
        hidden: feature maps (RealNVP CIFAR-10: 64).
        blocks: residual blocks (RealNVP CIFAR-10: 8).
        dtype: compute dtype, as in :func:`conv_conditioner`.

    Note:
        RealNVP's network also uses batch normalisation and weight normalisation; batch statistics
        would make the coupling depend on the batch, so this version leaves both out and relies on
        the zero-initialised output, warm-up and gradient clipping for stability (as Glow does).

    References:
        L. Dinh, J. Sohl-Dickstein, S. Bengio, "Density estimation using Real NVP", ICLR 2017
        (§4.1: 8 residual blocks, 64 feature maps on CIFAR-10).
    """
    if hidden <= 0:
        raise ValueError(f"hidden: expected a positive int, got {hidden!r}")
    if blocks < 0:
        raise ValueError(f"blocks: expected a non-negative int, got {blocks!r}")
    compute = _compute_dtype(dtype)

    def init(key: PRNGKey, example_x: Array, out_channels: int) -> dict[str, Any]:
        check_rank("x", example_x, 4)
        c = example_x.shape[-1]
        keys = jax.random.split(key, 2 * blocks + 1)
        return {
            "conv_in": _conv_init(keys[0], 3, c, hidden),
            "blocks": [
                {"a": _conv_init(keys[2 * i + 1], 3, hidden, hidden),
                 # The second conv of a block starts small so the stack starts near identity.
                 "b": jax.tree.map(lambda w: 0.1 * w, _conv_init(keys[2 * i + 2], 3, hidden, hidden))}
                for i in range(blocks)
            ],
            "out": _zero_conv(3, hidden, out_channels),
        }

    def apply(cparams: dict[str, Any], x: Float[Array, "b h w c"]) -> Array:
        check_rank("x", x, 4)
        check_channels("x", x, cparams["conv_in"]["w"].shape[2])
        h = x if compute is None else x.astype(compute)
        h = _conv(h, cparams["conv_in"]["w"], cparams["conv_in"]["b"])
        for blk in cparams["blocks"]:
            r = _conv(jax.nn.relu(h), blk["a"]["w"], blk["a"]["b"])
            h = h + _conv(jax.nn.relu(r), blk["b"]["w"], blk["b"]["b"])
        return _conv(jax.nn.relu(h), cparams["out"]["w"], cparams["out"]["b"]).astype(x.dtype)

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


__all__ = [
    "Conditioner",
    "conv_conditioner",
    "default_conditioner",
    "mlp_conditioner",
    "resnet_conditioner",
]
