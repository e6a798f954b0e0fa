"""Classifiers for diffusion models as an engine task: noisy $p_\\phi(y \\mid x_t, t)$ for guidance, clean $p_\\phi(y \\mid x)$ for scoring.

Classifier guidance (kexue.fm 9257; Dhariwal & Nichol 2021) samples from
$p_t(x \\mid y) \\propto p_t(x)\\,p_t(y \\mid x)^\\gamma$ by adding $\\gamma\\nabla_x\\log p_\\phi(y \\mid x_t, t)$
to the score of an unconditional model, so it needs a classifier of the *noisy* $x_t$ of the same
forward process $x_t = m_t x_0 + s_t\\varepsilon$. Task ``"classifier"`` trains one by
cross-entropy,

$\\mathcal L(\\phi) = \\mathbb E_{(x_0, y),\\,t,\\,\\varepsilon}\\bigl[-\\log p_\\phi(y \\mid m_t x_0 + s_t\\varepsilon,\\ t)\\bigr]$,

with the times of the diffusion task: $t = (i + 1)/T$, $i \\sim U\\{0..T-1\\}$ for ``process="ddpm"``
and $t \\sim U[\\epsilon, 1]$ for the SDEs. The process comes from the same fields as a
:class:`~kexue_jax.diffusion.diffusion_model.DiffusionConfig` (``process``, ``schedule``,
``num_steps``, ``beta_min``, ...), built by the same
:func:`~kexue_jax.diffusion.diffusion_model.build_process`, so a classifier with the fields of a
diffusion experiment sees exactly that model's $x_t$. As in the diffusion model, the network sees
$x_t/\\sqrt{m_t^2 + s_t^2}$ (unchanged for VP/DDPM) and images as $2k/(K - 1) - 1 \\in [-1, 1]$.

``noise="none"`` trains a clean classifier instead ($t$ absent, no noise): its penultimate
features are the space of the Fréchet distance of :mod:`kexue_jax.diffusion.sample_quality` and its
predictions score class-conditional samples.

Labels come from the data (``labels="data"``: ``batch["label"]``) or, for the 2-D densities, which
carry none, from the angle (``labels="angular_sector"``, :func:`angular_sector_labels`): for
``eight_gaussians`` with ``num_classes=8`` that is the nearest mixture component, the Bayes
classifier of the component.

References:
    Su Jianlin, "生成扩散模型漫谈（九）：条件控制生成结果", https://kexue.fm/archives/9257.
    P. Dhariwal, A. Nichol, "Diffusion Models Beat GANs on Image Synthesis", NeurIPS 2021, §4.
    Y. Song et al., "Score-Based Generative Modeling through Stochastic Differential Equations",
    ICLR 2021, §5 and App. I.4 (class-conditional sampling with a time-dependent classifier).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from kexue_jax._src.checks import check_in, check_integer, check_positive, check_shape
from kexue_jax._src.numerics import mean_f32
from kexue_jax._src.typing import Array, Batch, Float, Int, PRNGKey, PyTree
from kexue_jax.diffusion._broadcast import per_example
from kexue_jax.diffusion.diffusion_model import DiffusionConfig, build_process
from kexue_jax.diffusion.guidance import classifier_guided_eps, classifier_guided_score
from kexue_jax.diffusion.posterior import marginal_coeffs
from kexue_jax.diffusion.samplers.registry import ModelFns
from kexue_jax.diffusion.task_data import (
    LABEL_SOURCES,
    angular_sector_labels,
    batch_labels,
    check_label_feature,
    feature_shape,
)
from kexue_jax.nn.classifier import Classifier
from kexue_jax.nn.functional import merge_module, split_module
from kexue_jax.train.task import LossOutput, Task, config_dict

NOISES = ("none", "forward")
PROCESS_FIELDS = ("process", "schedule", "num_steps", "beta_min", "beta_max", "sigma_min", "sigma_max", "loss_eps")

LogProbFn = Callable[[Array, Array, Array], Array]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ClassifierConfig:
    """Hyperparameters of a (noisy or clean) classifier (hashable).

    Attributes:
        num_classes: number of classes.
        event_shape: one example: ``(h, w, c)`` images of ``num_bins`` levels or ``(d,)`` vectors.
        widths: channels per resolution level (images) or hidden widths (vectors) of
            :class:`~kexue_jax.nn.classifier.Classifier`.
        depth: blocks per resolution level (images).
        feature_dim: size of the penultimate features.
        num_groups: GroupNorm groups (images).
        embed_dim: size of the sinusoidal time embedding (``noise="forward"``).
        noise: ``"forward"`` (a time-conditional classifier of $x_t$, for guidance) or ``"none"``
            (a clean classifier of $x_0$).
        diffusion: the forward process (``"forward"`` only): a
            :class:`~kexue_jax.diffusion.diffusion_model.DiffusionConfig`, or a mapping of its
            fields :data:`PROCESS_FIELDS` (``process``, ``schedule``, ``num_steps``, ``beta_min``,
            ...; their defaults are the diffusion model's), or ``None`` for all defaults. Stored as
            a ``DiffusionConfig`` of which only those fields matter. In an experiment config they
            are flat keys of the ``model`` section, as in a diffusion experiment.
        labels: ``"data"`` (``batch["label"]``) or ``"angular_sector"`` (2-D vectors; see
            :func:`angular_sector_labels`).
        num_bins: levels of the image data (pixel $k \\mapsto 2k/(K - 1) - 1$).
        max_shift: training augmentation of images: a random translation by up to this many
            pixels in each direction, filled with the background level 0 (0: none; clean
            classifiers only).
        dtype: compute dtype of the network; losses and log-probabilities stay float32.
    """

    num_classes: int = 10
    event_shape: tuple[int, ...] = (28, 28, 1)
    widths: tuple[int, ...] = (32, 64, 128)
    depth: int = 2
    feature_dim: int = 128
    num_groups: int = 8
    embed_dim: int = 64
    noise: str = "none"
    diffusion: Any = None
    labels: str = "data"
    num_bins: int = 256
    max_shift: int = 0
    dtype: str = "float32"

    def __post_init__(self) -> None:
        check_in("noise", self.noise, NOISES)
        check_in("labels", self.labels, LABEL_SOURCES)
        object.__setattr__(self, "event_shape", tuple(int(s) for s in self.event_shape))
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        if len(self.event_shape) not in (1, 3):
            raise ValueError(f"event_shape: expected images (h, w, c) or vectors (d,), got {self.event_shape}")
        if self.labels == "angular_sector" and self.event_shape != (2,):
            raise ValueError(f"labels: 'angular_sector' labels 2-D vectors, got event_shape {self.event_shape}")
        for name in ("num_classes", "num_bins"):
            check_positive(name, getattr(self, name))
        if isinstance(self.max_shift, bool) or int(self.max_shift) < 0:
            raise ValueError(f"max_shift: expected an int >= 0, got {self.max_shift!r}")
        if self.max_shift and (not self.images or self.noise != "none"):
            raise ValueError(f"max_shift: the shift augmentation is for clean image classifiers, got "
                             f"max_shift={self.max_shift} with event_shape={self.event_shape}, noise={self.noise!r}")
        object.__setattr__(self, "diffusion", _process_config(self.diffusion))

    @property
    def images(self) -> bool:
        return len(self.event_shape) == 3

    @property
    def time_conditional(self) -> bool:
        return self.noise != "none"


def _process_config(spec: Any) -> DiffusionConfig:
    """The :class:`DiffusionConfig` of ``ClassifierConfig.diffusion``, validated as the diffusion model's own."""
    if isinstance(spec, DiffusionConfig):
        return spec
    fields = config_dict(spec)
    unknown = sorted(set(fields) - set(PROCESS_FIELDS))
    if unknown:
        raise ValueError(f"diffusion: unknown keys {unknown}; expected fields of the forward process {PROCESS_FIELDS}")
    # sampler_steps only bounds the sampler, which a classifier does not have; 1 is valid for every T.
    return DiffusionConfig(**fields, sampler_steps=1)


def _shift(images: Array, max_shift: int, key: PRNGKey) -> Array:
    """Translate each image in $[-1, 1]$ by up to ``max_shift`` pixels (background $-1$ fill): a crop of the padded image."""
    b, h, w, _ = images.shape
    padded = jnp.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)), constant_values=-1.0)
    offsets = jax.random.randint(key, (b, 2), 0, 2 * max_shift + 1)

    def crop(img, off):
        return jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, img.shape[-1]))

    return jax.vmap(crop)(padded, offsets)


