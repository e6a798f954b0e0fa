"""Diffusion models of vectors and images as an engine :class:`~kexue_jax.train.task.Task` (DDPM and score SDEs).

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

Images (``network="unet"``, the DDPM UNet of :mod:`kexue_jax.nn.unet`): ``num_bins``-level pixels
are scaled to $[-1, 1]$ and the loss is averaged over pixels (Ho et al.). Bits/dim of images come
from the probability-flow ODE or, for DDPM, the variational bound (task option
``eval_bpd_examples``).

With ``num_classes`` either network is class-conditional, $\\varepsilon_\\theta(x, t, y)$ with a
learned label embedding of ``num_classes + 1`` rows (the last is the null label $\\varnothing$),
trained with labels dropped to the null label with probability ``cfg_dropout`` and sampled with
classifier-free guidance of weight ``guidance``,
$\\tilde\\varepsilon = (1 + w)\\varepsilon_\\theta(x, t, y) - w\\,\\varepsilon_\\theta(x, t, \\varnothing)$
(kexue.fm 9257; Ho & Salimans 2022). Images take their labels from the data; 2-D densities, which
have none, from the angle (task option ``labels="angular_sector"``).

Evaluation on 2-D data compares samples with the evaluation batch (:func:`sliced_wasserstein`
and :func:`mmd`) and, for a density of :mod:`kexue_jax.data.densities`, the probability-flow ODE
negative log-likelihood with the exact one: ``ode_nll`` $= -\\log p^{ODE}_\\epsilon(x)$ (from
$t = \\epsilon$, ``likelihood_eps``), ``true_nll`` $= -\\log p(x)$, and ``kl`` $=$ their difference, a
Monte-Carlo estimate of $\\mathrm{KL}(p\\,\\|\\,p^{ODE}_\\epsilon)$ (the ODE density is a proper
density, so it is $\\ge 0$ up to sampling error; $p_\\epsilon$ is the data blurred by $s_\\epsilon$).

References:
    Su Jianlin, "生成扩散模型漫谈（一）：DDPM = 拆楼 + 建楼", https://kexue.fm/archives/9119;
    "（二）：DDPM = 自回归式VAE", https://kexue.fm/archives/9152; "（三）：DDPM = 贝叶斯 + 去噪",
    https://kexue.fm/archives/9164; "（五）：一般框架之SDE篇", https://kexue.fm/archives/9209;
    "（九）：条件控制生成结果", https://kexue.fm/archives/9257.
    J. Ho, A. Jain, P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
    Y. Song et al., "Score-Based Generative Modeling through Stochastic Differential Equations",
    ICLR 2021.
    J. Ho, T. Salimans, "Classifier-Free Diffusion Guidance", 2022, arXiv:2207.12598.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from kexue_jax._src.checks import check_floating, check_in, check_positive
from kexue_jax._src.numerics import mean_f32, to_f32
from kexue_jax._src.typing import Array, Batch, Float, PRNGKey, PyTree
from kexue_jax.data.densities import DENSITIES, log_density
from kexue_jax.data.transforms import random_horizontal_flip
from kexue_jax.diffusion._broadcast import per_example
from kexue_jax.diffusion.guidance import check_labels, classifier_free_eps, drop_labels
from kexue_jax.diffusion.likelihood import ode_bits_per_dim, ode_log_prob
from kexue_jax.diffusion.losses import ddpm_loss, dsm_loss
from kexue_jax.diffusion.samplers.registry import SAMPLERS, ModelFns
from kexue_jax.diffusion.schedules import (
    DiscreteSchedule,
    cosine_schedule,
    linear_schedule,
    su_schedule,
)
from kexue_jax.diffusion.sde import SDE, VESDE, VPSDE, SubVPSDE
from kexue_jax.diffusion.task_data import (
    LABEL_SOURCES,
    batch_labels,
    check_label_feature,
    feature_shape,
)
from kexue_jax.diffusion.vlb import elbo_bits_per_dim
from kexue_jax.metrics.sample_distance import mmd, sliced_wasserstein
from kexue_jax.nn.functional import merge_module, split_module
from kexue_jax.nn.time_mlp import TIME_EMBEDDINGS, TimeMLP
from kexue_jax.nn.unet import UNet, UNetConfig
from kexue_jax.train.plane import PlaneGrid
from kexue_jax.train.task import LossOutput, Task, config_dict

PROCESSES = ("ddpm", "vp", "subvp", "ve")
NETWORKS = ("mlp", "unet")
UNET_PRESETS = ("tiny", "ddpm_cifar10")
BPD_METHODS = ("ode", "vlb")
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
        network: ``"mlp"`` (:class:`~kexue_jax.nn.time_mlp.TimeMLP`, vectors ``(d,)``) or
            ``"unet"`` (:class:`~kexue_jax.nn.unet.UNet`, images ``(h, w, c)`` scaled to
            $[-1, 1]$).
        event_shape: the shape of one example, ``(d,)`` or ``(h, w, c)``.
        hidden: widths of the MLP's hidden layers (``"mlp"`` only).
        time_embedding: ``"sinusoidal"`` or ``"fourier"`` (``"mlp"`` only).
        embed_dim: size of the MLP's time embedding (``"mlp"`` only).
        zero_init_last: zero-initialise the MLP's output layer (the UNet always does).
        unet: the UNet (``"unet"`` only): a :class:`~kexue_jax.nn.unet.UNetConfig`, a preset name
            (``"tiny"``, ``"ddpm_cifar10"``), or a mapping of ``UNetConfig`` fields with an optional
            ``"preset"`` key whose preset the fields override; ``None`` is ``"ddpm_cifar10"``.
            Stored as a ``UNetConfig`` whose ``num_classes`` is this config's ``num_classes``; a
            non-float32 ``dtype`` below overrides the UNet's.
        num_classes: ``None`` (unconditional) or the number of classes of a class-conditional
            model $\\varepsilon_\\theta(x, t, y)$ (either network); label ``num_classes`` is the
            null label $\\varnothing$ of classifier-free guidance.
        cfg_dropout: $p_{uncond}$, the probability that a training label is replaced by the null
            label (Ho & Salimans 2022: 0.1 or 0.2), so one network is both the conditional and the
            unconditional model.
        guidance: $w$ of classifier-free guidance at sampling,
            $\\tilde\\varepsilon = (1 + w)\\varepsilon_\\theta(x, t, y) - w\\,\\varepsilon_\\theta(x, t, \\varnothing)$
            ($w = 0$: the conditional model; Su's $\\gamma = 1 + w$).
        num_bins: levels of the image data (256 for 8-bit); level $k$ is the pixel value
            $2k/(K - 1) - 1$ and a bin of the dequantized data is $2/K$ wide.
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
    unet: Any = None
    num_classes: int | None = None
    cfg_dropout: float = 0.1
    guidance: float = 0.0
    num_bins: int = 256
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
        if self.network == "mlp" and self.unet is not None:
            raise ValueError(f"unet: only network='unet' takes a UNet, got unet={self.unet!r}")
        self._check_conditioning()
        if self.network == "unet":
            self._check_image_config()
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

    def _check_conditioning(self) -> None:
        if self.num_classes is not None:
            if isinstance(self.num_classes, bool):
                raise ValueError(f"num_classes: expected None or a positive int, got {self.num_classes!r}")
            check_positive("num_classes", self.num_classes)
            object.__setattr__(self, "num_classes", int(self.num_classes))
        if not 0.0 <= self.cfg_dropout <= 1.0:
            raise ValueError(f"cfg_dropout: expected a probability in [0, 1], got {self.cfg_dropout!r}")
        object.__setattr__(self, "guidance", float(self.guidance))
        object.__setattr__(self, "cfg_dropout", float(self.cfg_dropout))

    def _check_image_config(self) -> None:
        if len(self.event_shape) != 3 or any(d <= 0 for d in self.event_shape):
            raise ValueError(f"event_shape: network='unet' needs images (h, w, c), got {self.event_shape}")
        unet = _unet_config(self.unet, num_classes=self.num_classes, dtype=self.dtype)
        object.__setattr__(self, "unet", unet)
        h, w, _ = self.event_shape
        factor = 2**unet.num_downsamplings
        if h % factor or w % factor:
            raise ValueError(
                f"event_shape: the UNet's ch_mult={unet.ch_mult} halves h and w "
                f"{unet.num_downsamplings} times, so they must be divisible by {factor}, got "
                f"{self.event_shape}; shorten ch_mult or pad the images"
            )
        if isinstance(self.num_bins, bool) or int(self.num_bins) < 2:
            raise ValueError(f"num_bins: expected an int >= 2, got {self.num_bins!r}")
        object.__setattr__(self, "num_bins", int(self.num_bins))

    @property
    def discrete(self) -> bool:
        return self.process == "ddpm"

    @property
    def images(self) -> bool:
        """Whether the model is of images (``network="unet"``)."""
        return self.network == "unet"

    @property
    def conditional(self) -> bool:
        """Whether the model is class-conditional."""
        return self.num_classes is not None


def _unet_config(spec: Any, *, num_classes: int | None, dtype: str) -> UNetConfig:
    """The :class:`UNetConfig` of ``DiffusionConfig.unet`` (a config, a preset name or a mapping)."""
    if spec is None:
        spec = "ddpm_cifar10"
    if isinstance(spec, str):
        spec = {"preset": spec}
    if isinstance(spec, UNetConfig):
        fields = dataclasses.asdict(spec)
        preset = None
    elif isinstance(spec, Mapping):
        fields = dict(spec)
        preset = fields.pop("preset", None)
    else:
        raise ValueError(f"unet: expected a UNetConfig, a preset name {UNET_PRESETS} or a mapping of "  # noqa: TRY004
                         f"UNetConfig fields, got {spec!r}")
    if preset is not None:
        check_in("unet.preset", preset, UNET_PRESETS)
    known = {f.name for f in dataclasses.fields(UNetConfig)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"unet: unknown keys {unknown}; expected UNetConfig fields {sorted(known)} or 'preset'")
    if fields.get("num_classes") is not None and fields["num_classes"] != num_classes:
        raise ValueError(f"unet: num_classes={fields['num_classes']} disagrees with the model's "
                         f"num_classes={num_classes}; set num_classes on the diffusion model only")
    if fields.get("out_channels") is not None:
        raise ValueError("unet: out_channels is the image's channel count (eps has x's shape); leave it unset")
    fields["num_classes"] = num_classes
    if jnp.dtype(dtype) != jnp.float32:
        fields["dtype"] = dtype
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    if preset is None:
        return UNetConfig(**fields)
    return getattr(UNetConfig, preset)(**fields)


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
    """A noise-predicting network $\\varepsilon_\\theta(x, t[, y])$ and its process.

    The MLP sees the float time $t$; the UNet sees DDPM's step index $Tt - 1$ (exactly $i$ at
    $t = (i + 1)/T$, so its sinusoidal embedding is DDPM's) for ``process="ddpm"`` and $999\\,t$ for
    the continuous processes (score_sde's time labels).

    Args:
        config: the :class:`DiffusionConfig`.
        rngs: ``nnx.Rngs`` with a ``params`` stream.
    """

    def __init__(self, config: DiffusionConfig, *, rngs: nnx.Rngs):
        self.config = config
        if config.network == "mlp":
            self.net = TimeMLP(config.event_shape[0], config.hidden, time_embedding=config.time_embedding,
                               embed_dim=config.embed_dim, zero_init_last=config.zero_init_last,
                               num_classes=config.num_classes, dtype=jnp.dtype(config.dtype), rngs=rngs)
        elif config.network == "unet":
            h, w, c = config.event_shape
            self.net = UNet(config.unet, in_channels=c, image_size=(h, w), rngs=rngs)
        else:  # pragma: no cover - DiffusionConfig validates the name
            raise ValueError(f"network: unknown network {config.network!r}; known: {NETWORKS}")

    @property
    def process(self) -> tuple[DiscreteSchedule | None, SDE]:
        return build_process(self.config)

    def _check_labels(self, y: Array | None, x: Array) -> None:
        if self.config.conditional != (y is not None):
            raise ValueError(
                f"y: a class-conditional model (num_classes={self.config.num_classes}) needs labels [b] "
                f"(num_classes = the null label), an unconditional one takes none; got "
                f"{'none' if y is None else tuple(jnp.shape(y))} for x {tuple(x.shape)}"
            )
        if y is not None:
            # Before label dropout, which could hide a bad label behind the null label.
            check_labels(y, batch_size=x.shape[0], null_label=self.config.num_classes)

    def eps(
        self,
        x: Float[Array, "b ..."],
        t: Float[Array, " b"],
        y: Array | None = None,
        *,
        key: PRNGKey | None = None,
    ) -> Float[Array, "b ..."]:
        """$\\varepsilon_\\theta(x, t[, y])$ at continuous times $t \\in [0, 1]$ (float32 ``[b]``).

        Args:
            x: ``[b, *event_shape]``.
            t: float32 ``[b]``.
            y: ``int [b]`` labels of a class-conditional model (``num_classes`` = null label).
            key: the UNet's dropout key (training); ``None`` is deterministic. The MLP has no
                dropout and ignores it.
        """
        self._check_labels(y, x)
        m, s = self.process[1].marginal_coeffs(t)
        x_in = x / per_example(jnp.sqrt(m * m + s * s), x)
        if self.config.network == "mlp":
            return self.net(x_in, t) if y is None else self.net(x_in, t, y)
        c = self.config
        t_net = c.num_steps * t - 1.0 if c.discrete else 999.0 * t
        out = self.net(x_in, t_net, y, deterministic=key is None, key=key)
        return out.astype(jnp.float32)

    def eps_discrete(
        self, x: Float[Array, "b ..."], i: Array, y: Array | None = None, *, key: PRNGKey | None = None
    ) -> Float[Array, "b ..."]:
        """$\\varepsilon_\\theta(x, i[, y])$ at DDPM step indices $i$ (int32 ``[b]``), time $(i + 1)/T$."""
        return self.eps(x, (i.astype(jnp.float32) + 1.0) / self.config.num_steps, y, key=key)

    def score(
        self, x: Float[Array, "b ..."], t: Float[Array, " b"], y: Array | None = None, *, key: PRNGKey | None = None
    ) -> Float[Array, "b ..."]:
        """$s_\\theta(x, t[, y]) = -\\varepsilon_\\theta(x, t[, y])/s_t$."""
        _, s = self.process[1].marginal_coeffs(t)
        return -self.eps(x, t, y, key=key) / per_example(s, x)

    def guided_eps(self, y: Array | None = None, guidance: float | Array | None = None):
        """The sampling-time $\\tilde\\varepsilon(x, t)$ at continuous $t$.

        Unconditional model: $\\varepsilon_\\theta$. Class-conditional: classifier-free guidance
        (:func:`~kexue_jax.diffusion.guidance.classifier_free_eps`) towards labels ``y`` with weight
        $w$ = ``guidance`` (``None``: ``config.guidance``; a ``[b]`` array gives each example its
        own $w$). $w = 0$ given as a Python number skips the unconditional half of the batch.
        """
        c = self.config
        if not c.conditional:
            if y is not None:
                raise ValueError(f"y: an unconditional model takes no labels, got shape {tuple(jnp.shape(y))}")
            return self.eps
        if y is None:
            raise ValueError(f"y: a class-conditional model (num_classes={c.num_classes}) samples given labels [b]")
        w = c.guidance if guidance is None else guidance
        if isinstance(w, (int, float)) and w == 0:
            return lambda x, t: self.eps(x, t, y)
        w = jnp.asarray(w, jnp.float32)
        if w.ndim == 1:  # one weight per example, broadcast over the event dimensions
            w = w.reshape(w.shape + (1,) * len(c.event_shape))
        # classifier_free_eps only does arithmetic with the weight, so an array works as well.
        return classifier_free_eps(lambda x, t, lab: self.eps(x, t, lab), y, guidance_scale=w,
                                   null_label=c.num_classes)

    def model_fns(self, y: Array | None = None, guidance: float | Array | None = None) -> ModelFns:
        """The bundle the samplers take (guided towards ``y`` for a class-conditional model)."""
        schedule, sde = self.process
        eps = self.guided_eps(y, guidance)
        n = self.config.num_steps

        def eps_discrete(x: Array, i: Array) -> Array:
            return eps(x, (i.astype(jnp.float32) + 1.0) / n)

        def score(x: Array, t: Array) -> Array:
            return -eps(x, t) / per_example(sde.marginal_coeffs(t)[1], x)

        return ModelFns(schedule, eps_discrete, sde, score)

    def loss(self, x0: Float[Array, "b ..."], y: Array | None = None, *, key: PRNGKey) -> Float[Array, " b"]:
        """Per-example $\\|\\varepsilon - \\varepsilon_\\theta\\|^2$: summed over dimensions for the MLP
        (Su's advice), averaged for the UNet (Ho et al.'s ``mean_flat``).

        The UNet trains with dropout, and a class-conditional model (either network) with labels
        dropped to the null label with probability ``cfg_dropout``
        (:func:`~kexue_jax.diffusion.guidance.drop_labels`).
        """
        schedule, sde = self.process
        c = self.config
        self._check_labels(y, x0)
        if c.network == "mlp":
            # No dropout; an unconditional MLP keeps the whole key for the loss (as before labels).
            reduce, k_drop = "sum", None
            k_loss, k_label = jax.random.split(key) if y is not None else (key, None)
        else:
            reduce = "mean"
            k_loss, k_drop, k_label = jax.random.split(key, 3)
        if y is not None:
            y = drop_labels(y, p_uncond=c.cfg_dropout, null_label=c.num_classes, key=k_label)
        if c.discrete:
            return ddpm_loss(lambda x, i: self.eps_discrete(x, i, y, key=k_drop), schedule, x0,
                             reduce=reduce, key=k_loss)
        return dsm_loss(lambda x, t: self.score(x, t, y, key=k_drop), sde, x0, weighting="score_sde",
                        eps=c.loss_eps, reduce=reduce, key=k_loss)

    def eval_loss(self, x0: Float[Array, "b ..."], y: Array | None = None, *, key: PRNGKey) -> Float[Array, " b"]:
        """The loss of :meth:`loss` without dropout or label dropout (the model that samples)."""
        schedule, sde = self.process
        c = self.config
        self._check_labels(y, x0)
        reduce = "sum" if c.network == "mlp" else "mean"
        if c.discrete:
            return ddpm_loss(lambda x, i: self.eps_discrete(x, i, y), schedule, x0, reduce=reduce, key=key)
        return dsm_loss(lambda x, t: self.score(x, t, y), sde, x0, weighting="score_sde", eps=c.loss_eps,
                        reduce=reduce, key=key)

    def sample(
        self,
        num: int,
        *,
        key: PRNGKey,
        num_steps: int | None = None,
        y: Array | None = None,
        guidance: float | Array | None = None,
    ) -> Float[Array, "num ..."]:
        """``num`` samples with the configured sampler (images in $[-1, 1]$, not clipped).

        Args:
            num: number of samples.
            key: PRNG key.
            num_steps: sampler steps (``None``: ``config.sampler_steps``).
            y: ``int [num]`` labels of a class-conditional model.
            guidance: CFG weight $w$, scalar or ``[num]`` (``None``: ``config.guidance``).
        """
        if self.config.conditional and y is not None:
            check_labels(y, batch_size=num, null_label=self.config.num_classes)
        steps = self.config.sampler_steps if num_steps is None else num_steps
        return SAMPLERS[self.config.sampler](self.model_fns(y, guidance), (num, *self.config.event_shape),
                                             num_steps=steps, key=key)

    def log_prob(self, x: Float[Array, "b d"], y: Array | None = None) -> Float[Array, " b"]:
        """$\\log p^{ODE}_\\epsilon(x[\\mid y])$ in nats (probability-flow ODE, exact divergence; vectors).

        Args:
            x: ``[b, d]``.
            y: ``int [b]`` labels of a class-conditional model; ``None`` is the null label, i.e. the
                unconditional model's $\\log p^{ODE}_\\epsilon(x)$ (as for :meth:`bits_per_dim`).
        """
        c = self.config
        if c.conditional and y is None:
            y = self._null_labels(x)
        return ode_log_prob(self.process[1], lambda v, t: self.score(v, t, y), x, divergence="exact",
                            rtol=c.likelihood_rtol, atol=c.likelihood_atol, eps=c.likelihood_eps).log_prob

    def _null_labels(self, x: Array) -> Array:
        return jnp.full((x.shape[0],), self.config.num_classes, jnp.int32)

    def bits_per_dim(
        self, x: Float[Array, "b h w c"], *, method: str = "ode", key: PRNGKey
    ) -> Float[Array, " b"]:
        """Bits/dim of images, of the unconditional model (the null label if class-conditional).

        Args:
            x: dequantized images ``(k + u)/K * 2 - 1`` for ``"ode"`` (bin width $2/K$); the levels
                $2k/(K - 1) - 1$ themselves for ``"vlb"``.
            method: ``"ode"`` (probability-flow ODE from $t = $ ``likelihood_eps``, Hutchinson
                divergence with one Rademacher probe, Tsit5 at ``likelihood_rtol/atol``;
                :func:`~kexue_jax.diffusion.likelihood.ode_bits_per_dim`) or ``"vlb"`` (DDPM only:
                the variational bound, $T$ network calls;
                :func:`~kexue_jax.diffusion.vlb.elbo_bits_per_dim`, reverse variance of the
                configured sampler: $\\tilde\\beta_t$ for ``ddpm_small``/``ddim``, else $\\beta_t$).
            key: PRNG key of the probes / the draws of $x_t$.
        """
        check_in("method", method, BPD_METHODS)
        c = self.config
        schedule, sde = self.process
        y = self._null_labels(x) if c.conditional else None
        if method == "ode":
            return ode_bits_per_dim(sde, lambda v, t: self.score(v, t, y), x, bin_width=2.0 / c.num_bins,
                                    divergence="hutchinson", rtol=c.likelihood_rtol, atol=c.likelihood_atol,
                                    eps=c.likelihood_eps, key=key)
        if not c.discrete:
            raise ValueError(f"method: 'vlb' needs process='ddpm', got process={c.process!r}")
        sigma = "small" if c.sampler in ("ddpm_small", "ddim") else "large"
        return elbo_bits_per_dim(lambda v, i: self.eps_discrete(v, i, y), schedule, x, sigma=sigma,
                                 num_bins=c.num_bins, key=key)


# ---------------------------------------------------------------------------------------------
# The engine task.

_TASK_OPTIONS = {
    "eval_points": 1000,
    "num_projections": 128,
    "mmd_bandwidths": (0.1, 0.2, 0.5, 1.0),
    "num_figure_samples": None,  # 4096 points of the 2-D histogram; 32 images per guidance weight
    "plot_range": 4.0,
    "plot_resolution": 128,
    "grid_columns": 8,
    "eval_bpd_examples": 0,
    "eval_bpd": ("ode",),
    "figure_guidance": (),
    "labels": "data",
    "random_flip": False,
}
_IGNORED_KEYS = ("name",)


def _vector_shape(info: Any) -> tuple[int, ...] | None:
    features = getattr(info, "features", None)
    if not features:
        return None
    if "x" not in features:
        raise ValueError(f"info: network='mlp' needs a vector feature 'x', got features {sorted(features)}")
    return feature_shape(features["x"])


def _image_info(info: Any, kwargs: dict[str, Any]) -> None:
    """Fill ``event_shape`` and ``num_bins`` of an image model from the dataset's info (in place)."""
    features = getattr(info, "features", None)
    if not features:
        return
    if "image" not in features:
        raise ValueError(f"info: network='unet' needs an 'image' feature, got features {sorted(features)}")
    shape = feature_shape(features["image"])
    if "event_shape" in kwargs and tuple(kwargs["event_shape"]) != shape:
        raise ValueError(f"model_config: event_shape {tuple(kwargs['event_shape'])} disagrees with the "
                         f"dataset's {shape}")
    kwargs["event_shape"] = shape
    num_bins = getattr(info, "num_bins", None)
    if num_bins is not None:
        if "num_bins" in kwargs and int(kwargs["num_bins"]) != int(num_bins):
            raise ValueError(f"model_config: num_bins {kwargs['num_bins']} disagrees with the dataset's {num_bins}")
        kwargs["num_bins"] = int(num_bins)


def _split_config(model_config: Any, info: Any) -> tuple[DiffusionConfig, dict[str, Any]]:
    raw = config_dict(model_config)
    fields = {f.name for f in dataclasses.fields(DiffusionConfig)}
    unknown = sorted(set(raw) - fields - set(_TASK_OPTIONS) - set(_IGNORED_KEYS))
    if unknown:
        raise ValueError(
            f"model_config: unknown keys {unknown}; expected DiffusionConfig fields {sorted(fields)} "
            f"or task options {sorted(_TASK_OPTIONS)}"
        )
    images = raw.get("network", "mlp") == "unet"
    options = {k: raw.get(k, v) for k, v in _TASK_OPTIONS.items()}
    if options["num_figure_samples"] is None:
        options["num_figure_samples"] = 32 if images else 4096
    options["mmd_bandwidths"] = tuple(float(h) for h in options["mmd_bandwidths"])
    options["figure_guidance"] = tuple(float(w) for w in options["figure_guidance"])
    options["eval_bpd"] = (options["eval_bpd"],) if isinstance(options["eval_bpd"], str) \
        else tuple(options["eval_bpd"])
    for method in options["eval_bpd"]:
        check_in("eval_bpd", method, BPD_METHODS)
    check_in("labels", options["labels"], LABEL_SOURCES)
    for name in ("eval_points", "num_projections", "num_figure_samples", "plot_resolution"):
        check_positive(name, int(options[name]))
    if int(options["eval_bpd_examples"]) < 0:
        raise ValueError(f"eval_bpd_examples: expected an int >= 0, got {options['eval_bpd_examples']!r}")
    if not isinstance(options["random_flip"], bool):
        raise ValueError(f"random_flip: expected a bool, got {options['random_flip']!r}")
    if options["random_flip"] and not images:
        raise ValueError("random_flip: mirrors images; network='mlp' models vectors")
    kwargs = {k: v for k, v in raw.items() if k in fields}
    if images:
        _image_info(info, kwargs)
    else:
        shape = _vector_shape(info)
        if shape is not None:
            if "event_shape" in kwargs and tuple(kwargs["event_shape"]) != shape:
                raise ValueError(f"model_config: event_shape {tuple(kwargs['event_shape'])} disagrees with the "
                                 f"dataset's {shape}")
            kwargs["event_shape"] = shape
    name = getattr(info, "name", None)
    options["density"] = name if name in DENSITIES and not images else None
    config = DiffusionConfig(**kwargs)
    if "vlb" in options["eval_bpd"] and int(options["eval_bpd_examples"]) and not config.discrete:
        raise ValueError(f"eval_bpd: 'vlb' needs process='ddpm', got process={config.process!r}")
    if config.conditional:
        if options["labels"] == "angular_sector" and config.event_shape != (2,):
            raise ValueError(f"labels: 'angular_sector' labels 2-D vectors, got event_shape {config.event_shape}")
        features = getattr(info, "features", None)
        if features:
            check_label_feature(info, features, source=options["labels"], num_classes=config.num_classes)
    return config, options


def spread_indices(size: int, n: int) -> np.ndarray:
    """``n`` indices evenly spaced over ``range(size)``, first and last included (``[0]`` for n = 1).

    The sub-batch on which ``evaluate`` measures bits/dim: evenly spaced, it samples every part of
    a batch whose examples are ordered (by class, say) instead of only its head.
    """
    if not 0 < n <= size:
        raise ValueError(f"n: expected 0 < n <= size = {size}, got {n}")
    return np.round(np.linspace(0, size - 1, n)).astype(np.int32)


def _cycling_labels(config: DiffusionConfig, num: int) -> Array | None:
    """Labels $0, 1, \\dots, K - 1, 0, \\dots$ of ``num`` samples of a class-conditional model (else ``None``)."""
    return jnp.arange(num, dtype=jnp.int32) % config.num_classes if config.conditional else None


def _guidance_sweep(net: DiffusionModel, num: int, weights: tuple[float, ...], *, key: PRNGKey) -> list[Array]:
    """``num`` samples with cycling labels at each guidance weight, all in one sampler run.

    Every weight starts from the same initial noise and draws, so the sets differ only by the
    guidance (one per-example weight array through
    :func:`~kexue_jax.diffusion.guidance.classifier_free_eps`).
    """
    w = jnp.repeat(jnp.asarray(weights, jnp.float32), num)
    labels = jnp.tile(_cycling_labels(net.config, num), len(weights))
    x = net.sample(num * len(weights), key=key, y=labels, guidance=w)
    return [x[i * num:(i + 1) * num] for i in range(len(weights))]


def make_diffusion_task(model_config: Mapping[str, Any] | Any = None, info: Any = None) -> Task:
    """Build the engine :class:`~kexue_jax.train.task.Task` of a diffusion model of vectors or images.

    ``network="mlp"`` models vectors (below); ``network="unet"`` models images (see
    :func:`_image_task` for its functions and options).

    Args:
        model_config: the ``model`` section of an experiment config: :class:`DiffusionConfig` fields
            plus task options ``eval_points`` (points of each evaluation batch used for the ODE
            likelihood and the sample distances, 1000), ``num_projections`` (of the sliced
            Wasserstein distance, 128), ``mmd_bandwidths`` ((0.1, 0.2, 0.5, 1.0)),
            ``num_figure_samples`` (of the sample histogram, 4096), ``plot_range`` (the square
            $[-r, r]^2$ of the 2-D pictures, 4.0), ``plot_resolution`` (128), ``grid_columns`` (8);
            for a class-conditional model (``num_classes``) ``labels`` (``"data"``:
            ``batch["label"]``, the default; ``"angular_sector"``: the sector of each 2-D point,
            :func:`~kexue_jax.diffusion.task_data.angular_sector_labels`, for the unlabelled
            densities) and ``figure_guidance`` (guidance weights of the 2-D figures, ``()``);
            image options ``eval_bpd_examples``, ``eval_bpd``, ``figure_guidance`` and
            ``num_figure_samples`` (32 images) as in :func:`_image_task`.
        info: the dataset's :class:`~kexue_jax.data.DatasetInfo` with a vector feature ``"x"`` (a
            2-D density of :mod:`kexue_jax.data.densities` adds the exact NLL and KL), or, for
            ``network="unet"``, integer images ``"image"`` with ``num_bins`` levels (and ``"label"``
            for a class-conditional model with ``labels="data"``).

    Returns:
        A task with pure, jit-able functions (vectors):

        * ``init(batch, *, key)``: plain nested-dict params (and the fixed Fourier frequencies, if
          any, as ``model_state``).
        * ``loss``: $\\mathbb E\\|\\varepsilon - \\varepsilon_\\theta\\|^2$ (per example summed over
          dimensions; a class-conditional model's labels dropped to the null label with
          probability ``cfg_dropout``); metric ``eps_mse`` (the same, per dimension).
        * ``evaluate`` on the first ``eval_points`` points of the batch: ``loss`` (true labels),
          ``sw`` (sliced $W_2$ between as many model samples and the data; a class-conditional
          model samples given the labels of those points, with guidance weight ``guidance``),
          ``mmd`` (unbiased MMD²), ``ode_nll`` (nats per example; of the unconditional model,
          i.e. the null label, if class-conditional); for a known density also ``true_nll`` and
          ``kl = ode_nll - true_nll``; when the batch holds twice ``eval_points`` points,
          ``sw_ref`` and ``mmd_ref`` between two disjoint halves of the data: the sampling-noise
          floor of ``sw`` and ``mmd``.
        * ``sample``: 2-D data: a one-image histogram ``[1, r, r, 1]`` of ``num_figure_samples``
          samples; other $d$: the samples ``[num, d]`` (class-conditional: labels
          $0, 1, \\dots, K - 1, 0, \\dots$ at guidance ``guidance``).
        * ``figures`` (2-D): ``samples`` and, for a known density, ``true_density``; a
          class-conditional model adds ``samples_w{w}`` for each $w$ of ``figure_guidance``
          (cycling labels, the same initial noise for every $w$).

    Raises:
        ValueError: on unknown config keys, bad values or non-vector data.
    """
    config, options = _split_config(model_config, info)
    abstract = nnx.eval_shape(lambda: DiffusionModel(config, rngs=nnx.Rngs(0)))
    graphdef, _, _ = split_module(abstract)
    if config.images:
        return _image_task(config, options, graphdef)
    density = options["density"]
    two_d = config.event_shape == (2,)
    points = int(options["eval_points"])
    projections = int(options["num_projections"])
    bandwidths = options["mmd_bandwidths"]
    num_figure = int(options["num_figure_samples"])
    weights = options["figure_guidance"]
    label_source = options["labels"]

    def model(params: PyTree, model_state: PyTree | None = None) -> DiffusionModel:
        return merge_module(graphdef, params, model_state or {})

    def data_of(batch: Batch) -> Array:
        if "x" not in batch:
            raise ValueError(f"batch: expected an 'x' entry, got keys {sorted(batch)}")
        x = jnp.asarray(batch["x"], jnp.float32)
        if x.shape[1:] != config.event_shape:
            raise ValueError(f"batch: expected 'x' of shape (b, {config.event_shape[0]}), got {tuple(x.shape)}")
        return x

    def labels_of(batch: Batch, x: Array) -> Array | None:
        if not config.conditional:
            return None
        return batch_labels(batch, x, source=label_source, num_classes=config.num_classes)

    def init(batch: Batch, *, key: PRNGKey) -> tuple[PyTree, PyTree]:
        labels_of(batch, data_of(batch))
        _, params, state = split_module(DiffusionModel(config, rngs=nnx.Rngs(params=key)))
        return params, state

    def loss(params: PyTree, model_state: PyTree, batch: Batch, *, key: PRNGKey) -> LossOutput:
        x = data_of(batch)
        per_example_loss = model(params, model_state).loss(x, labels_of(batch, x), key=key)
        value = mean_f32(per_example_loss)
        return LossOutput(value, {"eps_mse": value / config.event_shape[0]}, None)

    def evaluate(params: PyTree, model_state: PyTree, batch: Batch, *, key: PRNGKey) -> dict[str, Array]:
        net = model(params, model_state)
        x_all = data_of(batch)
        n = min(points, x_all.shape[0])
        x = x_all[:n]
        y_all = labels_of(batch, x_all)
        y = None if y_all is None else y_all[:n]
        k_loss, k_sample, k_sw = jax.random.split(key, 3)
        samples = net.sample(n, key=k_sample, y=y)
        # A diverged sample (an untrained VE model's) counts as far away, not as NaN or 1e12.
        samples = jnp.clip(jnp.nan_to_num(samples, nan=100.0), -100.0, 100.0)
        out = {
            "loss": mean_f32(net.eval_loss(x, y, key=k_loss)),
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

    plane = PlaneGrid(int(options["plot_resolution"]), float(options["plot_range"]))

    def sample(params: PyTree, model_state: PyTree, num: int, *, key: PRNGKey) -> Array:
        net = model(params, model_state)
        if two_d:
            return plane.histogram(net.sample(num_figure, key=key, y=_cycling_labels(config, num_figure)))
        return net.sample(num, key=key, y=_cycling_labels(config, num))

    def figures(params: PyTree, model_state: PyTree, batch: Batch, *, key: PRNGKey) -> dict[str, Array]:
        if not two_d:
            return {}
        net = model(params, model_state)
        out = {"samples": plane.histogram(net.sample(num_figure, key=key, y=_cycling_labels(config, num_figure)))}
        if density is not None:
            out["true_density"] = plane.picture(jnp.exp(log_density(density, plane.points)))
        if weights and config.conditional:
            sweep = _guidance_sweep(net, num_figure, weights, key=jax.random.fold_in(key, 1))
            out.update({f"samples_w{w:g}": plane.histogram(xs) for w, xs in zip(weights, sweep, strict=True)})
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


def _image_task(config: DiffusionConfig, options: dict[str, Any], graphdef: Any) -> Task:
    """The task of a UNet diffusion model of ``num_bins``-level images (``network="unet"``).

    Pixels: level $k \\in \\{0..K-1\\}$ is $x = 2k/(K - 1) - 1 \\in [-1, 1]$ (DDPM's
    ``k/127.5 - 1``); samples go back through the same map, clipped and rounded to the levels.

    * ``init(batch, *, key)``: params of the UNet (no model state).
    * ``loss``: $\\mathbb E\\|\\varepsilon - \\varepsilon_\\theta(x_t, t[, y])\\|^2$ averaged over the
      pixels (Ho et al.), with the UNet's dropout and, for a class-conditional model, the labels of
      ``batch["label"]`` dropped to the null label with probability ``cfg_dropout``; metric
      ``eps_mse`` (the same). Task option ``random_flip`` (DDPM's CIFAR-10 augmentation) first
      mirrors each training image with probability 1/2
      (:func:`kexue_jax.data.transforms.random_horizontal_flip`; evaluation never flips).
    * ``evaluate``: ``loss`` (no dropout, true labels); with ``eval_bpd_examples`` $= n > 0$ also
      the bits/dim of $n$ images evenly spaced through each evaluation batch (:func:`spread_indices`), of the unconditional model
      (the null label if class-conditional), by each method of ``eval_bpd``: ``ode_bpd``
      (probability-flow ODE of uniformly dequantized images $2(k + u)/K - 1$, bin width $2/K$;
      score_sde's evaluation) and/or ``vlb_bpd`` (DDPM's variational bound on the levels, $T$
      network calls per image). Both cost hundreds of network evaluations per image: keep $n$
      small, and 0 in CI smoke runs.
    * ``sample``: ``num`` images ``[num, h, w, c]`` in $[0, 1]$ from the configured sampler; a
      class-conditional model draws labels $0, 1, \\dots, K_y - 1, 0, \\dots$ (grid rows of
      ``grid_columns = num_classes`` are then one class per column) with guidance weight ``guidance``.
    * ``figures``: for each $w$ in ``figure_guidance``, ``samples_w{w}``: ``num_figure_samples``
      class-conditional samples with cycling labels at guidance $w$ (all weights in one sampler
      run, from the same initial noise); ``{}`` when ``figure_guidance`` is empty or the model is
      unconditional.
    """
    columns = int(options["grid_columns"])
    bpd_examples = int(options["eval_bpd_examples"])
    flip = options["random_flip"]
    bpd_methods = options["eval_bpd"]
    weights = options["figure_guidance"]
    num_figure = int(options["num_figure_samples"])
    levels = config.num_bins - 1

    def model(params: PyTree, model_state: PyTree | None = None) -> DiffusionModel:
        return merge_module(graphdef, params, model_state or {})

    def pixels_of(batch: Batch) -> Array:
        if "image" not in batch:
            raise ValueError(f"batch: expected an 'image' entry, got keys {sorted(batch)}")
        k = jnp.asarray(batch["image"])
        if k.shape[1:] != config.event_shape:
            raise ValueError(f"batch: expected 'image' of shape (b, {', '.join(map(str, config.event_shape))}), "
                             f"got {tuple(k.shape)}")
        if not jnp.issubdtype(k.dtype, jnp.integer):
            raise ValueError(f"batch: expected integer 'image' levels 0..{levels}, got dtype {k.dtype}")
        return k

    def labels_of(batch: Batch) -> Array | None:
        if not config.conditional:
            return None
        # Images take their labels from the data (_split_config rejects angular sectors for them).
        return batch_labels(batch, batch["image"], source="data", num_classes=config.num_classes)

    def scaled(k: Array) -> Array:
        return k.astype(jnp.float32) * (2.0 / levels) - 1.0

    def init(batch: Batch, *, key: PRNGKey) -> tuple[PyTree, PyTree]:
        pixels_of(batch)
        labels_of(batch)
        _, params, state = split_module(DiffusionModel(config, rngs=nnx.Rngs(params=key)))
        return params, state

    def loss(params: PyTree, model_state: PyTree, batch: Batch, *, key: PRNGKey) -> LossOutput:
        x0 = scaled(pixels_of(batch))
        if flip:
            key, k_flip = jax.random.split(key)
            x0 = random_horizontal_flip(x0, key=k_flip)
        value = mean_f32(model(params, model_state).loss(x0, labels_of(batch), key=key))
        return LossOutput(value, {"eps_mse": value}, None)

    def evaluate(params: PyTree, model_state: PyTree, batch: Batch, *, key: PRNGKey) -> dict[str, Array]:
        net = model(params, model_state)
        k = pixels_of(batch)
        k_loss, k_bpd, k_deq = jax.random.split(key, 3)
        out = {"loss": mean_f32(net.eval_loss(scaled(k), labels_of(batch), key=k_loss))}
        n = min(bpd_examples, k.shape[0])
        if n:
            # Evenly spaced through the batch rather than its first n: an evaluation split sorted by
            # class (mnist5k's test split is) would otherwise give the bits/dim of a few classes.
            sub = k[spread_indices(k.shape[0], n)].astype(jnp.float32)
            for method in bpd_methods:
                if method == "ode":
                    u = jax.random.uniform(k_deq, sub.shape, jnp.float32)
                    x = (sub + u) * (2.0 / config.num_bins) - 1.0
                else:
                    x = scaled(sub)
                out[f"{method}_bpd"] = mean_f32(net.bits_per_dim(x, method=method, key=k_bpd))
        return out

    def to_images(x: Array) -> Array:
        # A diverged sample (NaN) is drawn black rather than poisoning the PNG writer.
        x = jnp.where(jnp.isfinite(x), x, -1.0)
        return jnp.round((jnp.clip(x, -1.0, 1.0) + 1.0) * (levels / 2.0)) / levels

    def sample(params: PyTree, model_state: PyTree, num: int, *, key: PRNGKey) -> Array:
        return to_images(model(params, model_state).sample(num, key=key, y=_cycling_labels(config, num)))

    def figures(params: PyTree, model_state: PyTree, batch: Batch, *, key: PRNGKey) -> dict[str, Array]:
        if not weights or not config.conditional:
            return {}
        sweep = _guidance_sweep(model(params, model_state), num_figure, weights, key=key)
        return {f"samples_w{w:g}": to_images(xs) for w, xs in zip(weights, sweep, strict=True)}


    return Task(
        name=f"diffusion[{config.process},unet]",
        init=init,
        loss=loss,
        evaluate=evaluate,
        sample=sample,
        figures=figures,
        grid_columns=columns,
        extras={"config": config, "graphdef": graphdef, "model": model, "options": options},
    )


__all__ = [
    "BPD_METHODS",
    "DISCRETE_SAMPLERS",
    "NETWORKS",
    "PROCESSES",
    "SCHEDULES",
    "UNET_PRESETS",
    "DiffusionConfig",
    "DiffusionModel",
    "ScheduleVPSDE",
    "build_process",
    "make_diffusion_task",
]
