"""Discrete DDPM noise schedules: tables of $\\beta_t$ and $\\bar\\alpha_t$, and respacing.

Notation (Ho et al.): $q(x_t \\mid x_{t-1}) = \\mathcal N(\\sqrt{1-\\beta_t}\\,x_{t-1}, \\beta_t I)$,
$\\alpha_t = 1 - \\beta_t$, $\\bar\\alpha_t = \\prod_{s\\le t}\\alpha_s$, so that
$x_t = \\sqrt{\\bar\\alpha_t}\\,x_0 + \\sqrt{1-\\bar\\alpha_t}\\,\\varepsilon$. Su's articles write the
square roots: his $\\alpha_t$ is our $\\sqrt{\\alpha_t}$, his $\\bar\\alpha_t$ is
$\\sqrt{\\bar\\alpha_t}$ and his $\\bar\\beta_t$ is $\\sqrt{1-\\bar\\alpha_t}$.

Time steps are indices $t \\in \\{0, \\dots, T-1\\}$ (``int32``) as in improved-diffusion: index $t$
is step $t+1$ of the paper.

References:
    Su Jianlin, "生成扩散模型漫谈（二）：DDPM = 自回归式VAE", https://kexue.fm/archives/9152.
    J. Ho, A. Jain, P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
    A. Nichol, P. Dhariwal, "Improved Denoising Diffusion Probabilistic Models", ICML 2021.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from kexue_jax._src.checks import check_positive
from kexue_jax._src.typing import Array, Float, Int


class DiscreteSchedule(NamedTuple):
    """Tables of a discrete forward process, float32 arrays of shape ``[T]``.

    Attributes:
        betas: $\\beta_t$, the variance added at step $t$.
        alphas_cumprod: $\\bar\\alpha_t = \\prod_{s \\le t}(1-\\beta_s)$.
        alphas_cumprod_prev: $\\bar\\alpha_{t-1}$ (with $\\bar\\alpha_{-1} = 1$).
        posterior_variance: $\\tilde\\beta_t = \\beta_t(1-\\bar\\alpha_{t-1})/(1-\\bar\\alpha_t)$,
            the variance of $q(x_{t-1} \\mid x_t, x_0)$ (zero at $t = 0$).
        one_minus_alphas_cumprod: $1-\\bar\\alpha_t$ (from float64: in float32, $1 - \\bar\\alpha_t$
            would lose four digits near $t = 0$).
        posterior_coef_x0: $\\sqrt{\\bar\\alpha_{t-1}}\\beta_t/(1-\\bar\\alpha_t)$.
        posterior_coef_xt: $\\sqrt{1-\\beta_t}(1-\\bar\\alpha_{t-1})/(1-\\bar\\alpha_t)$.
    """

    betas: Float[Array, " T"]
    alphas_cumprod: Float[Array, " T"]
    alphas_cumprod_prev: Float[Array, " T"]
    posterior_variance: Float[Array, " T"]
    one_minus_alphas_cumprod: Float[Array, " T"]
    posterior_coef_x0: Float[Array, " T"]
    posterior_coef_xt: Float[Array, " T"]

    @property
    def num_steps(self) -> int:
        """$T$, the number of steps."""
        return int(self.betas.shape[0])


def schedule_from_betas(betas: np.ndarray | Array) -> DiscreteSchedule:
    """Build the tables from $\\beta_t$ (computed in float64 on the host, stored as float32).

    Args:
        betas: ``[T]`` values in $(0, 1]$.

    Returns:
        The :class:`DiscreteSchedule`.

    Raises:
        ValueError: when ``betas`` is not one-dimensional or not in $(0, 1]$.
    """
    betas = np.asarray(betas, np.float64)
    if betas.ndim != 1 or betas.shape[0] < 1:
        raise ValueError(f"betas: expected shape (T,) with T >= 1, got {betas.shape}")
    if not (np.all(betas > 0) and np.all(betas <= 1)):
        raise ValueError("betas: expected every value in (0, 1]")
    ac = np.cumprod(1.0 - betas)
    ac_prev = np.concatenate([[1.0], ac[:-1]])
    one_minus = -np.expm1(np.cumsum(np.log1p(-betas)))
    one_minus_prev = np.concatenate([[0.0], one_minus[:-1]])
    post = betas * one_minus_prev / one_minus
    coef_x0 = np.sqrt(ac_prev) * betas / one_minus
    coef_xt = np.sqrt(1.0 - betas) * one_minus_prev / one_minus
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    return DiscreteSchedule(*map(f32, (betas, ac, ac_prev, post, one_minus, coef_x0, coef_xt)))


def linear_schedule(
    num_steps: int = 1000, *, beta_start: float = 1e-4, beta_end: float = 0.02
) -> DiscreteSchedule:
    """DDPM's linear schedule $\\beta_t$ from ``beta_start`` to ``beta_end``.

    The defaults are for $T = 1000$; like improved-diffusion the end points are scaled by
    $1000/T$ so that other $T$ describe the same continuous process.

    Args:
        num_steps: $T$.
        beta_start: $\\beta_1$ at $T = 1000$.
        beta_end: $\\beta_T$ at $T = 1000$.

    Returns:
        The :class:`DiscreteSchedule`.

    Example:
        >>> s = linear_schedule(1000)
        >>> round(float(s.alphas_cumprod[-1]), 6)
        4e-05

    References:
        J. Ho et al., "Denoising Diffusion Probabilistic Models", NeurIPS 2020, §4.
    """
    check_positive("num_steps", num_steps)
    scale = 1000.0 / num_steps
    return schedule_from_betas(np.linspace(scale * beta_start, scale * beta_end, num_steps))


def cosine_schedule(num_steps: int = 1000, *, s: float = 0.008, max_beta: float = 0.999) -> DiscreteSchedule:
    """Nichol & Dhariwal's cosine schedule $\\bar\\alpha_t = f(t)/f(0)$, $f(t) = \\cos^2(\\frac{t/T+s}{1+s}\\frac\\pi2)$.

    $\\beta_t = \\min(1 - \\bar\\alpha_t/\\bar\\alpha_{t-1}, \\beta_{\\max})$.

    Args:
        num_steps: $T$.
        s: the offset that keeps $\\beta_t$ from being tiny near $t = 0$.
        max_beta: the clip of $\\beta_t$ near $t = T$ (avoids the singularity).

    Returns:
        The :class:`DiscreteSchedule`.

    References:
        A. Nichol, P. Dhariwal, "Improved Denoising Diffusion Probabilistic Models", ICML 2021, eq. (17).
    """
    check_positive("num_steps", num_steps)
    check_positive("s", s)
    f = lambda u: np.cos((u / num_steps + s) / (1 + s) * math.pi / 2) ** 2
    t = np.arange(num_steps, dtype=np.float64)
    return schedule_from_betas(np.minimum(1.0 - f(t + 1) / f(t), max_beta))


def su_schedule(num_steps: int = 1000) -> DiscreteSchedule:
    """Su's schedule $\\alpha_t = \\sqrt{1 - 0.02\\,t/T}$ (his notation), i.e. $\\beta_t = 0.02\\,t/T$.

    Then $\\bar\\alpha_T < e^{-0.005(T+1)}$ (in Su's squared-free notation $\\bar\\alpha_T^2$),
    $\\approx 0.0065$ for $T = 1000$, so $q(x_T) \\approx \\mathcal N(0, I)$.

    Args:
        num_steps: $T$.

    Returns:
        The :class:`DiscreteSchedule`.

    Example:
        >>> round(float(su_schedule(1000).alphas_cumprod[-1]) ** 0.5, 5)
        0.00648

    References:
        Su Jianlin, "生成扩散模型漫谈（二）：DDPM = 自回归式VAE", https://kexue.fm/archives/9152;
        bojone/Keras-DDPM ``ddpm.py``.
    """
    check_positive("num_steps", num_steps)
    t = np.arange(1, num_steps + 1, dtype=np.float64)
    return schedule_from_betas(0.02 * t / num_steps)


def respaced_timesteps(num_train_steps: int, num_steps: int) -> np.ndarray:
    """An evenly spread increasing subset of ``num_steps`` indices of ``range(num_train_steps)``.

    Always contains $0$ and $T-1$ (for ``num_steps >= 2``).

    Args:
        num_train_steps: $T$.
        num_steps: $S \\le T$.

    Returns:
        ``int32`` numpy array ``[S]``.

    Raises:
        ValueError: when ``num_steps`` is not in ``[1, num_train_steps]``.
    """
    if not 1 <= num_steps <= num_train_steps:
        raise ValueError(f"num_steps: expected 1 <= num_steps <= {num_train_steps}, got {num_steps}")
    if num_steps == 1:
        return np.array([num_train_steps - 1], np.int32)
    return np.round(np.linspace(0, num_train_steps - 1, num_steps)).astype(np.int32)


def respace(schedule: DiscreteSchedule, num_steps: int) -> tuple[DiscreteSchedule, Int[Array, " S"]]:
    """The schedule restricted to ``num_steps`` time steps, with the same $\\bar\\alpha$ there.

    On the subset $\\tau_1 < \\dots < \\tau_S$ the new $\\beta_i = 1 - \\bar\\alpha_{\\tau_i}/\\bar\\alpha_{\\tau_{i-1}}$
    (improved-diffusion's respacing; DDIM's sub-sequences): the marginals $q(x_{\\tau_i} \\mid x_0)$
    are unchanged and a model trained on all $T$ steps is called at the original indices.

    Args:
        schedule: the training schedule of $T$ steps.
        num_steps: $S \\le T$.

    Returns:
        ``(respaced, timesteps)``: a schedule of $S$ steps and the ``int32 [S]`` original indices
        at which to call the model.

    References:
        A. Nichol, P. Dhariwal, "Improved Denoising Diffusion Probabilistic Models", ICML 2021, §4;
        J. Song, C. Meng, S. Ermon, "Denoising Diffusion Implicit Models", ICLR 2021, §4.2.
    """
    steps = respaced_timesteps(schedule.num_steps, num_steps)
    # In log space from the float32 betas: with num_steps = T this returns the same betas.
    log_ac = np.cumsum(np.log1p(-np.asarray(schedule.betas, np.float64)))[steps]
    prev = np.concatenate([[0.0], log_ac[:-1]])
    return schedule_from_betas(-np.expm1(log_ac - prev)), jnp.asarray(steps, jnp.int32)