class ClassifierModel(nnx.Module):
    """$p_\\phi(y \\mid x_t[, t])$: a :class:`~kexue_jax.nn.classifier.Classifier` and its forward process.

    Args:
        config: the :class:`ClassifierConfig`.
        rngs: ``nnx.Rngs`` with a ``params`` stream.
    """

    def __init__(self, config: ClassifierConfig, *, rngs: nnx.Rngs):
        self.config = config
        c = config
        self.net = Classifier(c.event_shape, c.num_classes, widths=c.widths, depth=c.depth,
                              feature_dim=c.feature_dim, num_groups=c.num_groups,
                              time_conditional=c.time_conditional, embed_dim=c.embed_dim,
                              dtype=jnp.dtype(c.dtype), rngs=rngs)

    def _inputs(self, x: Array, t: Array | None) -> tuple[Array, Array | None]:
        if not self.config.time_conditional:
            if t is not None:
                raise ValueError(f"t: a clean classifier (noise='none') takes no time, got shape {tuple(jnp.shape(t))}")
            return x, None
        if t is None:
            raise ValueError(f"t: a noisy classifier (noise='forward') needs times [b] for x {tuple(x.shape)}")
        t = jnp.broadcast_to(jnp.asarray(t, jnp.float32), (x.shape[0],))
        m, s = build_process(self.config.diffusion)[1].marginal_coeffs(t)
        return x / per_example(jnp.sqrt(m * m + s * s), x), t

    def logits(self, x: Float[Array, "b ..."], t: Float[Array, " b"] | None = None) -> Float[Array, "b k"]:
        """Logits of $p_\\phi(y \\mid x[, t])$ at continuous times $t \\in [0, 1]$ (``None`` for a clean classifier)."""
        return self.net(*self._inputs(x, t))

    def features(self, x: Float[Array, "b ..."], t: Float[Array, " b"] | None = None) -> Float[Array, "b f"]:
        """The penultimate features (the space of the classifier Fréchet distance)."""
        return self.net.features(*self._inputs(x, t))

    def log_prob(
        self, x: Float[Array, "b ..."], t: Float[Array, " b"] | None, y: Int[Array, " b"]
    ) -> Float[Array, " b"]:
        """$\\log p_\\phi(y \\mid x[, t])$ in nats, float32 ``[b]``."""
        return self._log_prob_of(jax.nn.log_softmax(self.logits(x, t), axis=-1), y)

    @staticmethod
    def _log_prob_of(log_p: Array, y: Array) -> Array:
        check_integer("y", y)
        check_shape("y", y, (log_p.shape[0],))
        return jnp.take_along_axis(log_p, y[:, None].astype(jnp.int32), axis=-1)[:, 0]

    def noised(self, x0: Float[Array, "b ..."], *, key: PRNGKey) -> tuple[Array, Array | None]:
        """$(x_t, t)$ with the training times (module docstring); $(x_0, \\text{None})$ for ``noise="none"``."""
        if not self.config.time_conditional:
            return x0, None
        c = self.config.diffusion
        k_t, k_eps = jax.random.split(key)
        b = x0.shape[0]
        if c.discrete:
            t = (jax.random.randint(k_t, (b,), 0, c.num_steps).astype(jnp.float32) + 1.0) / c.num_steps
        else:
            t = jax.random.uniform(k_t, (b,), jnp.float32, minval=c.loss_eps, maxval=1.0)
        return self.noised_at(x0, t, key=k_eps), t

    def noised_at(self, x0: Float[Array, "b ..."], t: Float[Array, " b"], *, key: PRNGKey) -> Float[Array, "b ..."]:
        """$x_t = m_t x_0 + s_t\\varepsilon$ at given times."""
        mean, s = build_process(self.config.diffusion)[1].marginal(x0, t)
        return mean + per_example(s, x0) * jax.random.normal(key, x0.shape, jnp.float32)

    def cross_entropy(
        self, x: Float[Array, "b ..."], t: Float[Array, " b"] | None, y: Int[Array, " b"]
    ) -> tuple[Float[Array, " b"], Float[Array, " b"]]:
        """Per-example $-\\log p_\\phi(y \\mid x[, t])$ and whether the argmax is $y$ (1.0 or 0.0)."""
        log_p = jax.nn.log_softmax(self.logits(x, t), axis=-1)
        return -self._log_prob_of(log_p, y), (jnp.argmax(log_p, axis=-1) == y).astype(jnp.float32)

    def loss(self, x0: Float[Array, "b ..."], y: Int[Array, " b"], *, key: PRNGKey) -> tuple[Array, Array]:
        """:meth:`cross_entropy` at training noise (and shifts, with ``max_shift``)."""
        k_aug, k_noise = jax.random.split(key)
        if self.config.max_shift:
            x0 = _shift(x0, int(self.config.max_shift), k_aug)
        return self.cross_entropy(*self.noised(x0, key=k_noise), y)


