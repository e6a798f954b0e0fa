"""A small classifier $p_\\phi(y \\mid x[, t])$ of images or vectors, optionally time-conditioned.

Two uses in the diffusion family (kexue.fm 9257):

* **classifier guidance** needs $\\nabla_x\\log p_\\phi(y \\mid x_t, t)$ on *noisy* inputs, so the
  classifier sees the time: the DDPM UNet's sinusoidal embedding
  (:func:`~kexue_jax.nn.unet.timestep_embedding`) of ``time_scale * t`` goes through a two-layer
  MLP, $e = W_1\\,\\mathrm{SiLU}(W_0\\,\\mathrm{PE}(\\text{time\\_scale}\\cdot t))$, and every block adds
  its own projection $U_\\ell\\,\\mathrm{SiLU}(e)$ to its pre-activation, as the UNet's ResNet
  blocks do (Dhariwal & Nichol's guidance classifier is the UNet's encoder half);
* **sample quality** needs a *clean* classifier ($t$ absent) whose penultimate features define a
  space for a Fréchet distance (:mod:`kexue_jax.metrics.frechet`; not FID, which needs
  Inception-v3) and whose predictions score class-conditional samples.

Images ``[b, h, w, c]`` (NHWC): per resolution level $\\ell$, ``depth`` blocks
$h \\leftarrow \\mathrm{SiLU}(\\mathrm{GN}(\\mathrm{conv}_{3\\times3}(h) [+ U_\\ell\\,\\mathrm{SiLU}(e)]))$
to ``widths[l]`` channels, the first block of every level after the first with stride 2
(28 → 14 → 7 for ``widths`` of length 3); then the global mean over positions. Vectors ``[b, d]``:
one block $h \\leftarrow \\mathrm{SiLU}(W_\\ell h + b_\\ell [+ U_\\ell\\,\\mathrm{SiLU}(e)])$ per entry of
``widths``. Both end in the same head: features $f = \\mathrm{SiLU}(W_f h + b_f)$ of size
``feature_dim`` (:meth:`Classifier.features`) and logits $W_o f + b_o$ (:meth:`Classifier.__call__`).

References:
    Su Jianlin, "生成扩散模型漫谈（九）：条件控制生成结果", https://kexue.fm/archives/9257.
    P. Dhariwal, A. Nichol, "Diffusion Models Beat GANs on Image Synthesis", NeurIPS 2021, §4 and
    App. C (a time-conditioned classifier on noisy images).
    J. Ho, A. Jain, P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020 (the
    sinusoidal timestep embedding).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from kexue_jax._src.checks import check_positive
from kexue_jax._src.typing import Array, Float
from kexue_jax.nn.unet import timestep_embedding

__all__ = ["Classifier"]


class _Block(nnx.Module):
    """$\\mathrm{SiLU}(\\mathrm{norm}(\\mathrm{layer}(h) [+ U\\,\\mathrm{SiLU}(e)]))$; norm is GroupNorm for images, none for vectors."""

    def __init__(self, layer: nnx.Module, norm: nnx.Module | None, time_proj: nnx.Linear | None):
        self.layer = layer
        self.norm = norm
        self.time_proj = time_proj

    def __call__(self, h: Array, temb: Array | None) -> Array:
        h = self.layer(h)
        if self.time_proj is not None:
            c = self.time_proj(jax.nn.silu(temb))
            h = h + c.reshape(c.shape[:1] + (1,) * (h.ndim - 2) + c.shape[1:])
        if self.norm is not None:
            h = self.norm(h)
        return jax.nn.silu(h)


class Classifier(nnx.Module):
    """$p_\\phi(y \\mid x[, t])$ as logits, with the penultimate features exposed (a thin NNX shell).

    Args:
        event_shape: one example's shape: ``(h, w, c)`` (convolutional trunk) or ``(d,)`` (MLP trunk).
        num_classes: number of classes (size of the logits).
        widths: images: channels of each resolution level (``len(widths) - 1`` stride-2
            downsamplings); vectors: widths of the hidden layers.
        depth: blocks per resolution level (images only; vectors have one block per width).
        feature_dim: size of the penultimate features.
        num_groups: GroupNorm groups (images); must divide every width.
        time_conditional: whether the network takes a time ``t`` (a classifier of noisy $x_t$).
        embed_dim: size of the sinusoidal time embedding (even, >= 4); the time MLP has
            ``2 * embed_dim`` units.
        time_scale: ``t`` is multiplied by this before the embedding (1000: a continuous
            $t \\in [0, 1]$ spans the positions of DDPM's 1000 integer steps, as in
            :class:`~kexue_jax.nn.time_mlp.TimeMLP`).
        dtype: compute dtype; logits and features are returned in float32.
        param_dtype: parameter dtype.
        rngs: NNX random streams (``params``).

    Raises:
        ValueError: on an ``event_shape`` of another rank, non-positive sizes, or ``num_groups``
            not dividing a width.

    Example:
        >>> net = Classifier((8, 8, 1), 3, widths=(8, 16), num_groups=4, rngs=nnx.Rngs(0))
        >>> net(jnp.zeros((2, 8, 8, 1))).shape, net.features(jnp.zeros((2, 8, 8, 1))).shape
        ((2, 3), (2, 128))
    """

    def __init__(
        self,
        event_shape: Sequence[int],
        num_classes: int,
        *,
        widths: Sequence[int] = (32, 64, 128),
        depth: int = 2,
        feature_dim: int = 128,
        num_groups: int = 8,
        time_conditional: bool = False,
        embed_dim: int = 64,
        time_scale: float = 1000.0,
        dtype: jnp.dtype = jnp.float32,
        param_dtype: jnp.dtype = jnp.float32,
        rngs: nnx.Rngs,
    ):
        shape = tuple(int(s) for s in event_shape)
        widths = tuple(int(w) for w in widths)
        if len(shape) not in (1, 3) or any(s <= 0 for s in shape):
            raise ValueError(f"event_shape: expected images (h, w, c) or vectors (d,), got {tuple(event_shape)}")
        if not widths or any(w <= 0 for w in widths):
            raise ValueError(f"widths: expected a non-empty tuple of positive ints, got {widths}")
        for name, value in (("num_classes", num_classes), ("depth", depth), ("feature_dim", feature_dim),
                            ("num_groups", num_groups)):
            check_positive(name, value)
        images = len(shape) == 3
        if images and any(w % num_groups for w in widths):
            raise ValueError(f"num_groups: must divide every width {widths}, got num_groups={num_groups}")
        if time_conditional and (isinstance(embed_dim, bool) or embed_dim < 4 or embed_dim % 2):
            raise ValueError(f"embed_dim: expected an even int >= 4, got {embed_dim!r}")
        self.event_shape = shape
        self.num_classes = int(num_classes)
        self.time_conditional = bool(time_conditional)
        self.embed_dim = int(embed_dim)
        self.time_scale = float(time_scale)
        kw = {"dtype": dtype, "param_dtype": param_dtype, "rngs": rngs}
        temb_dim = 2 * self.embed_dim
        if self.time_conditional:
            self.temb0 = nnx.Linear(self.embed_dim, temb_dim, **kw)
            self.temb1 = nnx.Linear(temb_dim, temb_dim, **kw)

        def time_proj(width: int) -> nnx.Linear | None:
            return nnx.Linear(temb_dim, width, use_bias=False, **kw) if self.time_conditional else None

        blocks = []
        cin = shape[-1]
        if images:
            for level, width in enumerate(widths):
                for j in range(int(depth)):
                    stride = 2 if level > 0 and j == 0 else 1
                    conv = nnx.Conv(cin, width, (3, 3), strides=(stride, stride), padding="SAME", **kw)
                    norm = nnx.GroupNorm(width, num_groups=int(num_groups), **kw)
                    blocks.append(_Block(conv, norm, time_proj(width)))
                    cin = width
        else:
            for width in widths:
                blocks.append(_Block(nnx.Linear(cin, width, **kw), None, time_proj(width)))
                cin = width
        self.blocks = nnx.List(blocks)
        self.feature_layer = nnx.Linear(cin, int(feature_dim), **kw)
        self.head = nnx.Linear(int(feature_dim), self.num_classes, **kw)

    def _time_embedding(self, x: Array, t: Array | None) -> Array | None:
        if not self.time_conditional:
            if t is not None:
                raise ValueError(f"t: this classifier is not time-conditional and takes no t, got shape "
                                 f"{tuple(jnp.shape(t))}")
            return None
        if t is None:
            raise ValueError(f"t: a time-conditional classifier needs times [b] for x {tuple(x.shape)}")
        t = jnp.asarray(t, jnp.float32)
        if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != x.shape[0]):
            raise ValueError(f"t: expected a scalar or shape ({x.shape[0]},), got {tuple(t.shape)}")
        t = jnp.broadcast_to(t, (x.shape[0],))
        e = timestep_embedding(self.time_scale * t, self.embed_dim)
        return self.temb1(jax.nn.silu(self.temb0(e)))

    def features(self, x: Float[Array, "b ..."], t: Float[Array, " b"] | None = None) -> Float[Array, "b f"]:
        """The penultimate features $f(x[, t])$, float32 ``[b, feature_dim]``.

        Args:
            x: ``[b, *event_shape]``.
            t: times ``[b]`` (or a scalar) of a time-conditional classifier; ``None`` otherwise.

        Raises:
            ValueError: when ``x`` is not ``[b, *event_shape]`` or ``t`` is given to a classifier
                that takes none (or missing for one that needs it).
        """
        if x.shape[1:] != self.event_shape or x.ndim != len(self.event_shape) + 1:
            raise ValueError(f"x: expected shape (b, {', '.join(map(str, self.event_shape))}), got {tuple(x.shape)}")
        temb = self._time_embedding(x, t)
        h = x
        for block in self.blocks:
            h = block(h, temb)
        if h.ndim == 4:
            h = jnp.mean(h.astype(jnp.float32), axis=(1, 2)).astype(h.dtype)
        return jax.nn.silu(self.feature_layer(h)).astype(jnp.float32)

    def __call__(self, x: Float[Array, "b ..."], t: Float[Array, " b"] | None = None) -> Float[Array, "b k"]:
        """Logits of $p_\\phi(y \\mid x[, t])$, float32 ``[b, num_classes]`` (arguments as :meth:`features`)."""
        return self.head(self.features(x, t)).astype(jnp.float32)
