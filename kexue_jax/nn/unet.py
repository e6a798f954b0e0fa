"""The DDPM UNet $\\varepsilon_\\theta(x_t, t[, y])$ as a Flax NNX module, NHWC.

The noise-prediction network of Ho et al. (2020), Appendix B: a PixelCNN++-style UNet with
$\\text{ch}\\cdot\\text{ch\\_mult}[\\ell]$ channels at resolution level $\\ell$, ``num_res_blocks``
pre-activation ResNet blocks per level on the way down and ``num_res_blocks + 1`` on the way up
(each consuming one skip connection by concatenation), single-head self-attention at the
resolutions in ``attn_resolutions`` and in the middle, GroupNorm everywhere, and the time step fed
to every ResNet block through the sinusoidal embedding of :func:`timestep_embedding` and an MLP:

$e = W_1\\,\\mathrm{swish}(W_0\\,\\mathrm{PE}(t))$ (+ $E[y]$ when class-conditional), and in each
block $h \\mathrel{+}= W_{\\text{temb}}\\,\\mathrm{swish}(e)$ after the first convolution.

With ``UNetConfig.ddpm_cifar10()`` (``ch=128, ch_mult=(1, 2, 2, 2)``, two blocks per level,
attention at 16x16, dropout 0.1) and 32x32x3 images the network has 35,746,307 parameters, the
"35.7M" of the paper's CIFAR-10 model.

Class conditioning (optional, ``num_classes``) adds a learned label embedding to $e$, as the
improved-DDPM / ADM UNets do, with one extra row for the **null label** ``num_classes``: a model
trained with labels dropped to the null label
(:func:`kexue_jax.diffusion.guidance.drop_labels` with ``null_label=config.num_classes``) is both
$\\varepsilon_\\theta(x, t, y)$ and $\\varepsilon_\\theta(x, t, \\varnothing)$, which is what
classifier-free guidance combines.

Note:
    Differences from the original TensorFlow code (``diffusion_tf/models/unet.py``):

    * the layers that DDPM initialises with ``init_scale=0`` (variance scaling with scale
      $10^{-10}$: the second convolution of each ResNet block, the attention output projection and
      the output convolution) are initialised to **exact** zeros here, so every block starts as the
      identity and the network's output is exactly zero at initialisation;
    * dropout takes an explicit PRNG ``key`` (DESIGN.md, Keys) instead of an ``nnx.Dropout`` with a
      stored ``nnx.Rngs``, so the module holds parameters only and round-trips through
      :func:`~kexue_jax.nn.functional.split_module` / :func:`~kexue_jax.nn.functional.merge_module`
      with an empty state;
    * in ``dtype=bfloat16`` GroupNorm statistics and the attention softmax are computed in float32
      (``nnx.GroupNorm`` and :func:`kexue_jax.attention.dot_product_attention` both do).

References:
    Su Jianlin, "生成扩散模型漫谈（一）：DDPM = 拆楼 + 建楼", https://kexue.fm/archives/9119.
    Su Jianlin, "生成扩散模型漫谈（二）：DDPM = 自回归式VAE", https://kexue.fm/archives/9152.
    J. Ho, A. Jain, P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020,
    arXiv:2006.11239, Appendix B.
    A. Nichol, P. Dhariwal, "Improved Denoising Diffusion Probabilistic Models", ICML 2021,
    arXiv:2102.09672 (class-conditional label embedding added to the time embedding).
    J. Ho, T. Salimans, "Classifier-Free Diffusion Guidance", 2022, arXiv:2207.12598 (null label).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from kexue_jax._src.checks import check_integer, check_positive, check_rank
from kexue_jax._src.typing import Array, ArrayLike, Float, Int, PRNGKey
from kexue_jax.attention.dot_product import dot_product_attention

__all__ = ["UNet", "UNetConfig", "timestep_embedding"]

# DDPM's default_init: variance scaling with scale 1, fan_avg, uniform (= Glorot uniform; for a
# convolution the fans include the receptive field).
_default_init = jax.nn.initializers.variance_scaling(1.0, "fan_avg", "uniform")
_zero_init = jax.nn.initializers.zeros
_GROUPNORM_EPSILON = 1e-6  # tf.contrib.layers.group_norm's epsilon, used by DDPM


def timestep_embedding(
    t: ArrayLike, dim: int, *, max_period: float = 10000.0
) -> Float[Array, "*t dim"]:
    """DDPM's sinusoidal embedding of (integer or real) time steps.

    With $m = \\text{dim}/2$ and $\\omega_i = \\text{max\\_period}^{-i/(m-1)}$, $i = 0, \\dots, m-1$:
    $\\mathrm{PE}(t) = [\\sin(t\\omega_0), \\dots, \\sin(t\\omega_{m-1}), \\cos(t\\omega_0), \\dots,
    \\cos(t\\omega_{m-1})]$. The frequencies run from 1 down to exactly $1/\\text{max\\_period}$.

    Args:
        t: time steps, any shape (DDPM uses integers $0..T-1$; a continuous-time model with
            $t\\in[0,1]$ should pass e.g. $1000t$ so that the frequencies stay useful).
        dim: embedding size $2m$, even and at least 4.
        max_period: the longest period, $2\\pi\\,\\text{max\\_period}$ (10000).

    Returns:
        float32 ``t.shape + (dim,)``.

    Raises:
        ValueError: when ``dim`` is not an even integer >= 4 or ``max_period`` is not > 1.

    Example:
        >>> [round(float(v), 4) for v in timestep_embedding(1, 4, max_period=10.0)]
        [0.8415, 0.0998, 0.5403, 0.995]

    Note:
        :func:`kexue_jax.position.sinusoidal_embedding` (the Transformer's table) uses
        $\\theta^{-i/m}$ and interleaves sin and cos; this is the DDPM/``tensor2tensor`` variant
        ($i/(m-1)$, concatenated), kept so that DDPM checkpoints map one-to-one. The two are the
        same table up to a channel permutation when $\\theta = \\text{max\\_period}^{m/(m-1)}$.

    References:
        https://kexue.fm/archives/9119; Ho et al. 2020, ``get_timestep_embedding``;
        Vaswani et al. 2017, §3.5.
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 4 or dim % 2:
        raise ValueError(f"dim: expected an even integer >= 4, got {dim!r}")
    if not max_period > 1:
        raise ValueError(f"max_period: expected a value > 1, got {max_period!r}")
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / (half - 1))
    angles = jnp.asarray(t, jnp.float32)[..., None] * freqs
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


