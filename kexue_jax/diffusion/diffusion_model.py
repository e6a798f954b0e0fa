"""Diffusion models of vector data as an engine :class:`~kexue_jax.train.task.Task` (DDPM and score SDEs).

One network $f_\\theta(x, t)$ with a float time $t \\in [0, 1]$ serves every process; it predicts the
noise $\\varepsilon$, and everything else follows from it:

* ``process="ddpm"`` (kexue.fm 9119/9152/9164, Ho et al. 2020): a discrete schedule (``linear``,
  ``cosine`` or Su's ``su``) of $T$ steps; step index $i \\in \\{0..T-1\\}$ is time $(i + 1)/T$, and
  the loss is $L_{simple} = \\|\\varepsilon - \\varepsilon_\\theta(x_i, i)\\|^2$ (:func:`ddpm_loss`,
  summed over dimensions as Su advises).
* ``process="vp" | "subvp" | "ve"`` (kexue.fm 9209, Song et al. 2021): the continuous SDE, score
  $s_\\theta(x, t) = -f_\\theta(x, t)/s_t$ (score_sde's noise-predicting parameterisation) trained by
  denoising score matching with $\\lambda(t) = s_t^2$ (:func:`dsm_loss`, ``weighting="score_sde"``),
  which is again $\\|\\varepsilon - f_\\theta\\|^2$.

The network sees $x / \\sqrt{m_t^2 + s_t^2}$, which is $x$ itself for VP/DDPM and keeps the VE
inputs (of std up to $\\sigma_{\\max}$) of order one.

A discrete model is also a continuous one: :class:`ScheduleVPSDE` is the VP SDE whose
$\\log\\bar\\alpha(t)$ interpolates the schedule's table linearly ($\\beta(t)$ piecewise constant),
so $q(x_t \\mid x_0)$ at $t = (i + 1)/T$ is exactly the schedule's. It gives a DDPM model the
probability-flow ODE (likelihood, ODE samplers) and the SDE samplers, with no retraining.

Evaluation on 2-D data compares samples with the evaluation batch (:func:`sliced_wasserstein`
and :func:`mmd`) and, for a density of :mod:`kexue_jax.data.densities`, the probability-flow ODE
negative log-likelihood with the exact one: ``ode_nll`` $= -\\log p^{ODE}_\\epsilon(x)$ (from
$t = \\epsilon$, ``likelihood_eps``), ``true_nll`` $= -\\log p(x)$, and ``kl`` $=$ their difference, a
Monte-Carlo estimate of $\\mathrm{KL}(p\\,\\|\\,p^{ODE}_\\epsilon)$ (the ODE density is a proper
density, so it is $\\ge 0$ up to sampling error; $p_\\epsilon$ is the data blurred by $s_\\epsilon$).

References:
    Su Jianlin, "生成扩散模型漫谈（一）：DDPM = 拆楼 + 建楼", https://kexue.fm/archives/9119;
    "（二）：DDPM = 自回归式VAE", https://kexue.fm/archives/9152; "（三）：DDPM = 贝叶斯 + 去噪",
    https://kexue.fm/archives/9164; "（五）：一般框架之SDE篇", https://kexue.fm/archives/9209.
    J. Ho, A. Jain, P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
    Y. Song et al., "Score-Based Generative Modeling through Stochastic Differential Equations",
    ICLR 2021.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from kexue_jax._src.checks import check_floating, check_in, check_positive
from kexue_jax._src.numerics import mean_f32, to_f32
from kexue_jax._src.typing import Array, Batch, Float, PRNGKey, PyTree
from kexue_jax.data.densities import DENSITIES, log_density
from kexue_jax.diffusion._broadcast import per_example
from kexue_jax.diffusion.likelihood import ode_log_prob
from kexue_jax.diffusion.losses import ddpm_loss, dsm_loss
from kexue_jax.diffusion.samplers.registry import SAMPLERS, ModelFns
from kexue_jax.diffusion.schedules import (
    DiscreteSchedule,
    cosine_schedule,
    linear_schedule,
    su_schedule,
)
from kexue_jax.diffusion.sde import SDE, VESDE, VPSDE, SubVPSDE
from kexue_jax.metrics.sample_distance import mmd, sliced_wasserstein
from kexue_jax.nn.functional import merge_module, split_module
from kexue_jax.nn.time_mlp import TIME_EMBEDDINGS, TimeMLP
from kexue_jax.train.task import LossOutput, Task, config_dict

PROCESSES = ("ddpm", "vp", "subvp", "ve")
NETWORKS = ("mlp",)
SCHEDULES: dict[str, Callable[[int], DiscreteSchedule]] = {
    "linear": linear_schedule,
    "cosine": cosine_schedule,
    "su": su_schedule,
}
DISCRETE_SAMPLERS = ("ddpm_large", "ddpm_small", "ddim")
DEFAULT_SAMPLERS = {"ddpm": "ddpm_large", "vp": "euler_maruyama", "subvp": "euler_maruyama", "ve": "pc"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class DiffusionConfig:
    """Hyperparameters of a diffusion model (hashable; the papers' names).

    Attributes:
        process: ``"ddpm"`` (discrete, $\\varepsilon$-loss) or ``"vp"``, ``"subvp"``, ``"ve"``
            (continuous SDE, denoising score matching).
        schedule: DDPM's $\\beta$ schedule, ``"linear"`` (Ho et al.), ``"cosine"`` (Nichol &
            Dhariwal) or ``"su"`` (kexue.fm 9152, $\\beta_t = 0.02\\,t/T$).
        num_steps: DDPM's $T$.
        beta_min: VP / sub-VP $\\beta_{\\min}$ (0.1).
        beta_max: VP / sub-VP $\\beta_{\\max}$ (20).
        sigma_min: VE $\\sigma_{\\min}$ (0.01).
        sigma_max: VE $\\sigma_{\\max}$, about the largest distance between data points (10 for
            the 2-D densities, which live in $[-4, 4]^2$).
        network: ``"mlp"`` (:class:`~kexue_jax.nn.time_mlp.TimeMLP`, vectors); a UNet for images
            is a later addition.
        event_shape: the shape of one example, ``(d,)``.
        hidden: widths of the network's hidden layers.
        time_embedding: ``"sinusoidal"`` or ``"fourier"``.
        embed_dim: size of the time embedding.
        zero_init_last: zero-initialise the output layer.
        sampler: a name of :data:`~kexue_jax.diffusion.samplers.SAMPLERS`, or ``"auto"``
            (DDPM: ``ddpm_large``, Su's $\\sigma_t = \\beta_t$; VP / sub-VP: ``euler_maruyama``;
            VE: ``pc``). The continuous processes take only the SDE samplers.
        sampler_steps: steps of the sampler (DDPM samplers respace to this many).
        loss_eps: smallest training time of the continuous processes (score_sde: 1e-5).
        likelihood_eps: start time $\\epsilon$ of the ODE likelihood; the default 1e-3 is step
            index 0 of a $T = 1000$ DDPM (the smallest noise it was trained on).
        likelihood_rtol: relative tolerance of the adaptive (Tsit5) likelihood solve.
        likelihood_atol: absolute tolerance of the likelihood solve.
        dtype: compute dtype of the network (``"bfloat16"`` on GPU); losses stay float32.
    """

    process: str = "ddpm"
    schedule: str = "linear"
    num_steps: int = 1000
    beta_min: float = 0.1
    beta_max: float = 20.0
    sigma_min: float = 0.01
    sigma_max: float = 10.0
    network: str = "mlp"
    event_shape: tuple[int, ...] = (2,)
    hidden: tuple[int, ...] = (128, 128, 128)
    time_embedding: str = "sinusoidal"
    embed_dim: int = 64
    zero_init_last: bool = True
    sampler: str = "auto"
    sampler_steps: int = 1000
    loss_eps: float = 1e-5
    likelihood_eps: float = 1e-3
    likelihood_rtol: float = 1e-4
    likelihood_atol: float = 1e-4
    dtype: str = "float32"

    def __post_init__(self) -> None:
        check_in("process", self.process, PROCESSES)
        check_in("schedule", self.schedule, tuple(SCHEDULES))
        check_in("network", self.network, NETWORKS)
        check_in("time_embedding", self.time_embedding, TIME_EMBEDDINGS)
        object.__setattr__(self, "event_shape", tuple(int(s) for s in self.event_shape))
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if self.network == "mlp" and len(self.event_shape) != 1:
            raise ValueError(f"event_shape: network='mlp' needs vectors (d,), got {self.event_shape}")
        if not self.hidden or any(h <= 0 for h in self.hidden):
            raise ValueError(f"hidden: expected positive widths, got {self.hidden}")
        for name in ("num_steps", "beta_min", "beta_max", "sigma_min", "sigma_max", "sampler_steps",
                     "embed_dim", "likelihood_rtol", "likelihood_atol"):
            check_positive(name, getattr(self, name))
        if self.sampler == "auto":
            object.__setattr__(self, "sampler", DEFAULT_SAMPLERS[self.process])
        check_in("sampler", self.sampler, tuple(SAMPLERS))
        if self.process != "ddpm" and self.sampler in DISCRETE_SAMPLERS:
            raise ValueError(
                f"sampler: process={self.process!r} is continuous and takes an SDE sampler "
                f"{sorted(set(SAMPLERS) - set(DISCRETE_SAMPLERS))}, got {self.sampler!r}"
            )
        if self.sampler in DISCRETE_SAMPLERS and self.sampler_steps > self.num_steps:
            raise ValueError(f"sampler_steps: expected <= num_steps = {self.num_steps}, got {self.sampler_steps}")
        if not 0.0 < self.likelihood_eps < 1.0:
            raise ValueError(f"likelihood_eps: expected a value in (0, 1), got {self.likelihood_eps!r}")
        if not 0.0 <= self.loss_eps < 1.0:
            raise ValueError(f"loss_eps: expected a value in [0, 1), got {self.loss_eps!r}")

    @property
    def discrete(self) -> bool:
        return self.process == "ddpm"


# ---------------------------------------------------------------------------------------------
# The continuous process of a discrete schedule.


@dataclasses.dataclass(frozen=True, eq=False)
class ScheduleVPSDE:
    """The VP SDE $dx = -\\frac12\\beta(t)x\\,dt + \\sqrt{\\beta(t)}\\,dw$ through a discrete schedule.

    $\\log\\bar\\alpha(t)$ is the linear interpolation of $(0, \\log\\bar\\alpha_0, \\dots,
    \\log\\bar\\alpha_{T-1})$ at $t = 0, 1/T, \\dots, 1$, so $\\beta(t) = -T\\log(1 - \\beta_i)$ on
    $(i/T, (i+1)/T]$ and $x_t \\mid x_0 \\sim \\mathcal N(\\bar\\alpha(t)^{1/2}x_0, (1-\\bar\\alpha(t))I)$
    is the schedule's marginal at every step. Implements the :class:`~kexue_jax.diffusion.sde.SDE`
    protocol (compared by identity, not value: it holds arrays).

    Args:
        schedule: the discrete schedule.
    """

    schedule: DiscreteSchedule
    T: float = 1.0

    def __post_init__(self) -> None:
        # log(alpha_bar) from whichever float32 table holds its digits: 1 - alpha_bar near t = 0,
        # alpha_bar itself near t = T. Concrete tables even when built inside jit.
        with jax.ensure_compile_time_eval():
            ac, one_minus = self.schedule.alphas_cumprod, self.schedule.one_minus_alphas_cumprod
            log_ac = jnp.where(ac > 0.5, jnp.log1p(-one_minus), jnp.log(ac))
            log_ac = jnp.concatenate([jnp.zeros((1,), jnp.float32), log_ac])
            n = self.schedule.num_steps
            object.__setattr__(self, "_log_ac", log_ac)
            object.__setattr__(self, "_rates", -jnp.diff(log_ac) * n)
            object.__setattr__(self, "_grid", jnp.linspace(0.0, 1.0, n + 1, dtype=jnp.float32))

    def _log_mean(self, t: Array) -> Array:
        check_floating("t", t)
        return 0.5 * jnp.interp(to_f32(t), self._grid, self._log_ac)

    def beta(self, t: Float[Array, " b"]) -> Float[Array, " b"]:
        """$\\beta(t) = -\\frac{d}{dt}\\log\\bar\\alpha(t)$ (piecewise constant)."""
        n = self._rates.shape[0]
        i = jnp.clip(jnp.ceil(to_f32(t) * n).astype(jnp.int32) - 1, 0, n - 1)
        return self._rates[i]

    def drift(self, x: Float[Array, "b ..."], t: Float[Array, " b"]) -> Float[Array, "b ..."]:
        """$-\\frac12\\beta(t)x$."""
        check_floating("t", t)
        return -0.5 * per_example(self.beta(t), x) * x

    def diffusion(self, t: Float[Array, " b"]) -> Float[Array, " b"]:
        """$\\sqrt{\\beta(t)}$."""
        check_floating("t", t)
        return jnp.sqrt(self.beta(t))

    def marginal_coeffs(self, t: Float[Array, " b"]) -> tuple[Array, Array]:
        """$(\\bar\\alpha(t)^{1/2}, (1 - \\bar\\alpha(t))^{1/2})$."""
        lm = self._log_mean(t)
        return jnp.exp(lm), jnp.sqrt(-jnp.expm1(2.0 * lm))

    def marginal(self, x0: Float[Array, "b ..."], t: Float[Array, " b"]) -> tuple[Array, Array]:
        """$(m_t x_0, s_t)$."""
        check_floating("x0", x0)
        m, s = self.marginal_coeffs(t)
        return per_example(m, x0) * x0, s

    def prior_std(self) -> float:
        """1 (the schedule is assumed to end near $\\bar\\alpha_T = 0$)."""
        return 1.0

    def prior_sample(self, shape: tuple[int, ...], *, key: PRNGKey) -> Array:
        """A standard normal draw."""
        return jax.random.normal(key, shape, jnp.float32)

    def prior_log_prob(self, z: Float[Array, "b ..."]) -> Float[Array, " b"]:
        """$\\log\\mathcal N(z; 0, I)$ per example."""
        return VPSDE().prior_log_prob(z)

    def discrete_alpha(self, t: Float[Array, " b"], dt: float) -> Float[Array, " b"]:
        """$e^{-\\beta(t)\\Delta t}$."""
        return jnp.exp(-self.beta(t) * dt)


@functools.lru_cache(maxsize=32)
def build_process(config: DiffusionConfig) -> tuple[DiscreteSchedule | None, SDE]:
    """The discrete schedule (DDPM only) and the continuous SDE of ``config`` (cached per config).

    The tables are concrete arrays even when this is first called inside ``jit`` (the samplers
    respace them on the host), so the cache never holds a tracer.
    """
    c = config
    if c.process == "ddpm":
        with jax.ensure_compile_time_eval():
            schedule = SCHEDULES[c.schedule](c.num_steps)
            return schedule, ScheduleVPSDE(schedule)
    if c.process == "vp":
        return None, VPSDE(beta_min=c.beta_min, beta_max=c.beta_max)
    if c.process == "subvp":
        return None, SubVPSDE(beta_min=c.beta_min, beta_max=c.beta_max)
    return None, VESDE(sigma_min=c.sigma_min, sigma_max=c.sigma_max)


# ---------------------------------------------------------------------------------------------
# The model.


class DiffusionModel(nnx.Module):
    """A noise-predicting network $\\varepsilon_\\theta(x, t)$ and its process.

    Args:
        config: the :class:`DiffusionConfig`.
        rngs: ``nnx.Rngs`` with a ``params`` stream.
    """

    def __init__(self, config: DiffusionConfig, *, rngs: nnx.Rngs):
        self.config = config
        if config.network == "mlp":
            self.net = TimeMLP(config.event_shape[0], config.hidden, time_embedding=config.time_embedding,
                               embed_dim=config.embed_dim, zero_init_last=config.zero_init_last,
                               dtype=jnp.dtype(config.dtype), rngs=rngs)
        else:  # pragma: no cover - DiffusionConfig validates the name
            raise ValueError(f"network: unknown network {config.network!r}; known: {NETWORKS}")

    @property
    def process(self) -> tuple[DiscreteSchedule | None, SDE]:
        return build_process(self.config)

    def eps(self, x: Float[Array, "b d"], t: Float[Array, " b"]) -> Float[Array, "b d"]:
        """$\\varepsilon_\\theta(x, t)$ at continuous times $t \\in [0, 1]$ (float32 ``[b]``)."""
        m, s = self.process[1].marginal_coeffs(t)
        return self.net(x / per_example(jnp.sqrt(m * m + s * s), x), t)

    def eps_discrete(self, x: Float[Array, "b d"], i: Array) -> Float[Array, "b d"]:
        """$\\varepsilon_\\theta(x, i)$ at DDPM step indices $i$ (int32 ``[b]``), time $(i + 1)/T$."""
        return self.eps(x, (i.astype(jnp.float32) + 1.0) / self.config.num_steps)

    def score(self, x: Float[Array, "b d"], t: Float[Array, " b"]) -> Float[Array, "b d"]:
        """$s_\\theta(x, t) = -\\varepsilon_\\theta(x, t)/s_t$."""
        _, s = self.process[1].marginal_coeffs(t)
        return -self.eps(x, t) / per_example(s, x)

    def model_fns(self) -> ModelFns:
        """The bundle the samplers take."""
        schedule, sde = self.process
        return ModelFns(schedule, self.eps_discrete, sde, self.score)

    def loss(self, x0: Float[Array, "b d"], *, key: PRNGKey) -> Float[Array, " b"]:
        """Per-example $\\|\\varepsilon - \\varepsilon_\\theta\\|^2$ (summed over dimensions)."""
        schedule, sde = self.process
        if self.config.discrete:
            return ddpm_loss(self.eps_discrete, schedule, x0, reduce="sum", key=key)
        return dsm_loss(self.score, sde, x0, weighting="score_sde", eps=self.config.loss_eps,
                        reduce="sum", key=key)

    def sample(self, num: int, *, key: PRNGKey, num_steps: int | None = None) -> Float[Array, "num d"]:
        """``num`` samples with the configured sampler."""
        steps = self.config.sampler_steps if num_steps is None else num_steps
        return SAMPLERS[self.config.sampler](self.model_fns(), (num, *self.config.event_shape),
                                             num_steps=steps, key=key)

    def log_prob(self, x: Float[Array, "b d"]) -> Float[Array, " b"]:
        """$\\log p^{ODE}_\\epsilon(x)$ in nats (probability-flow ODE, exact divergence)."""
        c = self.config
        return ode_log_prob(self.process[1], self.score, x, divergence="exact", rtol=c.likelihood_rtol,
                            atol=c.likelihood_atol, eps=c.likelihood_eps).log_prob


# ---------------------------------------------------------------------------------------------
# The engine task.

_TASK_OPTIONS = {
    "eval_points": 1000,
    "num_projections": 128,
    "mmd_bandwidths": (0.1, 0.2, 0.5, 1.0),
    "num_figure_samples": 4096,
    "plot_range": 4.0,
    "plot_resolution": 128,
    "grid_columns": 8,
}
_IGNORED_KEYS = ("name",)


def _vector_shape(info: Any) -> tuple[int, ...] | None:
    features = getattr(info, "features", None)
    if not features:
        return None
    if "x" not in features:
        raise ValueError(f"info: network='mlp' needs a vector feature 'x', got features {sorted(features)}")
    feature = features["x"]
    shape = feature[0] if isinstance(feature, (tuple, list)) and isinstance(feature[0], (tuple, list)) \
        else getattr(feature, "shape", feature)
    return tuple(int(s) for s in shape)


def _split_config(model_config: Any, info: Any) -> tuple[DiffusionConfig, dict[str, Any]]:
    raw = config_dict(model_config)
    fields = {f.name for f in dataclasses.fields(DiffusionConfig)}
    unknown = sorted(set(raw) - fields - set(_TASK_OPTIONS) - set(_IGNORED_KEYS))
    if unknown:
        raise ValueError(
            f"model_config: unknown keys {unknown}; expected DiffusionConfig fields {sorted(fields)} "
            f"or task options {sorted(_TASK_OPTIONS)}"
        )
    options = {k: raw.get(k, v) for k, v in _TASK_OPTIONS.items()}
    options["mmd_bandwidths"] = tuple(float(h) for h in options["mmd_bandwidths"])
    for name in ("eval_points", "num_projections", "num_figure_samples", "plot_resolution"):
        check_positive(name, int(options[name]))
    kwargs = {k: v for k, v in raw.items() if k in fields}
    shape = _vector_shape(info)
    if shape is not None:
        if "event_shape" in kwargs and tuple(kwargs["event_shape"]) != shape:
            raise ValueError(f"model_config: event_shape {tuple(kwargs['event_shape'])} disagrees with the "
                             f"dataset's {shape}")
        kwargs["event_shape"] = shape
    name = getattr(info, "name", None)
    options["density"] = name if name in DENSITIES else None
    return DiffusionConfig(**kwargs), options


def make_diffusion_task(model_config: Mapping[str, Any] | Any = None, info: Any = None) -> Task:
    """Build the engine :class:`~kexue_jax.train.task.Task` of a diffusion model of vectors.

    Args:
        model_config: the ``model`` section of an experiment config: :class:`DiffusionConfig` fields
            plus task options ``eval_points`` (points of each evaluation batch used for the ODE
            likelihood and the sample distances, 1000), ``num_projections`` (of the sliced
            Wasserstein distance, 128), ``mmd_bandwidths`` ((0.1, 0.2, 0.5, 1.0)),
            ``num_figure_samples`` (of the sample histogram, 4096), ``plot_range`` (the square
            $[-r, r]^2$ of the 2-D pictures, 4.0), ``plot_resolution`` (128), ``grid_columns`` (8).
        info: the dataset's :class:`~kexue_jax.data.DatasetInfo` with a vector feature ``"x"``; a
            2-D density of :mod:`kexue_jax.data.densities` adds the exact NLL and KL.

    Returns:
        A task with pure, jit-able functions:

        * ``init(batch, *, key)``: plain nested-dict params (and the fixed Fourier frequencies, if
          any, as ``model_state``).
        * ``loss``: $\\mathbb E\\|\\varepsilon - \\varepsilon_\\theta\\|^2$ (per example summed over
          dimensions); metric ``eps_mse`` (the same, per dimension).
        * ``evaluate`` on the first ``eval_points`` points of the batch: ``loss``, ``sw`` (sliced
          $W_2$ between as many model samples and the data), ``mmd`` (unbiased MMD²), ``ode_nll``
          (nats per example); for a known density also ``true_nll`` and ``kl = ode_nll - true_nll``;
          when the batch holds twice ``eval_points`` points, ``sw_ref`` and ``mmd_ref`` between two
          disjoint halves of the data: the sampling-noise floor of ``sw`` and ``mmd``.
        * ``sample``: 2-D data: a one-image histogram ``[1, r, r, 1]`` of ``num_figure_samples``
          samples; other $d$: the samples ``[num, d]``.
        * ``figures`` (2-D): ``samples`` and, for a known density, ``true_density``.

    Raises:
        ValueError: on unknown config keys, bad values or non-vector data.
    """
    config, options = _split_config(model_config, info)
    abstract = nnx.eval_shape(lambda: DiffusionModel(config, rngs=nnx.Rngs(0)))
    graphdef, _, _ = split_module(abstract)
    density = options["density"]
    two_d = config.event_shape == (2,)
    points = int(options["eval_points"])
    projections = int(options["num_projections"])
    bandwidths = options["mmd_bandwidths"]
    num_figure = int(options["num_figure_samples"])

    def model(params: PyTree, model_state: PyTree | None = None) -> DiffusionModel:
        return merge_module(graphdef, params, model_state or {})

    def data_of(batch: Batch) -> Array:
        if "x" not in batch:
            raise ValueError(f"batch: expected an 'x' entry, got keys {sorted(batch)}")
        x = jnp.asarray(batch["x"], jnp.float32)
        if x.shape[1:] != config.event_shape:
            raise ValueError(f"batch: expected 'x' of shape (b, {config.event_shape[0]}), got {tuple(x.shape)}")
        return x

    def init(batch: Batch, *, key: PRNGKey) -> tuple[PyTree, PyTree]:
        data_of(batch)
        _, params, state = split_module(DiffusionModel(config, rngs=nnx.Rngs(params=key)))
        return params, state

    def loss(params: PyTree, model_state: PyTree, batch: Batch, *, key: PRNGKey) -> LossOutput:
        per_example_loss = model(params, model_state).loss(data_of(batch), key=key)
        value = mean_f32(per_example_loss)
        return LossOutput(value, {"eps_mse": value / config.event_shape[0]}, None)

    def evaluate(params: PyTree, model_state: PyTree, batch: Batch, *, key: PRNGKey) -> dict[str, Array]:
        net = model(params, model_state)
        x_all = data_of(batch)
        n = min(points, x_all.shape[0])
        x = x_all[:n]
        k_loss, k_sample, k_sw = jax.random.split(key, 3)
        samples = net.sample(n, key=k_sample)
        # A diverged sample (an untrained VE model's) counts as far away, not as NaN or 1e12.
        samples = jnp.clip(jnp.nan_to_num(samples, nan=100.0), -100.0, 100.0)
        out = {
            "loss": mean_f32(net.loss(x, key=k_loss)),
            "sw": sliced_wasserstein(samples, x, num_projections=projections, key=k_sw),
            "mmd": mmd(samples, x, bandwidths=bandwidths),
            "ode_nll": -mean_f32(net.log_prob(x)),
        }
        if x_all.shape[0] >= 2 * n:
            ref = x_all[n:2 * n]
            out["sw_ref"] = sliced_wasserstein(ref, x, num_projections=projections, key=k_sw)
            out["mmd_ref"] = mmd(ref, x, bandwidths=bandwidths)
        if density is not None:
            out["true_nll"] = -mean_f32(log_density(density, x))
            out["kl"] = out["ode_nll"] - out["true_nll"]
        return out

    res = int(options["plot_resolution"])
    half = float(options["plot_range"])
    centres = (jnp.arange(res, dtype=jnp.float32) + 0.5) / res * 2 * half - half
    grid = jnp.stack(jnp.meshgrid(centres, -centres, indexing="xy"), axis=-1).reshape(-1, 2)

    def as_picture(values: Array) -> Array:
        img = jnp.where(jnp.isfinite(values), values, 0.0).reshape(res, res)
        return (img / jnp.maximum(jnp.max(img), 1e-12))[None, :, :, None]

    def histogram(x: Array) -> Array:
        counts, _, _ = jnp.histogram2d(x[:, 0], -x[:, 1], bins=res, range=[[-half, half], [-half, half]])
        return as_picture(counts.T)

    def sample(params: PyTree, model_state: PyTree, num: int, *, key: PRNGKey) -> Array:
        net = model(params, model_state)
        if two_d:
            return histogram(net.sample(num_figure, key=key))
        return net.sample(num, key=key)

    def figures(params: PyTree, model_state: PyTree, batch: Batch, *, key: PRNGKey) -> dict[str, Array]:
        if not two_d:
            return {}
        out = {"samples": histogram(model(params, model_state).sample(num_figure, key=key))}
        if density is not None:
            out["true_density"] = as_picture(jnp.exp(log_density(density, grid)))
        return out

    return Task(
        name=f"diffusion[{config.process}]",
        init=init,
        loss=loss,
        evaluate=evaluate,
        sample=sample,
        figures=figures,
        grid_columns=int(options["grid_columns"]),
        extras={"config": config, "graphdef": graphdef, "model": model, "options": options},
    )


__all__ = [
    "DISCRETE_SAMPLERS",
    "NETWORKS",
    "PROCESSES",
    "SCHEDULES",
    "DiffusionConfig",
    "DiffusionModel",
    "ScheduleVPSDE",
    "build_process",
    "make_diffusion_task",
]
