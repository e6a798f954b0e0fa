"""A time-conditioned MLP for vector data: the $\\varepsilon$- / score network of a 2-D diffusion model.

$e = \\phi(\\text{time\\_scale}\\cdot t)$ (sinusoidal, the Transformer/DDPM timestep embedding, or random
Fourier features), $c = \\mathrm{SiLU}(W_e e)$, or $c = \\mathrm{SiLU}(W_e e + E_y)$ with a learned
embedding $E$ of a label $y$ for a class-conditional network; then for each hidden layer
$h \\leftarrow \\mathrm{SiLU}(W_i h + U_i c + b_i)$ starting from $h = x$, and the output $W_o h + b_o$
(zero-initialised by default, so an untrained $\\varepsilon$-network predicts 0 and the loss starts at
$\\mathbb E\\|\\varepsilon\\|^2$).

The label embedding has ``num_classes + 1`` rows: labels ``0..num_classes-1`` are the classes and
``num_classes`` is the **null label** $\\varnothing$ of classifier-free guidance, the convention of
:class:`~kexue_jax.nn.unet.UNet`, which also adds its label embedding to the time embedding (as the
improved-DDPM / ADM networks do). Trained with labels dropped to the null label
(:func:`kexue_jax.diffusion.guidance.drop_labels`), one network is both $\\varepsilon_\\theta(x, t, y)$
and the unconditional $\\varepsilon_\\theta(x, t, \\varnothing)$.

References:
    J. Ho, A. Jain, P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020 (sinusoidal
    timestep embedding); M. Tancik et al., "Fourier Features Let Networks Learn High Frequency
    Functions", NeurIPS 2020 and Y. Song et al., ICLR 2021 (Gaussian Fourier time features);
    Su Jianlin, https://kexue.fm/archives/9152 (a trainable time embedding works as well as the
    sinusoidal one) and "生成扩散模型漫谈（九）：条件控制生成结果", https://kexue.fm/archives/9257
    (conditional generation); A. Nichol, P. Dhariwal, "Improved Denoising Diffusion Probabilistic
    Models", ICML 2021 (label embedding added to the time embedding); J. Ho, T. Salimans,
    "Classifier-Free Diffusion Guidance", 2022, arXiv:2207.12598 (null label).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from kexue_jax._src.checks import check_integer, check_shape
from kexue_jax._src.typing import Array, Float, Int
from kexue_jax.position.sinusoidal import sinusoidal_embedding

__all__ = ["TIME_EMBEDDINGS", "TimeMLP"]

TIME_EMBEDDINGS = ("sinusoidal", "fourier")


class TimeMLP(nnx.Module):
    """$f_\\theta(x, t[, y])$: an MLP on vectors ``x [b, d]`` conditioned on a float time ``t [b]`` and a label.

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
        num_classes: ``None`` (unconditional) or the number of classes $K$ of a class-conditional
            network, whose label embedding has $K + 1$ rows (label $K$ is the null label).
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
        num_classes: int | None = None,
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
        if num_classes is not None and (isinstance(num_classes, bool) or int(num_classes) < 1):
            raise ValueError(f"num_classes: expected None or an int >= 1, got {num_classes!r}")
        self.num_classes = None if num_classes is None else int(num_classes)
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
        self.label_embed = (
            nnx.Embed(self.num_classes + 1, width, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
            if self.num_classes is not None else None
        )
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

    def _check_labels(self, y: Array | None, x: Array) -> None:
        k = self.num_classes
        if k is None:
            if y is not None:
                raise ValueError(f"y: this TimeMLP is unconditional (num_classes=None) but got labels "
                                 f"of shape {tuple(np.shape(y))}")
            return
        if y is None:
            raise ValueError(f"y: required when num_classes={k}; pass labels of shape ({x.shape[0]},), "
                             f"with {k} (the null label) for the unconditional model")
        check_shape("y", y, (x.shape[0],))
        check_integer("y", y)

    def __call__(
        self, x: Float[Array, "b d"], t: Float[Array, " b"], y: Int[Array, " b"] | None = None
    ) -> Float[Array, "b o"]:
        """$f_\\theta(x, t[, y])$.

        Args:
            x: ``[b, features]``.
            t: float times ``[b]`` (a scalar is broadcast).
            y: ``int [b]`` labels in ``0..num_classes`` (``num_classes`` is the null label), required
                iff ``num_classes`` is set. Their values are not checked here (they may be traced;
                :func:`kexue_jax.diffusion.guidance.check_labels` checks concrete ones), as in
                :class:`~kexue_jax.nn.unet.UNet`.

        Returns:
            float32 ``[b, out_features]``.

        Raises:
            ValueError: on a wrong ``x`` shape, or a missing, unexpected, misshapen or non-integer
                ``y``.
        """
        if x.ndim != 2 or x.shape[-1] != self.features:
            raise ValueError(f"x: expected shape (b, {self.features}), got {tuple(x.shape)}")
        self._check_labels(y, x)
        t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), (x.shape[0],))
        pre = self.time_proj(self.embed(t))
        if self.label_embed is not None:
            pre = pre + self.label_embed(jnp.asarray(y))
        c = jax.nn.silu(pre)
        h = x
        for layer, time_layer in zip(self.layers, self.time_layers, strict=True):
            h = jax.nn.silu(layer(h) + time_layer(c))
        return self.out(h).astype(jnp.float32)