# ---------------------------------------------------------------------------------------------
# Guidance.


def classifier_log_prob_fn(task: Task, params: PyTree, model_state: PyTree | None = None) -> LogProbFn:
    """The ``log_prob_fn(x, t, y) -> [b]`` of a trained time-conditional classifier, for guidance.

    Args:
        task: the ``"classifier"`` task (``noise="forward"``).
        params: its (EMA) parameters.
        model_state: its model state (``{}``).

    Returns:
        ``(x [b, ...], t float32 [b], y int [b]) -> log p(y | x_t, t)`` float32 ``[b]``, at the
        continuous times of the diffusion model (DDPM step $i$ is $t = (i + 1)/T$); the argument
        ``classifier_log_prob`` of :func:`~kexue_jax.diffusion.guidance.classifier_guided_score`.

    Raises:
        ValueError: when the task's classifier is a clean one (``noise="none"``).
    """
    config = task.extras["config"]
    if not config.time_conditional:
        raise ValueError("task: classifier guidance needs a noisy classifier (noise='forward'), got noise='none'")
    net = task.extras["model"](params, model_state)
    return net.log_prob


def classifier_guided_fns(model: ModelFns, log_prob_fn: LogProbFn, y: Int[Array, " b"], *, scale: float) -> ModelFns:
    """Classifier guidance on both parameterisations of a sampler bundle.

    Discrete: $\\hat\\varepsilon(x, i) = \\varepsilon_\\theta(x, i) - \\gamma\\sqrt{1 - \\bar\\alpha_i}\\,
    \\nabla_x\\log p_\\phi(y \\mid x, (i + 1)/T)$ (:func:`~kexue_jax.diffusion.guidance.classifier_guided_eps`);
    continuous: $\\hat s(x, t) = s_\\theta(x, t) + \\gamma\\nabla_x\\log p_\\phi(y \\mid x, t)$
    (:func:`~kexue_jax.diffusion.guidance.classifier_guided_score`). $\\gamma = 0$ returns the
    model's own values (every sampler then draws exactly the unguided samples); $\\gamma = 1$ is
    the score of $p_t(x \\mid y)$ when $p_\\phi$ is exact.

    Args:
        model: the unconditional model's :class:`~kexue_jax.diffusion.samplers.ModelFns`.
        log_prob_fn: ``(x, t, y) -> [b]`` at continuous times, e.g. :func:`classifier_log_prob_fn`.
        y: requested labels, int ``[b]`` (the sampler's batch).
        scale: $\\gamma$.

    Returns:
        The guided :class:`ModelFns`.
    """
    check_integer("y", y)
    schedule, eps_fn, sde, score_fn = model
    num_steps = schedule.num_steps

    def log_prob_discrete(x: Array, i: Array, labels: Array) -> Array:
        return log_prob_fn(x, (i.astype(jnp.float32) + 1.0) / num_steps, labels)

    eps = classifier_guided_eps(eps_fn, log_prob_discrete, y, lambda i: marginal_coeffs(schedule, i)[1], scale=scale)
    score = classifier_guided_score(score_fn, log_prob_fn, y, scale=scale)
    return ModelFns(schedule, eps, sde, score)


