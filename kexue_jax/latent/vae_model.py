"""The VAE as a Flax NNX module and as a :class:`~kexue_jax.train.task.Task` for the engine.

The module is a thin shell: it owns the encoder and decoder networks and calls the pure functions
of :mod:`kexue_jax.latent.vae` (reparameterisation, closed-form KL, ELBO, IWAE bound, prior path)
and :mod:`kexue_jax.likelihoods` (the decoder's log-likelihood).

Data convention. The engine's batches are ``{"image": uint8 [b, h, w, c] in 0..num_bins-1, ...}``
(a float image is taken to be already scaled to ``[0, 1]``). Depending on
:attr:`VAEConfig.likelihood` the model sees

* ``"bernoulli"`` (default; the article's Keras example also trains a Bernoulli, i.e.
  cross-entropy, decoder on MNIST): intensities $k/(N-1)$ **dynamically
  binarised** (a fresh $\\mathrm{Bernoulli}(x)$ draw at every step, also at evaluation) and a
  Bernoulli decoder. Its nats and bits/dim are those of *binarised* MNIST (bits per binary pixel,
  the numbers of the VAE/IWAE papers), **not** comparable with 8-bit bits/dim.
* ``"discretized_logistic"``: the 8-bit levels mapped to ``[-1, 1]`` ($v_k = 2k/(N-1) - 1$) and a
  per-pixel discretized logistic decoder
  (:func:`~kexue_jax.likelihoods.discretized_logistic_log_prob`, edge bins taking the tails). The
  ELBO is then a bound on the log-**mass** of the 8-bit image, and its bits/dim
  (``bits_per_dim(elbo, num_dims=h*w*c)``, no dequantization offset) are directly comparable with
  the flows' and diffusion models' 8-bit bits/dim.

Why Bernoulli is the default: on the 4000 training images of mnist5k, within the 3-minute CPU
budget, the Bernoulli VAE's prior samples are clearly recognisable digits, whereas the discretized
logistic VAE (which spends its capacity on the exact 8-bit values: KL 25-55 nats against ~16-25)
leaves holes in the aggregate posterior and its prior samples are hazier; it is also about half as
fast per step. Use ``likelihood="discretized_logistic"`` whenever an 8-bit bits/dim is the point.

Images returned by ``sample`` and ``figures`` are the decoder's mean image in ``[0, 1]``, not a
noisy draw: the Bernoulli probabilities $\\sigma(\\ell)$, or the mean of the logistic clipped to
the data range (within half a level of the discretized logistic's mean) mapped to ``[0, 1]``.

References:
    Su Jianlin, "变分自编码器（一）：原来是这么一回事", https://kexue.fm/archives/5253.
    Su Jianlin, "变分自编码器（六）：从几何视角来理解VAE的尝试", https://kexue.fm/archives/7725.
    D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
    Y. Burda, R. Grosse, R. Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from kexue_jax._src.checks import check_in, check_positive, check_shape
from kexue_jax._src.numerics import sum_except_batch, to_f32
from kexue_jax._src.typing import Array, Batch, Float, PRNGKey, PyTree
from kexue_jax.latent.vae import (
    ElboTerms,
    binarize,
    elbo,
    iwae_bound,
    kl_to_standard_normal,
    log_importance_weight,
    prior_path,
    reparameterize,
)
from kexue_jax.likelihoods.bernoulli import bernoulli_log_prob
from kexue_jax.likelihoods.discretized_logistic import (
    discretized_logistic_log_prob,
    discretized_logistic_mean,
)
from kexue_jax.metrics.bits_per_dim import bits_per_dim
from kexue_jax.nn.conv import ConvDecoder, ConvEncoder
from kexue_jax.nn.functional import merge_module, split_module
from kexue_jax.nn.mlp import MLP
from kexue_jax.train.task import LossOutput, Task, config_dict

__all__ = ["VAE", "VAEConfig", "make_vae_task"]

ARCHITECTURES = ("mlp", "conv")
LIKELIHOODS = ("discretized_logistic", "bernoulli")
_DEFAULT_WIDTHS = {"mlp": (512, 256), "conv": (32, 64)}
ACTIVATIONS = {"relu": jax.nn.relu, "silu": jax.nn.silu, "gelu": jax.nn.gelu, "elu": jax.nn.elu,
               "tanh": jnp.tanh}


def _dtype_name(d: Any) -> str:
    return jnp.dtype(d).name


@dataclasses.dataclass(frozen=True, kw_only=True)
class VAEConfig:
    """Hyperparameters of :class:`VAE` (frozen, keyword-only).

    Attributes:
        latent_dim: dimension $d$ of $z$.
        architecture: ``"mlp"`` (dense encoder/decoder, the fast CPU default) or ``"conv"``
            (stride-2 convolutions, :mod:`kexue_jax.nn.conv`).
        widths: hidden sizes of the encoder, from the input inwards (the decoder uses them
            reversed); for ``"mlp"`` the dense widths, for ``"conv"`` the conv channels. ``None``
            picks ``(512, 256)`` for ``"mlp"`` and ``(32, 64)`` for ``"conv"``.
        likelihood: the decoder $p(x\\mid z)$: ``"bernoulli"`` (default; dynamically binarised
            data, bits/dim of binarised MNIST) or ``"discretized_logistic"`` (8-bit data, bits/dim
            comparable across the library); see the module docstring.
        image_shape: ``(h, w, c)`` of the data.
        num_bins: number of intensity levels of the data (256 for 8-bit images).
        min_log_scale: the logistic's $\\log s$ is $m + \\mathrm{softplus}(\\cdot - m)$ with this
            floor $m$ (in units of the ``[-1, 1]`` data range; the bin half-width is
            $1/255 \\approx e^{-5.5}$), which keeps the likelihood bounded without a hard clip.
        dtype: compute dtype of the networks (``"float32"``, ``"bfloat16"``); the likelihood and
            ELBO terms are always float32.
        param_dtype: dtype of the parameters.
        activation: nonlinearity of the networks, one of ``relu``, ``silu``, ``gelu``, ``elu``,
            ``tanh``.
    """

    latent_dim: int = 16
    architecture: str = "mlp"
    widths: tuple[int, ...] | None = None
    likelihood: str = "bernoulli"
    image_shape: tuple[int, int, int] = (28, 28, 1)
    num_bins: int = 256
    min_log_scale: float = -7.0
    dtype: str = "float32"
    param_dtype: str = "float32"
    activation: str = "silu"

    def __post_init__(self) -> None:
        check_positive("latent_dim", self.latent_dim)
        check_in("activation", self.activation, tuple(ACTIVATIONS))
        check_in("architecture", self.architecture, ARCHITECTURES)
        check_in("likelihood", self.likelihood, LIKELIHOODS)
        if len(tuple(self.image_shape)) != 3:
            raise ValueError(f"image_shape: expected (height, width, channels), got {self.image_shape!r}")
        if isinstance(self.num_bins, bool) or int(self.num_bins) != self.num_bins or self.num_bins < 2:
            raise ValueError(f"num_bins: expected an int >= 2, got {self.num_bins!r}")
        widths = _DEFAULT_WIDTHS[self.architecture] if self.widths is None else self.widths
        if not widths or any(int(w) <= 0 for w in widths):
            raise ValueError(f"widths: expected positive sizes, got {self.widths!r}")
        # Normalise config-file values (lists, dtype objects) so that configs compare and hash.
        object.__setattr__(self, "widths", tuple(int(w) for w in widths))
        object.__setattr__(self, "image_shape", tuple(int(s) for s in self.image_shape))
        object.__setattr__(self, "num_bins", int(self.num_bins))
        object.__setattr__(self, "dtype", _dtype_name(self.dtype))
        object.__setattr__(self, "param_dtype", _dtype_name(self.param_dtype))

    @property
    def num_dims(self) -> int:
        """$D = h w c$, the number of scalar dimensions of an image."""
        h, w, c = self.image_shape
        return h * w * c

    @property
    def out_channels(self) -> int:
        """Decoder output channels per image channel: logits (1) or location and log-scale (2)."""
        return (2 if self.likelihood == "discretized_logistic" else 1) * self.image_shape[-1]


class VAE(nnx.Module):
    """Gaussian-encoder VAE with a Bernoulli or discretized-logistic decoder (a thin NNX shell).

    ``x`` below is the model-space image of :meth:`preprocess`: levels in ``[-1, 1]`` for the
    discretized logistic, binary values for the Bernoulli decoder.

    Args:
        config: :class:`VAEConfig`.
        rngs: NNX random streams for the initialisers.
    """

    def __init__(self, config: VAEConfig, *, rngs: nnx.Rngs):
        self.config = config
        cfg = config
        dtype, param_dtype = jnp.dtype(cfg.dtype), jnp.dtype(cfg.param_dtype)
        kw = dict(activation=ACTIVATIONS[cfg.activation], dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        h, w, c = cfg.image_shape
        if cfg.architecture == "mlp":
            self.encoder = MLP(cfg.num_dims, cfg.widths, 2 * cfg.latent_dim, **kw)
            self.decoder = MLP(cfg.latent_dim, cfg.widths[::-1], h * w * cfg.out_channels, **kw)
        else:
            self.encoder = ConvEncoder(cfg.image_shape, cfg.widths, 2 * cfg.latent_dim, **kw)
            self.decoder = ConvDecoder(cfg.latent_dim, cfg.widths[::-1], (h, w, cfg.out_channels), **kw)

    # -- data ---------------------------------------------------------------------------------
    def to_unit(self, images: Array) -> Float[Array, "b h w c"]:
        """Intensities in ``[0, 1]``: $k/(N-1)$ for integer levels, unchanged for float images.

        Raises:
            ValueError: when ``images`` is not ``[b, *image_shape]``.
        """
        cfg = self.config
        check_shape("images", images, (None, *cfg.image_shape))
        if jnp.issubdtype(images.dtype, jnp.integer):
            return images.astype(jnp.float32) / (cfg.num_bins - 1)
        return to_f32(images)

    def preprocess(self, images: Array, *, key: PRNGKey | None = None) -> Float[Array, "b h w c"]:
        """Map a batch of images (uint levels, or floats in ``[0, 1]``) to the model's data space.

        Bernoulli: $x\\sim\\mathrm{Bernoulli}(k/(N-1))$ (needs ``key``); discretized logistic:
        $x = 2k/(N-1) - 1$ (``key`` unused).

        Raises:
            ValueError: when ``images`` is not ``[b, *image_shape]`` or a Bernoulli model gets no key.
        """
        cfg = self.config
        unit = self.to_unit(images)
        if cfg.likelihood == "bernoulli":
            if key is None:
                raise ValueError("key: the Bernoulli VAE binarises its data and needs a key, got None")
            return binarize(unit, key=key)
        return 2.0 * unit - 1.0

    # -- networks -----------------------------------------------------------------------------
    def encode(self, x: Float[Array, "b h w c"]) -> tuple[Float[Array, "b d"], Float[Array, "b d"]]:
        """Posterior parameters $(\\mu(x), \\log\\sigma^2(x))$, float32 ``[b, d]`` each.

        Raises:
            ValueError: when ``x`` is not ``[b, *image_shape]``.
        """
        cfg = self.config
        check_shape("x", x, (None, *cfg.image_shape))
        inp = x.reshape(x.shape[0], -1) if cfg.architecture == "mlp" else x
        out = to_f32(self.encoder(inp.astype(jnp.dtype(cfg.dtype))))
        mean, log_var = jnp.split(out, 2, axis=-1)
        return mean, log_var

    def decode(self, z: Float[Array, "b d"]) -> Float[Array, "b h w o"]:
        """Raw decoder output ``[b, h, w, out_channels]`` (float32): logits, or location and
        pre-activation log-scale stacked on the channel axis.

        Raises:
            ValueError: when ``z`` is not ``[b, latent_dim]``.
        """
        cfg = self.config
        check_shape("z", z, (None, cfg.latent_dim))
        h, w, _ = cfg.image_shape
        out = to_f32(self.decoder(z.astype(jnp.dtype(cfg.dtype))))
        return out.reshape(z.shape[0], h, w, cfg.out_channels)

    def _logistic_params(self, out: Array) -> tuple[Array, Array]:
        c = self.config.image_shape[-1]
        loc, raw = out[..., :c], out[..., c:]
        m = self.config.min_log_scale
        return loc, m + jax.nn.softplus(raw - m)

    def log_likelihood(self, x: Float[Array, "b h w c"], z: Float[Array, "b d"]) -> Float[Array, "b h w c"]:
        """Per-element $\\log p(x\\mid z)$ in float32 nats (a log-mass: data are discrete)."""
        cfg = self.config
        check_shape("x", x, (None, *cfg.image_shape))
        out = self.decode(z)
        if cfg.likelihood == "bernoulli":
            return bernoulli_log_prob(to_f32(x), out)
        loc, log_scale = self._logistic_params(out)
        return discretized_logistic_log_prob(to_f32(x), loc, log_scale, num_bins=cfg.num_bins)

    def mean_image(self, z: Float[Array, "b d"]) -> Float[Array, "b h w c"]:
        """The decoder's mean image for ``z``, in ``[0, 1]``.

        Bernoulli: $\\sigma(\\ell)$. Discretized logistic: $(\\mathbb E[\\mathrm{clip}(Y, -1, 1)] + 1)/2$
        (:func:`~kexue_jax.likelihoods.discretized_logistic_mean`, within half a level of the exact
        discrete mean). The location $\\mu$ (the median) would show an uncertain stroke pixel
        as background; the mean shows it grey, as the Bernoulli probability does.
        """
        out = self.decode(z)
        if self.config.likelihood == "bernoulli":
            return jax.nn.sigmoid(out)
        loc, log_scale = self._logistic_params(out)
        return 0.5 * (discretized_logistic_mean(loc, log_scale) + 1.0)

    # -- objectives ---------------------------------------------------------------------------
    def elbo(self, x: Float[Array, "b h w c"], *, key: PRNGKey) -> ElboTerms:
        """Single-sample ELBO terms per example (float32 nats): see :func:`kexue_jax.latent.vae.elbo`."""
        mean, log_var = self.encode(x)
        z = reparameterize(mean, log_var, key=key)
        return elbo(self.log_likelihood(x, z), mean, log_var)

    def importance_bounds(
        self, x: Float[Array, "b h w c"], *, num_samples: int, key: PRNGKey
    ) -> dict[str, Array]:
        """ELBO and IWAE bound from ``num_samples`` posterior samples per example (float32 nats).

        One encoder pass; the decoder runs on all ``num_samples * b`` latents at once. Returns
        per-example ``elbo`` (the mean of the $K$ reconstruction terms minus the closed-form KL),
        ``recon``, ``kl`` and ``iwae`` ($\\log\\frac1K\\sum_k w_k$), each ``[b]``.
        """
        check_positive("num_samples", num_samples)
        mean, log_var = self.encode(x)
        b, d = mean.shape
        keys = jax.random.split(key, num_samples)
        z = jax.vmap(lambda k: reparameterize(mean, log_var, key=k))(keys)  # [K, b, d]
        xk = jnp.broadcast_to(x[None], (num_samples, *x.shape)).reshape(num_samples * b, *x.shape[1:])
        ll = sum_except_batch(self.log_likelihood(xk, z.reshape(num_samples * b, d)))
        ll = ll.reshape(num_samples, b)
        log_w = jax.vmap(log_importance_weight, in_axes=(0, 0, None, None))(ll, z, mean, log_var)
        kl = kl_to_standard_normal(mean, log_var)
        recon = jnp.mean(ll, axis=0)
        return {"elbo": recon - kl, "recon": recon, "kl": kl, "iwae": iwae_bound(log_w, axis=0)}


# -- the engine task ----------------------------------------------------------------------------

_TASK_OPTIONS = {"iwae_samples": 64, "num_reconstructions": 32, "num_interpolations": 8, "grid_columns": 8}
_IGNORED_KEYS = ("name",)


def _info_image_shape(info: Any) -> tuple[int, int, int] | None:
    """``(h, w, c)`` from ``info.features["image"]``: a ``(shape, dtype)`` pair (``DatasetInfo``),
    anything with ``.shape``, or a bare shape."""
    features = getattr(info, "features", None)
    if features is None:
        return None
    if "image" not in features:
        raise ValueError(f"info: the dataset has no 'image' feature, got features {sorted(features)}")
    feature = features["image"]
    if hasattr(feature, "shape"):
        shape = feature.shape
    elif isinstance(feature, (tuple, list)) and feature and isinstance(feature[0], (tuple, list)):
        shape = feature[0]
    else:
        shape = feature
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3:
        raise ValueError(f"info: expected features['image'] of shape (h, w, c), got {shape}")
    return shape  # type: ignore[return-value]


def _split_config(model_config: Any, info: Any) -> tuple[VAEConfig, dict[str, int]]:
    raw = config_dict(model_config)
    fields = {f.name for f in dataclasses.fields(VAEConfig)}
    unknown = sorted(set(raw) - fields - set(_TASK_OPTIONS) - set(_IGNORED_KEYS))
    if unknown:
        raise ValueError(
            f"model_config: unknown keys {unknown}; expected VAEConfig fields {sorted(fields)} "
            f"or task options {sorted(_TASK_OPTIONS)}"
        )
    kwargs = {k: v for k, v in raw.items() if k in fields}
    if isinstance(kwargs.get("widths"), Sequence):
        kwargs["widths"] = tuple(kwargs["widths"])
    if info is not None:
        shape = _info_image_shape(info)
        if shape is not None:
            if "image_shape" in kwargs and tuple(kwargs["image_shape"]) != shape:
                raise ValueError(
                    f"model_config: image_shape {tuple(kwargs['image_shape'])} disagrees with the "
                    f"dataset's {shape}"
                )
            kwargs["image_shape"] = shape
        num_bins = getattr(info, "num_bins", None)
        if num_bins is not None:
            kwargs.setdefault("num_bins", int(num_bins))
    options = {k: int(raw.get(k, v)) for k, v in _TASK_OPTIONS.items()}
    for k, v in options.items():
        check_positive(k, v)
    return VAEConfig(**kwargs), options


def make_vae_task(model_config: Mapping[str, Any] | Any = None, info: Any = None) -> Task:
    """Build the engine :class:`~kexue_jax.train.task.Task` of a VAE.

    Args:
        model_config: the ``model`` section of an experiment config (``ml_collections.ConfigDict``
            or dict): any :class:`VAEConfig` field plus the task options ``iwae_samples`` (K of
            the IWAE bound in ``evaluate``, default 64), ``num_reconstructions`` (32),
            ``num_interpolations`` (rows of the interpolation figure, 8) and ``grid_columns`` (8);
            a ``name`` key is ignored, any other key is an error.
        info: the dataset's :class:`~kexue_jax.data.DatasetInfo` (``num_bins`` and
            ``features["image"] == ((h, w, c), dtype)``; anything with ``num_bins`` and a
            ``features["image"]`` that is such a pair, has ``.shape`` or is the shape itself), or
            ``None`` to use the config's values.

    Returns:
        A task whose functions are pure and jit-able (``num`` of ``sample`` must be static):

        * ``init(batch, *, key) -> (params, {})``: plain nested-dict parameters.
        * ``loss(params, model_state, batch, *, key)``: ``loss`` $= -$ mean single-sample ELBO
          (nats per example); metrics ``elbo_nats``, ``recon``, ``kl`` (nats per example) and
          ``bpd`` (= ``bits_per_dim(elbo_nats)``).
        * ``evaluate(...)``: ``elbo_nats``, ``recon``, ``kl``, ``bpd`` from ``iwae_samples``
          posterior samples, and ``iwae_nats``/``iwae_bpd``, the tighter IWAE bound.
        * ``sample(params, model_state, num, *, key)``: ``[num, h, w, c]`` decoder mean images of
          $z\\sim\\mathcal N(0, I)$, in ``[0, 1]``.
        * ``figures(...)``: ``"reconstructions"`` (each original image followed by its
          reconstruction from the posterior mean) and ``"interpolation"`` (``num_interpolations``
          rows, each the decoded cos/sin prior path between two random $z$ in ``grid_columns``
          steps), images in ``[0, 1]``.

        ``extras`` holds ``config`` (the :class:`VAEConfig`), ``graphdef`` and ``model(params)``,
        which rebuilds the :class:`VAE` module from parameters.

    Raises:
        ValueError: on unknown config keys, invalid values, or an image shape that disagrees with
            ``info``.
    """
    config, options = _split_config(model_config, info)
    abstract = nnx.eval_shape(lambda: VAE(config, rngs=nnx.Rngs(0)))
    graphdef, _, _ = split_module(abstract)
    num_dims = config.num_dims
    iwae_k = options["iwae_samples"]
    columns = options["grid_columns"]

    def model(params: PyTree, model_state: PyTree | None = None) -> VAE:
        return merge_module(graphdef, params, model_state or {})

    def images_of(batch: Batch) -> Array:
        if "image" not in batch:
            raise ValueError(f"batch: expected an 'image' entry, got keys {sorted(batch)}")
        return batch["image"]

    def init(batch: Batch, *, key: PRNGKey) -> tuple[PyTree, PyTree]:
        check_shape("batch['image']", images_of(batch), (None, *config.image_shape))
        vae = VAE(config, rngs=nnx.Rngs(params=key))
        _, params, state = split_module(vae)
        return params, state

    def loss(params: PyTree, model_state: PyTree, batch: Batch, *, key: PRNGKey) -> LossOutput:
        vae = model(params, model_state)
        data_key, z_key = jax.random.split(key)
        x = vae.preprocess(images_of(batch), key=data_key)
        terms = vae.elbo(x, key=z_key)
        mean_elbo = jnp.mean(terms.elbo)
        metrics = {
            "elbo_nats": mean_elbo,
            "recon": jnp.mean(terms.recon),
            "kl": jnp.mean(terms.kl),
            "bpd": bits_per_dim(mean_elbo, num_dims=num_dims),
        }
        return LossOutput(loss=-mean_elbo, metrics=metrics)

    def evaluate(params: PyTree, model_state: PyTree, batch: Batch, *, key: PRNGKey) -> dict[str, Array]:
        vae = model(params, model_state)
        data_key, z_key = jax.random.split(key)
        x = vae.preprocess(images_of(batch), key=data_key)
        out = {k: jnp.mean(v) for k, v in vae.importance_bounds(x, num_samples=iwae_k, key=z_key).items()}
        return {
            "elbo_nats": out["elbo"],
            "recon": out["recon"],
            "kl": out["kl"],
            "bpd": bits_per_dim(out["elbo"], num_dims=num_dims),
            "iwae_nats": out["iwae"],
            "iwae_bpd": bits_per_dim(out["iwae"], num_dims=num_dims),
        }

    def sample(params: PyTree, model_state: PyTree, num: int, *, key: PRNGKey) -> Array:
        vae = model(params, model_state)
        z = jax.random.normal(key, (num, config.latent_dim), jnp.float32)
        return vae.mean_image(z)

    def figures(params: PyTree, model_state: PyTree, batch: Batch, *, key: PRNGKey) -> dict[str, Array]:
        vae = model(params, model_state)
        data_key, z_key = jax.random.split(key)
        images = images_of(batch)
        n = min(options["num_reconstructions"], images.shape[0])
        x = vae.preprocess(images[:n], key=data_key)
        mean, _ = vae.encode(x)
        recon = vae.mean_image(mean)
        original = vae.to_unit(images[:n])
        pairs = jnp.stack([original, recon], axis=1).reshape(2 * n, *config.image_shape)

        rows = options["num_interpolations"]
        k1, k2 = jax.random.split(z_key)
        z1 = jax.random.normal(k1, (rows, config.latent_dim), jnp.float32)
        z2 = jax.random.normal(k2, (rows, config.latent_dim), jnp.float32)
        path = prior_path(z1, z2, columns)  # [columns, rows, d]
        path = jnp.swapaxes(path, 0, 1).reshape(rows * columns, config.latent_dim)
        return {"reconstructions": pairs, "interpolation": vae.mean_image(path)}

    return Task(
        name="vae",
        init=init,
        loss=loss,
        evaluate=evaluate,
        sample=sample,
        figures=figures,
        grid_columns=columns,
        extras={"config": config, "graphdef": graphdef, "model": model, "options": dict(options)},
    )
