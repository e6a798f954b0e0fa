"""A multi-layer perceptron NNX module shared by the model families."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from kexue_jax._src.typing import Array, Float

__all__ = ["MLP"]


class MLP(nnx.Module):
    """Dense layers with an activation between them (none after the last).

    $h_0 = x$, $h_{i+1} = f(W_i h_i + b_i)$, output $W_L h_L + b_L$.

    Args:
        in_features: size of the last input axis.
        hidden_features: sizes of the hidden layers (may be empty: one affine map).
        out_features: size of the output.
        activation: elementwise nonlinearity between layers.
        dtype: compute dtype (e.g. ``jnp.bfloat16`` on GPU); ``None`` keeps the input's.
        param_dtype: dtype of the parameters (float32).
        rngs: NNX random streams for the initialisers.
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: Sequence[int],
        out_features: int,
        *,
        activation: Callable[[Array], Array] = jax.nn.relu,
        dtype: jnp.dtype | None = jnp.float32,
        param_dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        sizes = [int(in_features), *(int(h) for h in hidden_features), int(out_features)]
        if any(s <= 0 for s in sizes):
            raise ValueError(f"in_features, hidden_features, out_features: expected positive sizes, got {sizes}")
        self.in_features = sizes[0]
        self.out_features = sizes[-1]
        self.activation = activation
        self.layers = nnx.List(
            [
                nnx.Linear(a, b, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
                for a, b in zip(sizes[:-1], sizes[1:], strict=True)
            ]
        )

    def __call__(self, x: Float[Array, "*batch i"]) -> Float[Array, "*batch o"]:
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"x: expected shape (..., {self.in_features}), got {tuple(x.shape)}")
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)