def check_same_process(classifier: ClassifierConfig, diffusion: DiffusionConfig) -> None:
    """Raise ``ValueError`` unless the classifier was trained on the diffusion model's forward process."""
    if not classifier.time_conditional:
        raise ValueError("classifier: guidance needs a noisy classifier (noise='forward'), got noise='none'")
    names = ("process", "num_steps", "schedule") if diffusion.discrete else ("process", "beta_min", "beta_max",
                                                                            "sigma_min", "sigma_max")
    diff = {k: (getattr(classifier.diffusion, k), getattr(diffusion, k)) for k in names
            if getattr(classifier.diffusion, k) != getattr(diffusion, k)}
    if diff:
        raise ValueError(f"classifier: trained on another forward process than the diffusion model; "
                         f"(classifier, diffusion) values differ for {diff}")


# ---------------------------------------------------------------------------------------------
# The engine task.

_TASK_OPTIONS = {"eval_times": (0.25, 0.5, 0.75)}
_IGNORED_KEYS = ("name",)


def _split_config(model_config: Any, info: Any) -> tuple[ClassifierConfig, dict[str, Any]]:
    raw = config_dict(model_config)
    fields = {f.name for f in dataclasses.fields(ClassifierConfig)}
    unknown = sorted(set(raw) - fields - set(PROCESS_FIELDS) - set(_TASK_OPTIONS) - set(_IGNORED_KEYS))
    if unknown:
        raise ValueError(f"model_config: unknown keys {unknown}; expected ClassifierConfig fields {sorted(fields)}, "
                         f"forward-process fields {sorted(PROCESS_FIELDS)} or task options {sorted(_TASK_OPTIONS)}")
    options = {k: raw.get(k, v) for k, v in _TASK_OPTIONS.items()}
    options["eval_times"] = tuple(float(t) for t in options["eval_times"])
    if any(not 0.0 < t <= 1.0 for t in options["eval_times"]):
        raise ValueError(f"eval_times: expected times in (0, 1], got {options['eval_times']}")
    kwargs = {k: v for k, v in raw.items() if k in fields}
    process = {k: raw[k] for k in PROCESS_FIELDS if k in raw}
    if process:
        if "diffusion" in kwargs:
            raise ValueError(f"model_config: give the forward process as flat keys {sorted(process)} or as "
                             f"'diffusion', not both")
        kwargs["diffusion"] = process
    features = getattr(info, "features", None) or {}
    key = "image" if "image" in features else "x" if "x" in features else None
    if features and key is None:
        raise ValueError(f"info: a classifier needs an 'image' or an 'x' feature, got features {sorted(features)}")
    if key is not None:
        shape = feature_shape(features[key])
        if "event_shape" in kwargs and tuple(kwargs["event_shape"]) != shape:
            raise ValueError(f"model_config: event_shape {tuple(kwargs['event_shape'])} disagrees with the "
                             f"dataset's {shape}")
        kwargs["event_shape"] = shape
        if key == "image" and getattr(info, "num_bins", None) is not None:
            kwargs["num_bins"] = int(info.num_bins)
        check_label_feature(info, features, source=kwargs.get("labels", "data"),
                            num_classes=kwargs.get("num_classes", ClassifierConfig.num_classes))
    return ClassifierConfig(**kwargs), options