def _dropout(x: Array, rate: float, key: PRNGKey) -> Array:
    # Inverted dropout: E[output] = x.
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)


def _dtype_name(d: Any) -> str:
    return jnp.dtype(d).name


@dataclasses.dataclass(frozen=True, kw_only=True)
class UNetConfig:
    """Hyperparameters of :class:`UNet` (frozen, keyword-only), named as in DDPM's code.

    Attributes:
        out_channels: output channels; ``None`` = the input's (predict $\\varepsilon$ of $x$'s
            shape).
        ch: base channel count; the time embedding has ``ch`` sinusoidal features and ``4 * ch``
            hidden units.
        ch_mult: channel multiplier of each resolution level; ``len(ch_mult) - 1`` downsamplings.
        num_res_blocks: ResNet blocks per level on the way down (``+ 1`` on the way up).
        attn_resolutions: spatial sizes (the feature map's height) at which a self-attention
            block follows each ResNet block.
        dropout: dropout rate inside the ResNet blocks (before the second convolution).
        num_groups: GroupNorm groups; must divide ``ch * m`` for every ``m`` in ``ch_mult``.
        num_classes: ``None`` (unconditional) or the number of classes; labels ``0..num_classes-1``
            are classes and ``num_classes`` is the null label of classifier-free guidance.
        dtype: compute dtype (``"float32"``, ``"bfloat16"``).
        param_dtype: dtype of the parameters.
        resample_with_conv: a 3x3 convolution in the down/upsampling layers (stride-2 conv and
            nearest x2 + conv); ``False`` = 2x2 average pooling and plain nearest upsampling.
    """

    out_channels: int | None = None
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    dropout: float = 0.1
    num_groups: int = 32
    num_classes: int | None = None
    dtype: str = "float32"
    param_dtype: str = "float32"
    resample_with_conv: bool = True

    def __post_init__(self) -> None:
        check_positive("ch", self.ch)
        if not tuple(self.ch_mult) or any(int(m) <= 0 for m in self.ch_mult):
            raise ValueError(f"ch_mult: expected a non-empty tuple of positive ints, got {self.ch_mult!r}")
        check_positive("num_res_blocks", self.num_res_blocks)
        check_positive("num_groups", self.num_groups)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: expected a rate in [0, 1), got {self.dropout!r}")
        if self.out_channels is not None:
            check_positive("out_channels", self.out_channels)
        if self.num_classes is not None:
            check_positive("num_classes", self.num_classes)
        widths = [int(self.ch)] + [int(self.ch) * int(m) for m in self.ch_mult]
        bad = [w for w in widths if w % int(self.num_groups)]
        if bad:
            raise ValueError(
                f"num_groups: must divide every channel count ch * ch_mult = {widths}, "
                f"got num_groups={self.num_groups} (does not divide {bad})"
            )
        # Normalise config-file values (lists, dtype objects) so that configs compare and hash.
        object.__setattr__(self, "ch_mult", tuple(int(m) for m in self.ch_mult))
        object.__setattr__(self, "attn_resolutions", tuple(int(r) for r in self.attn_resolutions))
        object.__setattr__(self, "dtype", _dtype_name(self.dtype))
        object.__setattr__(self, "param_dtype", _dtype_name(self.param_dtype))

    @property
    def null_label(self) -> int | None:
        """The label that means "no class" (``num_classes``), or ``None`` if unconditional."""
        return self.num_classes

    @property
    def num_downsamplings(self) -> int:
        """``len(ch_mult) - 1``: spatial sizes must be divisible by ``2**num_downsamplings``."""
        return len(self.ch_mult) - 1

    @classmethod
    def ddpm_cifar10(cls, **overrides: Any) -> UNetConfig:
        """DDPM's CIFAR-10 model (35.7M parameters on 32x32x3): ``ch=128, ch_mult=(1, 2, 2, 2)``,
        two ResNet blocks per level, attention at 16x16, dropout 0.1 (Ho et al. 2020, App. B)."""
        fields = {"ch": 128, "ch_mult": (1, 2, 2, 2), "num_res_blocks": 2,
                  "attn_resolutions": (16,), "dropout": 0.1, "num_groups": 32}
        return cls(**{**fields, **overrides})

    @classmethod
    def tiny(cls, **overrides: Any) -> UNetConfig:
        """A CPU-test-sized UNet with every kind of layer (for 8x8 images: attention at 4x4).

        ``ch=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), num_groups=4``.
        """
        fields = {"ch": 16, "ch_mult": (1, 2), "num_res_blocks": 1, "attn_resolutions": (4,),
                  "dropout": 0.1, "num_groups": 4}
        return cls(**{**fields, **overrides})


