"""NICE, RealNVP and Glow as Flax NNX modules, and as a :class:`~kexue_jax.train.task.Task`.

The module is a thin shell over the pure bijectors of :mod:`kexue_jax.flows.architectures` and
the priors of :mod:`kexue_jax.flows.prior`: it owns their parameters (``nnx.Param`` leaves of the
pure params pytree; the fixed permutations and signs under
:data:`~kexue_jax.flows.bijector.FIXED_KEYS` are :class:`FlowBuffer` state instead) and exposes ``forward(x) -> (z, log_det)``, ``inverse(z)``, ``log_prob(x)``
(nats per example) and ``sample(n, *, key, temperature)``.

Data convention. ``x`` is continuous: dequantized images in $[0, 1)^D$ (``num_bins`` levels;
:func:`~kexue_jax.flows.dequantize.uniform_dequantize`) or real vectors (2-D densities,
``num_bins=None``). Inside the flow, images are first centred ($x - \\tfrac12$, Glow's code) or
logit-transformed (RealNVP, with its log-determinant); both are part of the flow, so ``log_prob``
is the density of ``x`` itself and bits/dim follow from
``bits_per_dim(log_prob, num_dims=D, bin_width=1/num_bins)``.

The engine task (:func:`make_flow_task`) dequantizes the uint8 batches with fresh uniform noise
at every step (and at evaluation: the reported bits/dim are the standard single-sample estimate of
the dequantization bound), optionally zero-pads images (Glow pads MNIST to 32×32 so that three
squeezes fit; the padded pixels count in $D$), initialises actnorm from the first training batch
inside ``init``, and keeps those statistics as ordinary parameters, so a resumed run restores them
from the checkpoint instead of re-initialising.

References:
    Su Jianlin, "细水长flow之NICE：流模型的基本概念与实现", https://kexue.fm/archives/5776;
    Su Jianlin, "细水长flow之RealNVP与Glow：流模型的传承与升华", https://kexue.fm/archives/5807;
    L. Dinh, D. Krueger, Y. Bengio, "NICE", ICLR 2015 workshop; L. Dinh, J. Sohl-Dickstein,
    S. Bengio, "Density estimation using Real NVP", ICLR 2017; D. P. Kingma, P. Dhariwal,
    "Glow: Generative Flow with Invertible 1×1 Convolutions", NeurIPS 2018.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from kexue_jax._src.checks import check_in, check_positive, check_shape
from kexue_jax._src.numerics import mean_f32
from kexue_jax._src.typing import Array, Batch, PRNGKey, PyTree
from kexue_jax.data.densities import DENSITIES, log_density
from kexue_jax.flows.architectures import (
    COUPLINGS,
    PERMUTATIONS,
    coupling_flow_2d,
    glow,
    nice,
    realnvp,
)
from kexue_jax.flows.bijector import Bijector, chain, is_fixed
from kexue_jax.flows.dequantize import quantize, uniform_dequantize
from kexue_jax.flows.logit import logit
from kexue_jax.flows.prior import (
    init_top_prior,
    standard_normal_log_prob,
    top_prior_log_prob,
    top_prior_moments,
)
from kexue_jax.metrics.bits_per_dim import bits_per_dim
from kexue_jax.nn.functional import merge_module, split_module
from kexue_jax.train.plane import PlaneGrid
from kexue_jax.train.task import LossOutput, Task, config_dict

ARCHITECTURES = ("nice", "realnvp", "glow", "coupling_2d")
PREPROCESSING = ("center", "logit", "none")


@dataclasses.dataclass(frozen=True, kw_only=True)
class FlowConfig:
    """Hyperparameters of a flow model (hashable; one field per knob of the papers).

    Attributes:
        architecture: ``"nice"``, ``"realnvp"``, ``"glow"`` or ``"coupling_2d"`` (vectors).
        event_shape: shape of one example as the flow sees it (after padding), e.g. ``(32, 32, 3)``
            or ``(2,)``.
        num_bins: intensity levels of image data (256 for 8-bit), ``None`` for continuous data.
        preprocess: ``"center"`` ($x - 1/2$, Glow), ``"logit"`` (RealNVP's
            $\\mathrm{logit}(\\alpha + (1-2\\alpha)x)$, counted in the log-det) or ``"none"``.
        logit_alpha: $\\alpha$ of the logit preprocessing (RealNVP: 0.05).
        levels: scales $L$ of RealNVP/Glow.
        depth: Glow's steps per level $K$; NICE's coupling layers; steps of a 2-D flow.
        hidden: width of the coupling networks.
        net_depth: hidden layers of an MLP conditioner (NICE: 5; 2-D: 2) or residual blocks of
            RealNVP's ResNet (8).
        coupling: ``"affine"`` or ``"additive"`` (RealNVP/Glow/2-D; NICE is additive).
        scale: affine scale, ``"exp"``, ``"sigmoid"`` (Glow's $\\mathrm{sigmoid}(h+2)$) or
            ``"tanh"`` ($e^{2\\tanh(h/2)}$, soft-clamped).
        permutation: Glow's / 2-D flow's channel mixing: ``"conv1x1_lu"``, ``"conv1x1"``,
            ``"shuffle"``, ``"reverse"``.
        use_actnorm: actnorm in each step of a 2-D flow (Glow always has it).
        learn_top: a learned prior $\\mathcal N(\\mu, \\sigma^2)$ of the top latent.
        num_classes: $> 0$ makes the top prior class-conditional (needs ``learn_top``).
        dtype: compute dtype of the coupling networks (``"bfloat16"`` on GPU); the flow's
            log-determinants, inverse and prior stay float32.
        remat: rematerialise Glow's steps in the backward pass.
        unroll: unroll Glow's ``lax.scan`` over the $K$ steps of a level: compile time grows with
            $K$, but XLA:CPU's backward pass through a scanned conv step is ~6× slower than
            unrolled, so CPU configs unroll and GPU configs scan.
    """

    architecture: str = "glow"
    event_shape: tuple[int, ...] = (28, 28, 1)
    num_bins: int | None = 256
    preprocess: str = "center"
    logit_alpha: float = 0.05
    levels: int = 2
    depth: int = 8
    hidden: int = 128
    net_depth: int = 2
    coupling: str = "affine"
    scale: str = "sigmoid"
    permutation: str = "conv1x1_lu"
    use_actnorm: bool = False
    learn_top: bool = True
    num_classes: int = 0
    dtype: str = "float32"
    remat: bool = False
    unroll: bool = False

    def __post_init__(self) -> None:
        check_in("architecture", self.architecture, ARCHITECTURES)
        check_in("preprocess", self.preprocess, PREPROCESSING)
        check_in("coupling", self.coupling, COUPLINGS)
        check_in("scale", self.scale, ("exp", "sigmoid", "tanh"))
        check_in("permutation", self.permutation, tuple(PERMUTATIONS))
        object.__setattr__(self, "event_shape", tuple(int(s) for s in self.event_shape))
        vector = self.architecture == "coupling_2d"
        if vector and len(self.event_shape) != 1:
            raise ValueError(f"event_shape: coupling_2d needs vectors (d,), got {self.event_shape}")
        if self.architecture in ("realnvp", "glow") and len(self.event_shape) != 3:
            raise ValueError(f"event_shape: {self.architecture} needs images (h, w, c), got {self.event_shape}")
        if self.architecture in ("realnvp", "glow"):
            h, w, _ = self.event_shape
            factor = 2 ** (self.levels if self.architecture == "glow" else self.levels - 1)
            if h % factor or w % factor:
                raise ValueError(
                    f"event_shape: {self.architecture} with levels={self.levels} squeezes h and w by "
                    f"{factor}, got {self.event_shape}; lower levels or pad the images"
                )
        if self.num_bins is not None and (isinstance(self.num_bins, bool) or int(self.num_bins) < 2):
            raise ValueError(f"num_bins: expected an int >= 2 or None, got {self.num_bins!r}")
        if self.num_bins is None and self.preprocess != "none":
            raise ValueError(f"preprocess: continuous data (num_bins=None) takes 'none', got {self.preprocess!r}")
        for name in ("levels", "depth", "hidden", "net_depth"):
            check_positive(name, getattr(self, name))
        if self.num_classes and not self.learn_top:
            raise ValueError("num_classes: a class-conditional prior needs learn_top=True")
        if not 0.0 <= self.logit_alpha < 0.5:
            raise ValueError(f"logit_alpha: expected a value in [0, 0.5), got {self.logit_alpha!r}")

    @property
    def num_dims(self) -> int:
        """$D$, the number of scalar dimensions per example."""
        return math.prod(self.event_shape)

    @property
    def multiscale(self) -> bool:
        return self.architecture in ("realnvp", "glow")


def _center() -> Bijector:
    def init(key: PRNGKey, example_x: Array) -> tuple:
        return ()

    def zero(x: Array) -> Array:
        return jnp.zeros(x.shape[:1], jnp.float32)

    return Bijector(init, lambda p, x: (x - 0.5, zero(x)), lambda p, y: (y + 0.5, zero(y)), name="center")


@functools.lru_cache(maxsize=64)
def build_bijector(config: FlowConfig) -> Bijector:
    """The pure bijector (preprocessing + architecture) of ``config``, cached per config."""
    c = config
    dtype = None if c.dtype == "float32" else c.dtype
    if c.architecture == "nice":
        body = nice(c.event_shape, num_couplings=c.depth, hidden=c.hidden, depth=c.net_depth)
    elif c.architecture == "realnvp":
        body = realnvp(levels=c.levels, hidden=c.hidden, blocks=c.net_depth, coupling=c.coupling,
                       scale=c.scale, dtype=dtype)
    elif c.architecture == "glow":
        body = glow(levels=c.levels, depth=c.depth, hidden=c.hidden, coupling=c.coupling, scale=c.scale,
                    permutation=c.permutation, dtype=dtype, remat=c.remat, unroll=c.unroll)
    else:
        body = coupling_flow_2d(depth=c.depth, hidden=c.hidden, mlp_depth=c.net_depth, coupling=c.coupling,
                                scale=c.scale, use_actnorm=c.use_actnorm, permutation=c.permutation)
    if c.preprocess == "center":
        return chain(_center(), body)
    if c.preprocess == "logit":
        return chain(logit(alpha=c.logit_alpha), body)
    return body


def _values(tree: Any) -> Any:
    return jax.tree.map(lambda v: v[...], tree, is_leaf=lambda v: isinstance(v, nnx.Variable))


def _as_tuple(z: Any) -> tuple[Array, ...]:
    return tuple(z) if isinstance(z, (tuple, list)) else (z,)


class FlowBuffer(nnx.Variable):
    """A fixed value of a flow layer (a leaf under :data:`~kexue_jax.flows.bijector.FIXED_KEYS`).

    Not an ``nnx.Param``, so :func:`~kexue_jax.nn.split_module` puts it in the model state: the
    optimizer, its weight decay and the EMA never see it.
    """


def _wrap(params: Any) -> Any:
    return jax.tree_util.tree_map_with_path(
        lambda path, v: FlowBuffer(v) if is_fixed(path) else nnx.Param(v), params
    )


class Flow(nnx.Module):
    """A normalising flow with a Gaussian base: $\\log p(x) = \\log p_Z(f(x)) + \\log|\\det J_f(x)|$.

    Args:
        config: the :class:`FlowConfig`.
        example: a batch ``[b, *event_shape]`` of continuous data for the data-dependent init
            (actnorm); its values matter, its batch size does not.
        rngs: ``nnx.Rngs`` with a ``params`` stream.
    """

    def __init__(self, config: FlowConfig, example: Array, *, rngs: nnx.Rngs):
        check_shape("example", example, (None, *config.event_shape))
        self.config = config
        # One compiled init instead of many small eager programs (a deep Glow has hundreds of layers).
        params = jax.jit(build_bijector(config).init)(rngs.params(), jnp.asarray(example, jnp.float32))
        self.flow = nnx.data(_wrap(params))
        if config.learn_top:
            top_shape = self._latent_shapes(1)[-1][1:]
            prior = init_top_prior(top_shape, num_classes=config.num_classes)
            self.prior = nnx.data(jax.tree.map(nnx.Param, prior))
        else:
            self.prior = nnx.data(None)

    @property
    def bijector(self) -> Bijector:
        return build_bijector(self.config)

    def _latent_shapes(self, num: int) -> list[tuple[int, ...]]:
        x = jax.ShapeDtypeStruct((num, *self.config.event_shape), jnp.float32)
        out = jax.eval_shape(lambda p, v: self.bijector.forward(p, v)[0], _values(self.flow), x)
        return [tuple(leaf.shape) for leaf in _as_tuple(out)]

    def _check_x(self, x: Array) -> None:
        check_shape("x", x, (None, *self.config.event_shape))

    def forward(self, x: Array) -> tuple[Any, Array]:
        """$z = f(x)$ and $\\log|\\det J_f(x)|$ per example (``z`` a tuple of latents for multi-scale)."""
        self._check_x(x)
        return self.bijector.forward(_values(self.flow), x)

    def inverse(self, z: Any) -> Array:
        """$x = f^{-1}(z)$."""
        return self.bijector.inverse(_values(self.flow), z)[0]

    def log_prob(self, x: Array, labels: Array | None = None) -> Array:
        """$\\log p(x)$ in nats per example (float32 ``[b]``); ``labels`` for a class-conditional prior."""
        conditional = self.prior is not None and "class_mean" in self.prior
        if conditional != (labels is not None):
            raise ValueError(
                "labels: a class-conditional flow needs labels [b], an unconditional one takes none; "
                f"num_classes={self.config.num_classes}, got "
                f"{'none' if labels is None else tuple(jnp.shape(labels))}"
            )
        z, log_det = self.forward(x)
        zs = _as_tuple(z)
        if self.prior is None:
            return standard_normal_log_prob(zs) + log_det
        rest = standard_normal_log_prob(zs[:-1]) if len(zs) > 1 else 0.0
        return rest + top_prior_log_prob(_values(self.prior), zs[-1], labels) + log_det

    def sample(
        self, num: int, *, key: PRNGKey, temperature: float | Array = 1.0, labels: Array | None = None
    ) -> Array:
        """``num`` samples $x = f^{-1}(z)$, $z \\sim$ the prior with standard deviations × ``temperature``.

        ``temperature`` is a scalar or one value per sample (``[num]``), so several temperatures
        share one compiled inverse. Images come back in the flow's continuous space (about
        $[0, 1)$); use :func:`~kexue_jax.flows.dequantize.quantize` for pictures.
        """
        temps = jnp.broadcast_to(jnp.asarray(temperature, jnp.float32), (num,))
        shapes = self._latent_shapes(num)
        keys = jax.random.split(key, len(shapes))

        def scaled(eps: Array) -> Array:
            return temps.reshape(num, *([1] * (eps.ndim - 1))) * eps

        zs = [scaled(jax.random.normal(k, s, jnp.float32)) for k, s in zip(keys, shapes, strict=True)]
        if self.prior is not None:
            mean, log_scale = top_prior_moments(_values(self.prior), num, labels)
            zs[-1] = mean + jnp.exp(log_scale) * zs[-1]
        elif labels is not None:
            raise ValueError("labels: this flow has no class-conditional prior (num_classes=0)")
        z = tuple(zs) if self.config.multiscale else zs[0]
        return self.inverse(z)


def _model_class(architecture: str, doc: str) -> type[Flow]:
    def __init__(self, example: Array, *, rngs: nnx.Rngs, **kwargs: Any):
        # The event shape defaults to the example's (one example = example.shape[1:]).
        kwargs.setdefault("event_shape", tuple(jnp.shape(example)[1:]))
        Flow.__init__(self, FlowConfig(architecture=architecture, **kwargs), example, rngs=rngs)

    return type(architecture.upper() if architecture == "nice" else
                {"realnvp": "RealNVP", "glow": "Glow"}[architecture],
                (Flow,), {"__init__": __init__, "__doc__": doc, "__module__": __name__})


NICE = _model_class("nice", "NICE (kexue.fm 5776): ``NICE(example, rngs=..., **FlowConfig fields)``.")
RealNVP = _model_class("realnvp", "RealNVP (kexue.fm 5807): ``RealNVP(example, rngs=..., **FlowConfig fields)``.")
Glow = _model_class("glow", "Glow (kexue.fm 5807): ``Glow(example, rngs=..., **FlowConfig fields)``.")


# ---------------------------------------------------------------------------------------------
# The engine task.

_TASK_OPTIONS = {"pad": 0, "temperatures": (0.5, 0.7, 1.0), "grid_columns": 8, "num_figure_samples": 64,
                 "plot_range": 4.0, "plot_resolution": 128}
_IGNORED_KEYS = ("name",)


def _feature(info: Any) -> tuple[str, tuple[int, ...]] | None:
    features = getattr(info, "features", None)
    if not features:
        return None
    for name in ("image", "x"):
        if name in features:
            feature = features[name]
            shape = feature[0] if isinstance(feature, (tuple, list)) and isinstance(feature[0], (tuple, list)) \
                else getattr(feature, "shape", feature)
            return name, tuple(int(s) for s in shape)
    raise ValueError(f"info: a flow needs an 'image' or an 'x' feature, got features {sorted(features)}")


def _split_config(model_config: Any, info: Any) -> tuple[FlowConfig, dict[str, Any], str]:
    raw = config_dict(model_config)
    fields = {f.name for f in dataclasses.fields(FlowConfig)}
    unknown = sorted(set(raw) - fields - set(_TASK_OPTIONS) - set(_IGNORED_KEYS))
    if unknown:
        raise ValueError(
            f"model_config: unknown keys {unknown}; expected FlowConfig fields {sorted(fields)} "
            f"or task options {sorted(_TASK_OPTIONS)}"
        )
    options = {k: raw.get(k, v) for k, v in _TASK_OPTIONS.items()}
    options["temperatures"] = tuple(float(t) for t in options["temperatures"])
    pad = int(options["pad"])
    if pad < 0:
        raise ValueError(f"pad: expected an int >= 0, got {pad}")
    kwargs = {k: v for k, v in raw.items() if k in fields}
    feature = _feature(info)
    field = "image"
    if feature is not None:
        field, shape = feature
        if field == "image":
            shape = (shape[0] + 2 * pad, shape[1] + 2 * pad, shape[2])
            num_bins = getattr(info, "num_bins", None)
            if num_bins is not None:
                kwargs.setdefault("num_bins", int(num_bins))
        else:
            kwargs["num_bins"] = None
            kwargs.setdefault("preprocess", "none")
        if "event_shape" in kwargs and tuple(kwargs["event_shape"]) != shape:
            raise ValueError(
                f"model_config: event_shape {tuple(kwargs['event_shape'])} disagrees with the dataset's "
                f"{shape} (after pad={pad})"
            )
        kwargs["event_shape"] = shape
    if field == "x" and pad:
        raise ValueError("pad: only image data can be padded")
    options["density"] = getattr(info, "name", None) if field == "x" else None
    return FlowConfig(**kwargs), options, field


def make_flow_task(model_config: Mapping[str, Any] | Any = None, info: Any = None) -> Task:
    """Build the engine :class:`~kexue_jax.train.task.Task` of a NICE / RealNVP / Glow / 2-D flow.

    Args:
        model_config: the ``model`` section of an experiment config: :class:`FlowConfig` fields plus
            task options ``pad`` (zero-pad images by this many pixels per side, default 0),
            ``temperatures`` (of the sample grids in ``figures``, (0.5, 0.7, 1.0)),
            ``grid_columns`` (8), ``num_figure_samples`` (64), and for 2-D data ``plot_range``
            (the square $[-r, r]^2$ of the density plots, 4.0) and ``plot_resolution`` (128).
        info: the dataset's :class:`~kexue_jax.data.DatasetInfo`: images (``"image"``, uint8 with
            ``num_bins`` levels, labels in ``"label"`` for a class-conditional prior) or vectors
            (``"x"``; a 2-D density of :mod:`kexue_jax.data.densities` adds the exact KL).

    Returns:
        A task with pure, jit-able functions:

        * ``init(batch, *, key)``: builds the flow on the first training batch (actnorm's
          data-dependent init); params are plain nested dicts.
        * ``loss``: negative log-likelihood per dimension (nats/dim); metrics ``nll`` (nats per
          example) and, for images, ``bpd`` (``bits_per_dim`` with ``bin_width = 1/num_bins``).
        * ``evaluate``: ``nll`` and ``bpd``; for a known 2-D density also ``kl`` $=
          \\mathbb E_{p}[\\log p(x) - \\log q(x)]$ in nats (true samples, exact true log-density).
        * ``sample``: images in ``[0, 1]`` (quantized to the data's levels, padding cropped) at
          temperature 1; for 2-D data a one-image histogram of 16 384 samples.
        * ``figures``: images: ``samples_t{T}`` for each temperature; 2-D: ``density`` (the model's
          $q$ on the plot square), ``true_density`` and ``samples``.

    Raises:
        ValueError: on unknown config keys or values that disagree with the dataset.
    """
    config, options, field = _split_config(model_config, info)
    example = jnp.zeros((1, *config.event_shape), jnp.float32) + 0.5
    abstract = nnx.eval_shape(lambda: Flow(config, example, rngs=nnx.Rngs(0)))
    graphdef, _, _ = split_module(abstract)
    num_dims = config.num_dims
    pad = int(options["pad"])
    columns = int(options["grid_columns"])
    density = options["density"] if options["density"] in DENSITIES else None
    bin_width = None if config.num_bins is None else 1.0 / config.num_bins
    conditional = config.num_classes > 0

    def model(params: PyTree, model_state: PyTree | None = None) -> Flow:
        return merge_module(graphdef, params, model_state or {})

    def data_of(batch: Batch, key: PRNGKey | None) -> Array:
        if field not in batch:
            raise ValueError(f"batch: expected a {field!r} entry, got keys {sorted(batch)}")
        x = batch[field]
        if field == "x":
            return jnp.asarray(x, jnp.float32)
        if pad:
            x = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
        return uniform_dequantize(x, num_bins=config.num_bins, key=key)

    def labels_of(batch: Batch) -> Array | None:
        if not conditional:
            return None
        if "label" not in batch:
            raise ValueError(f"batch: a class-conditional flow needs a 'label' entry, got keys {sorted(batch)}")
        return batch["label"]

    def init(batch: Batch, *, key: PRNGKey) -> tuple[PyTree, PyTree]:
        init_key, noise_key = jax.random.split(key)
        x = data_of(batch, noise_key)
        _, params, state = split_module(Flow(config, x, rngs=nnx.Rngs(params=init_key)))
        return params, state

    def nll_metrics(params: PyTree, model_state: PyTree, batch: Batch, key: PRNGKey) -> tuple[Array, dict]:
        x = data_of(batch, key)
        log_prob = model(params, model_state).log_prob(x, labels_of(batch))
        nll = -mean_f32(log_prob)
        metrics = {"nll": nll}
        if bin_width is not None:
            metrics["bpd"] = mean_f32(bits_per_dim(log_prob, num_dims=num_dims, bin_width=bin_width))
        if density is not None:
            metrics["kl"] = mean_f32(log_density(density, x)) + nll
        return nll, metrics

    def loss(params: PyTree, model_state: PyTree, batch: Batch, *, key: PRNGKey) -> LossOutput:
        nll, metrics = nll_metrics(params, model_state, batch, key)
        metrics.pop("kl", None)
        return LossOutput(nll / num_dims, metrics, None)

    def evaluate(params: PyTree, model_state: PyTree, batch: Batch, *, key: PRNGKey) -> dict[str, Array]:
        return nll_metrics(params, model_state, batch, key)[1]

    def sample_labels(num: int) -> Array | None:
        return jnp.arange(num, dtype=jnp.int32) % config.num_classes if conditional else None

    def to_images(x: Array) -> Array:
        # An undertrained flow can send a hot sample to inf/NaN; show it as a black image rather
        # than let NaN reach the PNG writer.
        x = jnp.where(jnp.all(jnp.isfinite(x), axis=(1, 2, 3), keepdims=True), x, 0.0)
        images = quantize(x, num_bins=config.num_bins)
        if pad:
            images = images[:, pad:-pad, pad:-pad, :]
        return images

    plane = PlaneGrid(int(options["plot_resolution"]), float(options["plot_range"]))

    def sample(params: PyTree, model_state: PyTree, num: int, *, key: PRNGKey) -> Array:
        flow = model(params, model_state)
        if field == "x":
            return plane.histogram(flow.sample(16384, key=key))
        return to_images(flow.sample(num, key=key, labels=sample_labels(num)))

    def figures(params: PyTree, model_state: PyTree, batch: Batch, *, key: PRNGKey) -> dict[str, Array]:
        flow = model(params, model_state)
        if field == "x":
            out = {"density": plane.picture(jnp.exp(flow.log_prob(plane.points))),
                   "samples": plane.histogram(flow.sample(16384, key=key))}
            if density is not None:
                out["true_density"] = plane.picture(jnp.exp(log_density(density, plane.points)))
            return out
        num = int(options["num_figure_samples"])
        temps = options["temperatures"]
        # One inverse pass for every temperature: sample[i] uses temps[i // num].
        t = jnp.repeat(jnp.asarray(temps, jnp.float32), num)
        labels = None if not conditional else jnp.tile(sample_labels(num), len(temps))
        images = to_images(flow.sample(num * len(temps), key=key, temperature=t, labels=labels))
        return {f"samples_t{temp:g}": images[i * num:(i + 1) * num] for i, temp in enumerate(temps)}

    return Task(
        name=f"flow[{config.architecture}]",
        init=init,
        loss=loss,
        evaluate=evaluate,
        sample=sample,
        figures=figures,
        grid_columns=columns,
        extras={"config": config, "graphdef": graphdef, "model": model, "options": options},
    )


__all__ = ["ARCHITECTURES", "NICE", "Flow", "FlowConfig", "Glow", "RealNVP", "build_bijector", "make_flow_task"]
