"""MLP and convolutional stacks: shapes, dtypes, argument errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from kexue_jax.nn import MLP, ConvDecoder, ConvEncoder, split_module


def test_mlp_shapes_and_dtypes():
    mlp = MLP(6, [16, 8], 3, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    y = mlp(jnp.ones((2, 4, 6)))
    assert y.shape == (2, 4, 3) and y.dtype == jnp.bfloat16
    _, params, _ = split_module(mlp)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
    assert MLP(6, [], 3, rngs=nnx.Rngs(0))(jnp.ones((1, 6))).shape == (1, 3)
    with pytest.raises(ValueError, match="x: expected shape"):
        mlp(jnp.ones((2, 5)))
    with pytest.raises(ValueError, match="positive sizes"):
        MLP(6, [0], 3, rngs=nnx.Rngs(0))


def test_conv_encoder_decoder_shapes():
    # Small shapes: eager initialisation compiles the truncated-normal initialiser per shape.
    enc = ConvEncoder((12, 8, 1), (4, 4), 6, rngs=nnx.Rngs(0))
    dec = ConvDecoder(6, (4, 4), (12, 8, 2), rngs=nnx.Rngs(0))
    h = enc(jnp.ones((3, 12, 8, 1)))
    assert h.shape == (3, 6)
    assert dec(h).shape == (3, 12, 8, 2)
    with pytest.raises(ValueError, match="x: expected shape"):
        enc(jnp.ones((3, 12, 8)))
    with pytest.raises(ValueError, match="z: expected shape"):
        dec(jnp.ones((3, 9)))
    with pytest.raises(ValueError, match="divisible"):
        ConvEncoder((28, 28, 1), (8, 16, 32), 10, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="image_shape"):
        ConvDecoder(10, (8,), (28, 28), rngs=nnx.Rngs(0))