class _Layers:
    """Keyword arguments shared by every layer of one UNet."""

    def __init__(self, cfg: UNetConfig, rngs: nnx.Rngs):
        self.dtype = jnp.dtype(cfg.dtype)
        self.param_dtype = jnp.dtype(cfg.param_dtype)
        self.num_groups = cfg.num_groups
        self.rngs = rngs

    def conv(self, cin: int, cout: int, *, kernel: int = 3, stride: int = 1, zero: bool = False):
        return nnx.Conv(cin, cout, (kernel, kernel), strides=(stride, stride), padding="SAME",
                        kernel_init=_zero_init if zero else _default_init, dtype=self.dtype,
                        param_dtype=self.param_dtype, rngs=self.rngs)

    def dense(self, cin: int, cout: int, *, zero: bool = False):
        return nnx.Linear(cin, cout, kernel_init=_zero_init if zero else _default_init,
                          dtype=self.dtype, param_dtype=self.param_dtype, rngs=self.rngs)

    def norm(self, c: int):
        return nnx.GroupNorm(c, num_groups=self.num_groups, epsilon=_GROUPNORM_EPSILON,
                             dtype=self.dtype, param_dtype=self.param_dtype, rngs=self.rngs)


class _ResnetBlock(nnx.Module):
    """$x \\mapsto S x + \\mathrm{conv}_2(\\mathrm{drop}(\\mathrm{swish}(\\mathrm{GN}(
    \\mathrm{conv}_1(\\mathrm{swish}(\\mathrm{GN}(x))) + W\\mathrm{swish}(e)))))$, $\\mathrm{conv}_2 = 0$ at init.

    $S$ is the identity when the channel count is kept, else a 1x1 convolution (DDPM's
    ``nin_shortcut``).
    """

    def __init__(self, cin: int, cout: int, temb_dim: int, dropout: float, layers: _Layers):
        self.dropout = dropout
        self.norm1 = layers.norm(cin)
        self.conv1 = layers.conv(cin, cout)
        self.temb_proj = layers.dense(temb_dim, cout)
        self.norm2 = layers.norm(cout)
        self.conv2 = layers.conv(cout, cout, zero=True)
        self.shortcut = layers.conv(cin, cout, kernel=1) if cin != cout else None

    def __call__(self, x: Array, temb: Array, key: PRNGKey | None) -> Array:
        h = self.conv1(jax.nn.swish(self.norm1(x)))
        h = h + self.temb_proj(jax.nn.swish(temb))[:, None, None, :]
        h = jax.nn.swish(self.norm2(h))
        if key is not None:
            h = _dropout(h, self.dropout, key)
        h = self.conv2(h)
        if self.shortcut is not None:
            x = self.shortcut(x)
        return x + h