def _metric_time(t: float) -> str:
    return f"{t:g}"


def make_classifier_task(model_config: Mapping[str, Any] | Any = None, info: Any = None) -> Task:
    """Build the engine :class:`~kexue_jax.train.task.Task` of a classifier of images or vectors.

    Args:
        model_config: the ``model`` section of an experiment config: :class:`ClassifierConfig`
            fields plus the task option ``eval_times`` (the noise levels of the evaluation of a
            noisy classifier, (0.25, 0.5, 0.75)).
        info: the dataset's :class:`~kexue_jax.data.DatasetInfo`: integer images ``"image"`` of
            ``num_bins`` levels, or vectors ``"x"``; with ``"label"`` for ``labels="data"``.

    Returns:
        A task with pure, jit-able functions:

        * ``init(batch, *, key)``: plain nested-dict params (no model state).
        * ``loss``: the mean cross-entropy at training noise (module docstring; no noise for
          ``noise="none"``); metrics ``accuracy`` and ``nll`` (the same loss).
        * ``evaluate``: ``accuracy`` and ``nll`` (nats per example) on the clean data ($t = 0$
          for a noisy classifier); a noisy classifier adds ``accuracy_t{τ}`` and ``nll_t{τ}`` at
          each $\\tau$ of ``eval_times`` (one noise draw per example) and ``loss`` (at random
          training times).
        * no ``sample`` or ``figures``.

        ``extras``: ``config``, ``graphdef``, ``model(params, state)`` (a :class:`ClassifierModel`),
        ``inputs(batch)`` (the network's input space: images in $[-1, 1]$), ``labels(batch, x)``
        and ``options``.

    Raises:
        ValueError: on unknown config keys, bad values or data without the needed features.
    """
    config, options = _split_config(model_config, info)
    abstract = nnx.eval_shape(lambda: ClassifierModel(config, rngs=nnx.Rngs(0)))
    graphdef, _, _ = split_module(abstract)
    levels = config.num_bins - 1
    eval_times = options["eval_times"]

    def model(params: PyTree, model_state: PyTree | None = None) -> ClassifierModel:
        return merge_module(graphdef, params, model_state or {})

    def inputs(batch: Batch) -> Array:
        key = "image" if config.images else "x"
        if key not in batch:
            raise ValueError(f"batch: expected an {key!r} entry, got keys {sorted(batch)}")
        v = jnp.asarray(batch[key])
        if v.shape[1:] != config.event_shape:
            raise ValueError(f"batch: expected {key!r} of shape (b, {', '.join(map(str, config.event_shape))}), "
                             f"got {tuple(v.shape)}")
        if not config.images:
            return v.astype(jnp.float32)
        if not jnp.issubdtype(v.dtype, jnp.integer):
            raise ValueError(f"batch: expected integer 'image' levels 0..{levels}, got dtype {v.dtype}")
        return v.astype(jnp.float32) * (2.0 / levels) - 1.0

    def labels(batch: Batch, x: Array) -> Array:
        return batch_labels(batch, x, source=config.labels, num_classes=config.num_classes)

    def init(batch: Batch, *, key: PRNGKey) -> tuple[PyTree, PyTree]:
        labels(batch, inputs(batch))
        _, params, state = split_module(ClassifierModel(config, rngs=nnx.Rngs(params=key)))
        return params, state

    def loss(params: PyTree, model_state: PyTree, batch: Batch, *, key: PRNGKey) -> LossOutput:
        x = inputs(batch)
        nll, correct = model(params, model_state).loss(x, labels(batch, x), key=key)
        value = mean_f32(nll)
        return LossOutput(value, {"nll": value, "accuracy": mean_f32(correct)}, None)

    def scores(net: ClassifierModel, x: Array, t: Array | None, y: Array) -> tuple[Array, Array]:
        nll, correct = net.cross_entropy(x, t, y)
        return mean_f32(correct), mean_f32(nll)

    def evaluate(params: PyTree, model_state: PyTree, batch: Batch, *, key: PRNGKey) -> dict[str, Array]:
        net = model(params, model_state)
        x = inputs(batch)
        y = labels(batch, x)
        if not config.time_conditional:
            acc, nll = scores(net, x, None, y)
            return {"accuracy": acc, "nll": nll}
        b = x.shape[0]
        out = {}
        acc, nll = scores(net, x, jnp.zeros((b,), jnp.float32), y)
        out["accuracy"], out["nll"] = acc, nll
        k_loss, k_noise = jax.random.split(key)
        for j, tau in enumerate(eval_times):
            t = jnp.full((b,), tau, jnp.float32)
            x_t = net.noised_at(x, t, key=jax.random.fold_in(k_noise, j))
            acc, nll = scores(net, x_t, t, y)
            out[f"accuracy_t{_metric_time(tau)}"], out[f"nll_t{_metric_time(tau)}"] = acc, nll
        out["loss"] = mean_f32(net.loss(x, y, key=k_loss)[0])
        return out

    return Task(
        name=f"classifier[{config.noise}{',' + config.diffusion.process if config.time_conditional else ''}]",
        init=init,
        loss=loss,
        evaluate=evaluate,
        extras={"config": config, "graphdef": graphdef, "model": model, "inputs": inputs, "labels": labels,
                "options": options},
    )


__all__ = [
    "LABEL_SOURCES",
    "NOISES",
    "PROCESS_FIELDS",
    "ClassifierConfig",
    "ClassifierModel",
    "angular_sector_labels",
    "check_same_process",
    "classifier_guided_fns",
    "classifier_log_prob_fn",
    "make_classifier_task",
]
