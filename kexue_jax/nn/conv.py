"""Convolutional encoder and decoder stacks for small images (e.g. 28x28 MNIST), NHWC.

The encoder halves the resolution ``len(widths)`` times with stride-2 convolutions and ends in a
dense layer; the decoder mirrors it with a dense layer and stride-2 transposed convolutions
(the DCGAN-style pair used by the VAE, and reusable by the other latent-variable models).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from kexue_jax._src.checks import check_shape
from kexue_jax._src.typing import Array, Float

__all__ = ["ConvDecoder", "ConvEncoder"]


def _check_image_shape(image_shape: Sequence[int], num_halvings: int) -> tuple[int, int, int]:
    if len(tuple(image_shape)) != 3:
        raise ValueError(f"image_shape: expected (height, width, channels), got {tuple(image_shape)}")
    h, w, c = (int(s) for s in image_shape)
    factor = 2**num_halvings
    if h % factor or w % factor:
        raise ValueError(
            f"image_shape: height and width must be divisible by 2**len(widths) = {factor}, "
            f"got {tuple(image_shape)}"
        )
    return h, w, c


class ConvEncoder(nnx.Module):
    """``[b, h, w, c] -> [b, out_features]``: stride-2 convolutions, then a dense layer.

    Args:
        image_shape: ``(h, w, c)`` of the input; ``h`` and ``w`` divisible by ``2**len(widths)``.
        widths: channels of the successive stride-2 convolutions, e.g. ``(32, 64)`` (28 -> 14 -> 7).
        out_features: size of the output vector.
        kernel_size: square kernel size of the convolutions.
        activation: nonlinearity after each convolution.
        dtype: compute dtype; param_dtype: parameter dtype (float32).
        rngs: NNX random streams.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        widths: Sequence[int],
        out_features: int,
        *,
        kernel_size: int = 4,
        activation: Callable[[Array], Array] = jax.nn.relu,
        dtype: jnp.dtype | None = jnp.float32,
        param_dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        widths = tuple(int(w) for w in widths)
        if not widths:
            raise ValueError("widths: expected at least one convolution width, got ()")
        h, w, c = _check_image_shape(image_shape, len(widths))
        self.image_shape = (h, w, c)
        self.activation = activation
        chans = (c, *widths)
        self.convs = nnx.List(
            [
                nnx.Conv(a, b, kernel_size=(kernel_size, kernel_size), strides=(2, 2), padding="SAME",
                         dtype=dtype, param_dtype=param_dtype, rngs=rngs)
                for a, b in zip(chans[:-1], chans[1:], strict=True)
            ]
        )
        factor = 2 ** len(widths)
        self.dense = nnx.Linear((h // factor) * (w // factor) * widths[-1], int(out_features),
                                dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    def __call__(self, x: Float[Array, "b h w c"]) -> Float[Array, "b o"]:
        check_shape("x", x, (None, *self.image_shape))
        for conv in self.convs:
            x = self.activation(conv(x))
        return self.dense(x.reshape(x.shape[0], -1))


class ConvDecoder(nnx.Module):
    """``[b, in_features] -> [b, h, w, out_channels]``: a dense layer, then stride-2 transposed convs.

    The dense layer maps to ``[h / 2**n, w / 2**n, widths[0]]``; each of the ``n = len(widths)``
    transposed convolutions doubles the resolution, going through ``widths[1:]`` and ending at
    ``out_channels`` (no activation on the output).

    Args:
        in_features: size of the input vector (the latent).
        widths: channels from the coarsest resolution up, e.g. ``(64, 32)`` (7 -> 14 -> 28).
        image_shape: ``(h, w, out_channels)`` of the output.
        kernel_size: square kernel size.
        activation: nonlinearity after the dense layer and each inner convolution.
        dtype: compute dtype; param_dtype: parameter dtype (float32).
        rngs: NNX random streams.
    """

    def __init__(
        self,
        in_features: int,
        widths: Sequence[int],
        image_shape: Sequence[int],
        *,
        kernel_size: int = 4,
        activation: Callable[[Array], Array] = jax.nn.relu,
        dtype: jnp.dtype | None = jnp.float32,
        param_dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        widths = tuple(int(w) for w in widths)
        if not widths:
            raise ValueError("widths: expected at least one width, got ()")
        h, w, c = _check_image_shape(image_shape, len(widths))
        self.in_features = int(in_features)
        self.image_shape = (h, w, c)
        self.activation = activation
        factor = 2 ** len(widths)
        self.base_shape = (h // factor, w // factor, widths[0])
        self.dense = nnx.Linear(self.in_features, h // factor * (w // factor) * widths[0],
                                dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        chans = (*widths, c)
        self.deconvs = nnx.List(
            [
                nnx.ConvTranspose(a, b, kernel_size=(kernel_size, kernel_size), strides=(2, 2),
                                  padding="SAME", dtype=dtype, param_dtype=param_dtype, rngs=rngs)
                for a, b in zip(chans[:-1], chans[1:], strict=True)
            ]
        )

    def __call__(self, z: Float[Array, "b i"]) -> Float[Array, "b h w c"]:
        check_shape("z", z, (None, self.in_features))
        x = self.activation(self.dense(z)).reshape(z.shape[0], *self.base_shape)
        for deconv in self.deconvs[:-1]:
            x = self.activation(deconv(x))
        return self.deconvs[-1](x)