class _AttnBlock(nnx.Module):
    """$x + W_o\\,\\mathrm{softmax}(QK^\\top/\\sqrt{C})\\,V$ over the $hw$ positions, one head,
    $Q, K, V$ 1x1 projections of $\\mathrm{GN}(x)$, $W_o = 0$ at init."""

    def __init__(self, c: int, layers: _Layers):
        self.norm = layers.norm(c)
        self.q = layers.dense(c, c)
        self.k = layers.dense(c, c)
        self.v = layers.dense(c, c)
        self.proj_out = layers.dense(c, c, zero=True)

    def __call__(self, x: Array) -> Array:
        b, hh, ww, c = x.shape
        h = self.norm(x)
        q, k, v = (f(h).reshape(b, hh * ww, 1, c) for f in (self.q, self.k, self.v))
        out = dot_product_attention(q, k, v).reshape(b, hh, ww, c)
        return x + self.proj_out(out)


class _Downsample(nnx.Module):
    def __init__(self, c: int, with_conv: bool, layers: _Layers):
        self.conv = layers.conv(c, c, stride=2) if with_conv else None

    def __call__(self, x: Array) -> Array:
        if self.conv is not None:
            # "SAME" with stride 2 pads (0, 1) on even sizes, as TensorFlow did for DDPM.
            return self.conv(x)
        b, h, w, c = x.shape
        return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


class _Upsample(nnx.Module):
    def __init__(self, c: int, with_conv: bool, layers: _Layers):
        self.conv = layers.conv(c, c) if with_conv else None

    def __call__(self, x: Array) -> Array:
        x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)  # nearest neighbour x2
        return self.conv(x) if self.conv is not None else x


class _Level(nnx.Module):
    """One resolution level of the down or up path: ResNet blocks (+ attention), then resampling."""

    def __init__(self, blocks: list[_ResnetBlock], attns: list[_AttnBlock], resample: nnx.Module | None):
        self.blocks = nnx.List(blocks)
        self.attns = nnx.List(attns)  # empty, or one per block
        self.resample = resample


def _image_size(image_size: int | Sequence[int]) -> tuple[int, int]:
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in size):
        raise ValueError(f"image_size: expected a positive int or (height, width), got {image_size!r}")
    return size  # type: ignore[return-value]


