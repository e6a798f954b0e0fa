"""A time-conditioned MLP for vector data: the $\\varepsilon$- / score network of a 2-D diffusion model.

$e = \\phi(\\text{time\\_scale}\\cdot t)$ (sinusoidal, the Transformer/DDPM timestep embedding, or random
Fourier features), $c = \\mathrm{SiLU}(W_e e)$; then for each hidden layer
$h \\leftarrow \\mathrm{SiLU}(W_i h + U_i c + b_i)$ starting from $h = x$, and the output $W_o h + b_o$
(zero-initialised by default, so an untrained $\\varepsilon$-network predicts 0 and the loss starts at
$\\mathbb E\\|\\varepsilon\\|^2$).

References:
    J. Ho, A. Jain, P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020 (sinusoidal
    timestep embedding); M. Tancik et al., "Fourier Features Let Networks Learn High Frequency
    Functions", NeurIPS 2020 and Y. Song et al., ICLR 2021 (Gaussian Fourier time features);
    Su Jianlin, https://kexue.fm/archives/9152 (a trainable time embedding works as well as the
    sinusoidal one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from kexue_jax._src.typing import Array, Float
from kexue_jax.position.sinusoidal import sinusoidal_embedding

__all__ = ["TIME_EMBEDDINGS", "TimeMLP"]

TIME_EMBEDDINGS = ("sinusoidal", "fourier")


class TimeMLP(nnx.Module):
    """$f_\\theta(x, t)$: an MLP on vectors ``x [b, d]`` conditioned on a float time ``t [b]``.

    Args:
        features: $d$, the size of ``x`` (and of the output unless ``out_features`` is given).
        hidden_features: widths of the hidden layers (at least one).
        out_features: output size (default ``features``).
        time_embedding: ``"sinusoidal"`` (fixed, base 10000) or ``"fourier"`` (fixed random
            Gaussian frequencies of std ``fourier_scale``, drawn from the ``params`` stream).
        embed_dim: size of the time embedding (even).
        time_scale: $t$ is multiplied by this before the embedding (1000: a continuous $t \\in [0, 1]$
            then spans the positions of DDPM's 1000 integer steps).
        fourier_scale: std of the Fourier frequencies (score_sde: 16).
        zero_init_last: zero-initialise the output layer.
        dtype: compute dtype; the output is float32.
        param_dtype: parameter dtype.
        rngs: NNX random streams (``params``).
    """

    def __init__(
        self,
        features: int,
        hidden_features: Sequence[int] = (128, 128, 128),
        *,
        out_features: int | None = None,
        time_embedding: str = "sinusoidal",
        embed_dim: int = 64,
        time_scale: float = 1000.0,
        fourier_scale: float = 16.0,
        zero_init_last: bool = True,
        dtype: jnp.dtype = jnp.float32,
        param_dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        hidden = [int(h) for h in hidden_features]
        out = int(features if out_features is None else out_features)
        if int(features) <= 0 or out <= 0 or not hidden or any(h <= 0 for h in hidden):
            raise ValueError(
                f"features, hidden_features, out_features: expected positive sizes and >= 1 hidden layer, "
                f"got {features}, {tuple(hidden)}, {out}"
            )
        if time_embedding not in TIME_EMBEDDINGS:
            raise ValueError(f"time_embedding: expected one of {TIME_EMBEDDINGS}, got {time_embedding!r}")
        if not isinstance(embed_dim, int) or embed_dim < 2 or embed_dim % 2:
            raise ValueError(f"embed_dim: expected an even int >= 2, got {embed_dim!r}")
        self.features = int(features)
        self.time_embedding = time_embedding
        self.embed_dim = embed_dim
        self.time_scale = float(time_scale)
        if time_embedding == "fourier":
            # Fixed (not trained) frequencies, as in score_sde's GaussianFourierProjection.
            w = fourier_scale * jax.random.normal(rngs.params(), (embed_dim // 2,), jnp.float32)
            self.frequencies = nnx.Variable(w)
        dense = {"dtype": dtype, "param_dtype": param_dtype, "rngs": rngs}
        width = hidden[0]
        self.time_proj = nnx.Linear(embed_dim, width, **dense)
        self.layers = nnx.List(
            [nnx.Linear(a, b, **dense) for a, b in zip([self.features, *hidden[:-1]], hidden, strict=True)]
        )
        self.time_layers = nnx.List([nnx.Linear(width, h, use_bias=False, **dense) for h in hidden])
        zeros = nnx.initializers.zeros_init()
        self.out = nnx.Linear(hidden[-1], out, **dense,
                              **({"kernel_init": zeros} if zero_init_last else {}))

    def embed(self, t: Float[Array, " b"]) -> Float[Array, "b e"]:
        """The time embedding $\\phi(\\text{time\\_scale}\\cdot t)$, float32 ``[b, embed_dim]``."""
        s = jnp.asarray(t, jnp.float32) * self.time_scale
        if self.time_embedding == "sinusoidal":
            return sinusoidal_embedding(s, self.embed_dim)
        angles = 2.0 * math.pi * s[:, None] * self.frequencies[...][None, :] / self.time_scale
        return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)

    def __call__(self, x: Float[Array, "b d"], t: Float[Array, " b"]) -> Float[Array, "b o"]:
        if x.ndim != 2 or x.shape[-1] != self.features:
            raise ValueError(f"x: expected shape (b, {self.features}), got {tuple(x.shape)}")
        t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), (x.shape[0],))
        c = jax.nn.silu(self.time_proj(self.embed(t)))
        h = x
        for layer, time_layer in zip(self.layers, self.time_layers, strict=True):
            h = jax.nn.silu(layer(h) + time_layer(c))
        return self.out(h).astype(jnp.float32)