class UNet(nnx.Module):
    """DDPM's noise-prediction UNet $\\varepsilon_\\theta(x_t, t[, y])$ (a thin NNX shell).

    See the module docstring for the architecture. Down path: ``conv_in`` (3x3 to ``ch``), then
    per level $\\ell$ ``num_res_blocks`` ResNet blocks to ``ch * ch_mult[l]`` channels (each followed
    by attention if the level's height is in ``attn_resolutions``), a stride-2 downsampling between
    levels; every output is kept as a skip connection. Middle: ResNet, attention, ResNet. Up path:
    per level ``num_res_blocks + 1`` ResNet blocks on ``concat(h, skip)`` (+ attention), nearest x2
    upsampling between levels. Output: GroupNorm, swish, 3x3 convolution (zero at init).

    Args:
        config: :class:`UNetConfig`.
        in_channels: channels of the input images.
        image_size: ``h`` or ``(h, w)`` of the training images, divisible by
            ``2**(len(ch_mult) - 1)``; it fixes which levels carry attention (the network is
            convolutional and accepts any divisible size at call time).
        rngs: NNX random streams for the initialisers (``params``).

    Raises:
        ValueError: when ``image_size`` is not divisible by ``2**(len(ch_mult) - 1)``, or
            ``in_channels`` is not positive.

    Example:
        >>> import jax.numpy as jnp
        >>> from flax import nnx
        >>> net = UNet(UNetConfig.tiny(), in_channels=1, image_size=8, rngs=nnx.Rngs(0))
        >>> net(jnp.zeros((2, 8, 8, 1)), jnp.array([0, 999])).shape
        (2, 8, 8, 1)

    References:
        https://kexue.fm/archives/9119; Ho et al. 2020, arXiv:2006.11239, Appendix B;
        Nichol & Dhariwal 2021 (label embedding); Ho & Salimans 2022, arXiv:2207.12598 (null label).
    """

    def __init__(
        self,
        config: UNetConfig,
        *,
        in_channels: int,
        image_size: int | Sequence[int],
        rngs: nnx.Rngs,
    ):
        cfg = config
        check_positive("in_channels", in_channels)
        h, w = _image_size(image_size)
        factor = 2**cfg.num_downsamplings
        if h % factor or w % factor:
            raise ValueError(
                f"image_size: height and width must be divisible by 2**(len(ch_mult) - 1) = {factor}, "
                f"got {(h, w)}"
            )
        self.config = cfg
        self.in_channels = int(in_channels)
        self.out_channels = int(cfg.out_channels or in_channels)
        self.image_size = (h, w)
        layers = _Layers(cfg, rngs)
        ch, temb_dim = cfg.ch, 4 * cfg.ch

        self.temb_dense0 = layers.dense(ch, temb_dim)
        self.temb_dense1 = layers.dense(temb_dim, temb_dim)
        self.label_embed = (
            nnx.Embed(cfg.num_classes + 1, temb_dim, dtype=layers.dtype,
                      param_dtype=layers.param_dtype, rngs=rngs)
            if cfg.num_classes is not None else None
        )
        self.conv_in = layers.conv(self.in_channels, ch)

        def res(cin: int, cout: int) -> _ResnetBlock:
            return _ResnetBlock(cin, cout, temb_dim, cfg.dropout, layers)

        # Down path; skip_channels records the channels of every kept activation.
        skip_channels = [ch]
        cur, res_h = ch, h
        down = []
        for level, mult in enumerate(cfg.ch_mult):
            blocks, attns = [], []
            for _ in range(cfg.num_res_blocks):
                blocks.append(res(cur, ch * mult))
                cur = ch * mult
                if res_h in cfg.attn_resolutions:
                    attns.append(_AttnBlock(cur, layers))
                skip_channels.append(cur)
            resample = None
            if level != cfg.num_downsamplings:
                resample = _Downsample(cur, cfg.resample_with_conv, layers)
                skip_channels.append(cur)
                res_h //= 2
            down.append(_Level(blocks, attns, resample))
        self.down = nnx.List(down)

        self.mid_block1 = res(cur, cur)
        self.mid_attn = _AttnBlock(cur, layers)
        self.mid_block2 = res(cur, cur)

        # Up path, from the coarsest level; stored coarse-to-fine in call order.
        up = []
        for level in reversed(range(len(cfg.ch_mult))):
            blocks, attns = [], []
            for _ in range(cfg.num_res_blocks + 1):
                out = ch * cfg.ch_mult[level]
                blocks.append(res(cur + skip_channels.pop(), out))
                cur = out
                if res_h in cfg.attn_resolutions:
                    attns.append(_AttnBlock(cur, layers))
            resample = None
            if level != 0:
                resample = _Upsample(cur, cfg.resample_with_conv, layers)
                res_h *= 2
            up.append(_Level(blocks, attns, resample))
        assert not skip_channels
        self.up = nnx.List(up)

        self.norm_out = layers.norm(cur)
        self.conv_out = layers.conv(cur, self.out_channels, zero=True)

    @property
    def num_res_blocks_total(self) -> int:
        """Number of ResNet blocks (each draws one dropout key)."""
        n = self.config.num_res_blocks
        return len(self.config.ch_mult) * (2 * n + 1) + 2

    def _check_inputs(self, x: Array, t: Array, y: Array | None) -> None:
        cfg = self.config
        check_rank("x", x, 4)
        factor = 2**cfg.num_downsamplings
        if x.shape[1] % factor or x.shape[2] % factor:
            raise ValueError(
                f"x: height and width must be divisible by 2**(len(ch_mult) - 1) = {factor}, "
                f"got shape {tuple(x.shape)}"
            )
        if x.shape[3] != self.in_channels:
            raise ValueError(
                f"x: expected shape (b, h, w, {self.in_channels}) (in_channels={self.in_channels}), "
                f"got {tuple(x.shape)}"
            )
        if jnp.shape(t) != (x.shape[0],):
            raise ValueError(f"t: expected shape ({x.shape[0]},) (one time step per example of x "
                             f"{tuple(x.shape)}), got {jnp.shape(t)}")
        if cfg.num_classes is None:
            if y is not None:
                raise ValueError(f"y: this UNet is unconditional (num_classes=None) but got labels "
                                 f"of shape {jnp.shape(y)}")
        else:
            if y is None:
                raise ValueError(
                    f"y: required when num_classes={cfg.num_classes}; pass labels of shape "
                    f"({x.shape[0]},), with {cfg.num_classes} (the null label) for unconditional"
                )
            if jnp.shape(y) != (x.shape[0],):
                raise ValueError(f"y: expected shape ({x.shape[0]},) (one label per example of x "
                                 f"{tuple(x.shape)}), got {jnp.shape(y)}")
            check_integer("y", y)

    def __call__(
        self,
        x: Float[Array, "b h w c"],
        t: Float[Array, " b"] | Int[Array, " b"],
        y: Int[Array, " b"] | None = None,
        *,
        deterministic: bool = True,
        key: PRNGKey | None = None,
    ) -> Float[Array, "b h w o"]:
        """$\\varepsilon_\\theta(x, t[, y])$.

        Args:
            x: ``[b, h, w, in_channels]`` noisy images; ``h, w`` divisible by
                ``2**(len(ch_mult) - 1)``.
            t: ``[b]`` time steps (int or float; DDPM: integers ``0..T-1``).
            y: ``int [b]`` labels in ``0..num_classes`` (``num_classes`` = null label), required
                iff ``config.num_classes`` is set. Values are not checked (they may be traced).
            deterministic: ``True`` turns dropout off (evaluation and sampling).
            key: PRNG key for dropout; needed when ``deterministic=False`` and ``dropout > 0``.

        Returns:
            ``[b, h, w, out_channels]`` in the compute ``dtype``.

        Raises:
            ValueError: on a wrong rank, spatial size, channel count, ``t``/``y`` shape, a missing
                or unexpected ``y``, or a missing dropout ``key``.
        """
        cfg = self.config
        self._check_inputs(x, t, y)
        use_dropout = not deterministic and cfg.dropout > 0
        if use_dropout and key is None:
            raise ValueError(
                f"key: a PRNG key is required for dropout (deterministic=False, dropout={cfg.dropout})"
            )
        keys = iter(jax.random.split(key, self.num_res_blocks_total)) if use_dropout else None

        def res(block: _ResnetBlock, h: Array, temb: Array) -> Array:
            return block(h, temb, next(keys) if keys is not None else None)

        temb = self.temb_dense1(jax.nn.swish(self.temb_dense0(timestep_embedding(t, cfg.ch))))
        if self.label_embed is not None:
            temb = temb + self.label_embed(y)

        hs = [self.conv_in(x)]
        for level in self.down:
            for i, block in enumerate(level.blocks):
                h = res(block, hs[-1], temb)
                if len(level.attns):
                    h = level.attns[i](h)
                hs.append(h)
            if level.resample is not None:
                hs.append(level.resample(hs[-1]))

        h = res(self.mid_block1, hs[-1], temb)
        h = self.mid_attn(h)
        h = res(self.mid_block2, h, temb)

        for level in self.up:
            for i, block in enumerate(level.blocks):
                h = res(block, jnp.concatenate([h, hs.pop()], axis=-1), temb)
                if len(level.attns):
                    h = level.attns[i](h)
            if level.resample is not None:
                h = level.resample(h)

        return self.conv_out(jax.nn.swish(self.norm_out(h)))
